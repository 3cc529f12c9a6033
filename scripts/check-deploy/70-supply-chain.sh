#!/usr/bin/env bash
# Supply chain, with cargo-deny (deny.toml) on Cargo.lock, offline:
#   - advisories against the RustSec snapshot in ../shared/advisory-db (its date is printed:
#     advisories published after it are not seen), unmaintained crates included,
#   - licenses: only those deny.toml allows, each with its reason,
#   - bans: duplicate versions are listed (`cargo tree -d`), not failed: see deny.toml,
#   - sources: crates.io only.
# SQS2PG_ADVISORY_DB overrides the snapshot's place (default: ../shared/advisory-db beside
# the checkout, or beside the checkout it was cloned from: lib.sh's advisory_db). cargo-deny opens the database with git, so a git copy is made in a temp dir.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need cargo-deny; need git

db=$(advisory_db)
if [ ! -f "$db/SNAPSHOT.md" ] || [ ! -d "$db/crates" ]; then
  die "no RustSec advisory snapshot at $db (expected ../shared/advisory-db beside the checkout, with SNAPSHOT.md and crates/): set SQS2PG_ADVISORY_DB"
fi
date=$(sed -n 's/^- Snapshot commit: .*(\([0-9-]*\)).*/\1/p' "$db/SNAPSHOT.md")
say "advisory database: RustSec snapshot of ${date:-an unknown date} ($db); advisories published after it are not checked"

# cargo-deny keeps each database in <db-path>/<name>-<hash of its URL>; this is the default URL's.
copy="$work/advisory-dbs/advisory-db-3157b0e258782691"
mkdir -p "$copy"
cp -r "$db/." "$copy"
if ! { git -C "$copy" init -q && git -C "$copy" add -A \
  && git -C "$copy" -c user.name=check -c user.email=check@localhost commit -qm snapshot; }; then
  die "could not make a git copy of the advisory snapshot"
fi

# cargo-deny reads `cargo metadata`, which needs every package of Cargo.lock, for every
# platform; a build downloads only the host's, so a fresh machine fetches the rest first.
(cd "$root" && cargo fetch --locked -q) || die "cargo fetch --locked failed: cargo-deny needs every package of Cargo.lock"
(cd "$root" && SQS2PG_ADVISORY_DBS="$work/advisory-dbs" cargo deny --offline --locked --color never \
  check advisories licenses bans sources) >"$work/deny.out" 2>&1 || rc=$?
grep -vE '^\s*$' "$work/deny.out" | grep -E '^(error|warning)\[|^(advisories|bans|licenses|sources) ' >&2 || true
if [ "${rc:-0}" -ne 0 ]; then grep -E '^error' -A 14 "$work/deny.out" >&2 || cat "$work/deny.out" >&2; die "cargo deny found the above"; fi
say "cargo-deny $(cargo-deny --version | cut -d' ' -f2): no advisory, every license allowed, crates.io only"

dups=$(cd "$root" && cargo tree --locked --offline -d -e normal,build --all-features \
  --target x86_64-unknown-linux-gnu --target aarch64-unknown-linux-gnu 2>/dev/null \
  | grep -E '^[a-z]' | sed 's/ (\*)$//' | sort -u | tr '\n' ' ')
say "duplicate crate versions (each pulled by a dependency, see docs/DEPLOYMENT.md): ${dups:-none}"
