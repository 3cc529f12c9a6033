# sqs2pg — the two commands: `make demo` and `make test`.
# Both start local services (PostgreSQL + LocalStack SQS on loopback) with scripts/services.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
BIN := target/release/sqs2pg
DEMO_KEYS := .demo-keys
SERVICES_ENV = eval "$$(scripts/services env)"

.PHONY: demo test bench services services-down build lint clean-demo

services:
	scripts/services up

services-down:
	scripts/services down

build:
	$(CARGO) build --release --locked

## demo: services up, build, migrate, a demo key, 100 synthetic events, drain, show rows and a reveal
demo: services build
	@$(SERVICES_ENV); \
	export SQS2PG_KEYS_FILE=$(DEMO_KEYS); \
	if [ ! -s $(DEMO_KEYS) ]; then (umask 077; $(BIN) keygen --kid demo > $(DEMO_KEYS)); echo "made demo key in $(DEMO_KEYS) (gitignored)"; fi; \
	$(BIN) migrate; \
	$(BIN) send --synthetic 100 --malformed-rate 0.01 --duplicate-rate 0.03 --seed 7; \
	echo; echo "== draining the queue"; \
	$(BIN) run --until-empty --wait-seconds 2; \
	echo; echo "== a few rows of user_logins"; \
	psql "$$DATABASE_URL" -c "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date FROM user_logins ORDER BY user_id LIMIT 5"; \
	echo "== counts"; \
	psql "$$DATABASE_URL" -Atc "SELECT 'rows ' || count(*) || ', distinct masked_ip ' || count(DISTINCT masked_ip) || ', distinct masked_device_id ' || count(DISTINCT masked_device_id) FROM user_logins"; \
	psql "$$DATABASE_URL" -Atc "SELECT 'rejects ' || reason || ': ' || count(*) FROM user_logins_rejects GROUP BY reason ORDER BY reason"; \
	echo; echo "== reveal round trip (authorised key holder)"; \
	row=$$(psql "$$DATABASE_URL" -AtF' ' -c "SELECT masked_ip, masked_device_id FROM user_logins WHERE masked_ip IS NOT NULL AND masked_device_id IS NOT NULL ORDER BY user_id LIMIT 1"); \
	read -r ip_token dev_token <<< "$$row"; \
	echo "masked_ip        $$ip_token  ->  $$(echo "$$ip_token" | $(BIN) reveal --column ip --reason "make demo")"; \
	echo "masked_device_id $$dev_token  ->  $$(echo "$$dev_token" | $(BIN) reveal --column device_id --reason "make demo")"; \
	echo "quarantined body: $$(psql "$$DATABASE_URL" -Atc "SELECT body_ciphertext FROM user_logins_rejects LIMIT 1" | $(BIN) reveal --column body --reason "make demo")"

## test: services up, then every test (unit, property, integration on real services),
## then a small smoke run of the bench harness so it keeps working
test: services
	@$(SERVICES_ENV); $(CARGO) test --locked --all-targets
	$(CARGO) build --locked --example bench
	@$(SERVICES_ENV); target/debug/examples/bench --smoke --out target/bench-smoke > /dev/null

## bench: release build, then the full harness (table on stdout, target/bench/results.md,
## scaling.csv, scaling.png) and criterion's transform bench
bench: services
	$(CARGO) build --release --locked --bins --examples
	@$(SERVICES_ENV); target/release/examples/bench --out target/bench
	$(CARGO) bench --locked --bench transform

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	$(CARGO) clippy --locked --features lambda --bin sqs2pg-lambda -- -D warnings

clean-demo:
	rm -f $(DEMO_KEYS)
