#!/usr/bin/env bash
# yamllint (config: .yamllint at the root) on every YAML file of the tree, warnings included.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need yamllint
mapfile -d '' files < <(find "$root" \( -name target -o -name .git \) -prune -o -type f \( -name '*.yaml' -o -name '*.yml' -o -name .yamllint \) -print0)
[ "${#files[@]}" -ge 8 ] || die "found only ${#files[@]} YAML files under $root"
say "$(yamllint --version) on ${#files[@]} files"
yamllint -s -c "$root/.yamllint" "${files[@]}" || die "yamllint findings above"
