# shellcheck shell=bash
# Shared by the scripts/check-deploy/NN-*.sh checks: `source "$(dirname "$0")/lib.sh" "$@"`.
# Each check takes the tree to check as $1 (default: this checkout), so the selftest can run
# it on a deliberately broken copy. Messages go to stderr; a check exits non-zero on any
# finding that is neither fixed nor justified in deploy/checks-allowlist.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "${1:-$here/../..}" && pwd)
check=$(basename "$0" .sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '%s: %s\n' "$check" "$*" >&2; }
die() { printf '%s: FAIL: %s\n' "$check" "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not on PATH: run through make check-deploy (scripts/tools env)"; }

# advisory_db: where the RustSec snapshot is. SQS2PG_ADVISORY_DB if set; else
# ../shared/advisory-db beside this checkout; else beside the checkout this one was cloned
# from (CI checks a fresh clone made in a temp dir).
advisory_db() {
  local origin
  if [ -n "${SQS2PG_ADVISORY_DB:-}" ]; then echo "$SQS2PG_ADVISORY_DB"; return; fi
  if [ -d "$root/../shared/advisory-db" ]; then echo "$root/../shared/advisory-db"; return; fi
  origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared/advisory-db" ]; then
    echo "$origin/../shared/advisory-db"
    return
  fi
  echo "$root/../shared/advisory-db"
}

# allowed TOOL: the ids deploy/checks-allowlist justifies for TOOL, one a line. Fails on an
# entry without a reason.
allowed() {
  local list="$root/deploy/checks-allowlist" tool id reason
  [ -f "$list" ] || return 0
  while read -r tool id reason; do
    case "$tool" in '' | '#'*) continue ;; esac
    [ "$tool" = "$1" ] || continue
    [ -n "$reason" ] || die "deploy/checks-allowlist: $tool $id has no reason"
    echo "$id"
  done <"$list"
}

# shell_scripts: every shell script of the tree (by extension or shebang), NUL-separated.
shell_scripts() {
  local f
  while IFS= read -r -d '' f; do
    case "$f" in
      *.sh) printf '%s\0' "$f" ;;
      *) head -n 1 "$f" 2>/dev/null | grep -Eq '^#!.*\b(ba)?sh\b' && printf '%s\0' "$f" ;;
    esac
  done < <(find "$root" \( -name target -o -name .git -o -name node_modules \) -prune -o -type f -print0)
  return 0
}
