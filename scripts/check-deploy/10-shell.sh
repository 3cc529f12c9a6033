#!/usr/bin/env bash
# Runs shellcheck on every shell script of the tree (found by extension or shebang, so a new
# script is checked without being listed). Exceptions are inline `# shellcheck disable=`
# comments beside the line, with their reason.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need shellcheck
mapfile -d '' scripts < <(shell_scripts)
[ "${#scripts[@]}" -ge 4 ] || die "found only ${#scripts[@]} shell scripts under $root"
say "shellcheck $(shellcheck --version | sed -n 's/^version: //p') on ${#scripts[@]} scripts"
shellcheck -x -P SCRIPTDIR -S style "${scripts[@]}" || die "shellcheck findings above"
