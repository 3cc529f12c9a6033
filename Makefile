# sqs2pg — the two commands: `make demo` and `make test`.
# Both start local services (PostgreSQL + LocalStack SQS on loopback) with scripts/services.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
BIN := target/release/sqs2pg
DEMO_KEYS := .demo-keys
DEMO_DB := sqs2pg_demo
SERVICES_ENV = eval "$$(scripts/services env)"

.PHONY: demo test test-matrix bench mutants services services-down build lint check-deploy clean-demo lambda-zip tools

services:
	scripts/services up

services-down:
	scripts/services down

build:
	$(CARGO) build --release --locked

## demo: services up, build, a fresh demo database, a demo key, 100 synthetic events, drain,
## then what masking is for: the same ip token under two users, found without revealing it
demo: services build
	@$(SERVICES_ENV); \
	export PGOPTIONS='-c client_min_messages=warning'; \
	psql "$$DATABASE_URL" -qc "DROP DATABASE IF EXISTS $(DEMO_DB) WITH (FORCE)" -c "CREATE DATABASE $(DEMO_DB)"; \
	export DATABASE_URL="$${DATABASE_URL%/*}/$(DEMO_DB)"; \
	export SQS2PG_KEYS_FILE=$(DEMO_KEYS); \
	if [ ! -s $(DEMO_KEYS) ]; then rm -f $(DEMO_KEYS); $(BIN) keygen --kid demo --out $(DEMO_KEYS) 2>/dev/null; echo "made demo key in $(DEMO_KEYS) (gitignored)"; fi; \
	echo "== a fresh database $(DEMO_DB)"; $(BIN) migrate; \
	$(BIN) send --synthetic 100 --malformed-rate 0.01 --duplicate-rate 0.03 --seed 7; \
	echo; echo "== draining the queue"; \
	RUST_LOG=warn $(BIN) run --until-empty; \
	echo; echo "== two users behind one address: the same masked_ip token, found with GROUP BY, nothing revealed"; \
	psql "$$DATABASE_URL" -c "SELECT masked_ip, count(DISTINCT user_id) AS users, count(*) AS logins FROM user_logins GROUP BY masked_ip HAVING count(DISTINCT user_id) > 1 ORDER BY users DESC, logins DESC, masked_ip LIMIT 3"; \
	shared=$$(psql "$$DATABASE_URL" -Atc "SELECT masked_ip FROM user_logins GROUP BY masked_ip HAVING count(DISTINCT user_id) > 1 ORDER BY count(DISTINCT user_id) DESC, count(*) DESC, masked_ip LIMIT 1"); \
	echo "== their logins (app_version 2.3.0 is stored as 20300; a null locale stays NULL)"; \
	psql "$$DATABASE_URL" -c "SELECT left(user_id, 8) AS user_id, device_type, left(masked_device_id, 20) AS masked_device_id, coalesce(locale, 'NULL') AS locale, app_version, (app_version / 10000) || '.' || (app_version / 100 % 100) || '.' || (app_version % 100) AS version_sent, create_date FROM user_logins WHERE masked_ip = '$$shared' ORDER BY user_id, app_version LIMIT 6"; \
	echo "== this run's counts"; \
	psql "$$DATABASE_URL" -Atc "SELECT 'rows ' || count(*) || ', users ' || count(DISTINCT user_id) || ', distinct masked_ip ' || count(DISTINCT masked_ip) || ', distinct masked_device_id ' || count(DISTINCT masked_device_id) || ', null locales ' || count(*) FILTER (WHERE locale IS NULL) FROM user_logins"; \
	echo; echo "== the quarantined message"; \
	$(BIN) rejects list; \
	reject=$$(psql "$$DATABASE_URL" -Atc "SELECT message_id FROM user_logins_rejects ORDER BY message_id LIMIT 1"); \
	echo "body: $$($(BIN) reveal --reject "$$reject" --reason "make demo" 2>/dev/null)"; \
	echo; echo "== reveal round trip (authorised key holder, audited)"; \
	dev=$$(psql "$$DATABASE_URL" -Atc "SELECT masked_device_id FROM user_logins WHERE masked_ip = '$$shared' AND masked_device_id IS NOT NULL ORDER BY user_id LIMIT 1"); \
	echo "masked_ip        $$shared  ->  $$(echo "$$shared" | $(BIN) reveal --column ip --reason "make demo")"; \
	echo "masked_device_id $$dev  ->  $$(echo "$$dev" | $(BIN) reveal --column device_id --reason "make demo")"

## test: services up, the pinned outside tools the deployment tests drive (scripts/tools:
## cargo-lambda, prometheus, promtool; cached), the Lambda binary (its tests run it under the
## real Runtime API), then every test (unit, property, integration on real services), then a
## small smoke run of the bench harness so it keeps working
test: services tools
	$(CARGO) build --locked --features lambda --bin sqs2pg-lambda
	@$(SERVICES_ENV); eval "$$(scripts/tools env)"; $(CARGO) test --locked --all-targets --features failpoints
	$(CARGO) build --locked --example bench
	@$(SERVICES_ENV); eval "$$(scripts/tools env)"; target/debug/examples/bench --smoke --out target/bench-smoke > /dev/null

## test-matrix: on each PostgreSQL major (npm builds, one private cluster each, started by
## `scripts/services pg MAJOR`): migrate (`migrate --roles` and the ingest role's rights) and
## the e2e core, on LocalStack. MATRIX_MAJORS picks the majors; the default cluster (15) is `make test`'s.
MATRIX_MAJORS ?= 13 14 16 17 18
test-matrix: services
	$(CARGO) test --locked --test it --no-run
	@$(SERVICES_ENV); for major in $(MATRIX_MAJORS); do \
	  url=$$(scripts/services pg "$$major"); \
	  echo "== PostgreSQL $$major ($$url)"; \
	  start=$$SECONDS; \
	  DATABASE_URL=$$url $(CARGO) test --locked --test it -- e2e_core:: roles:: --skip _moto; \
	  echo "== PostgreSQL $$major: $$((SECONDS - start)) s"; \
	done

## bench: release build (the Lambda binary too: its section runs it under cargo-lambda's
## Runtime API), then the full harness (table on stdout, target/bench/results.md, scaling.csv,
## scaling.png) and criterion's transform bench
bench: services tools
	$(CARGO) build --release --locked --bins --examples
	$(CARGO) build --release --locked --features lambda --bin sqs2pg-lambda
	@$(SERVICES_ENV); eval "$$(scripts/tools env)"; target/release/examples/bench --out target/bench
	$(CARGO) bench --locked --bench transform

tools:
	scripts/tools up

## mutants: mutation testing of the pure core (decode, mask, transform; .cargo/mutants.toml)
## against the library's unit and property tests; prints caught / missed / timeout and fails
## below 90 % caught (scripts/mutants; cargo-mutants installed once, pinned). About an hour on
## 2 cores, so not part of `make test`.
mutants:
	scripts/mutants

## lambda-zip: target/lambda/sqs2pg-lambda-x86_64.zip (bootstrap at the root, for provided.al2023),
## its layout checked; arm64 too where the toolchain has the target and a linker
lambda-zip:
	scripts/lambda-zip build

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets --features failpoints -- -D warnings
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --features lambda --bin sqs2pg-lambda -- -D warnings

## check-deploy: every deployment file through the real tool that checks it (Kubernetes and KEDA
## schemas, checkov, systemd-analyze, hadolint, compose, shellcheck, yamllint, cargo-deny), then
## each tool on a deliberately broken copy; the tools are installed and cached by scripts/tools.
## One script a check in scripts/check-deploy/; findings kept are justified in deploy/checks-allowlist.
check-deploy:
	scripts/check-deploy/run

clean-demo:
	rm -f $(DEMO_KEYS)
