#!/usr/bin/env bash
# Kubernetes + KEDA: deploy/k8s rendered by `kubectl kustomize`, then
#   - the core kinds against Kubernetes' schemas (kubernetes-validate --strict: unknown
#     fields fail; any warning fails too, e.g. a kind it has no schema for),
#   - the KEDA kinds against KEDA's schema plus unknown keys (keda_check.py),
#   - checkov's Kubernetes policies (offline, --skip-download); a finding passes only if
#     deploy/checks-allowlist justifies it, and an allow-list entry that matches nothing fails.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need kubectl; need kubernetes-validate; need checkov; need python3

kubectl kustomize "$root/deploy/k8s" >"$work/all.yaml" || die "kubectl kustomize deploy/k8s failed"
python3 - "$work" <<'PY' || die "could not split the rendered manifests"
import sys, yaml
work = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(f"{work}/all.yaml")) if d]
keda = [d for d in docs if str(d.get("apiVersion", "")).startswith("keda.sh/")]
core = [d for d in docs if d not in keda]
yaml.safe_dump_all(core, open(f"{work}/core.yaml", "w"))
yaml.safe_dump_all(keda, open(f"{work}/keda.yaml", "w"))
print(f"20-k8s: rendered {len(docs)} objects: {', '.join(sorted(d['kind'] for d in docs))}", file=sys.stderr)
PY

kubernetes-validate --strict "$work/core.yaml" >"$work/kv.out" 2>&1 || { cat "$work/kv.out" >&2; die "kubernetes-validate --strict failed"; }
if grep -v '^INFO ' "$work/kv.out" | grep -q .; then cat "$work/kv.out" >&2; die "kubernetes-validate warned"; fi
say "kubernetes-validate --strict: $(grep -c 'passed for resource' "$work/kv.out") core objects valid ($(kubernetes-validate --version 2>&1 | tail -n 1))"

python3 "$here/keda_check.py" <"$work/keda.yaml" || die "KEDA objects do not match KEDA's schema"

mapfile -t skip < <(allowed checkov)
cp "$work/all.yaml" "$work/rendered.yaml"
rc=0
(cd "$work" && checkov --skip-download --framework kubernetes -f rendered.yaml --compact -o json) \
  >"$work/checkov.json" 2>"$work/checkov.err" || rc=$?
[ "$rc" -le 1 ] || { cat "$work/checkov.err" >&2; die "checkov did not run (exit $rc)"; }
python3 - "$work/checkov.json" "${skip[@]}" <<'PY' || die "checkov findings above (fix them, or justify them in deploy/checks-allowlist)"
import json, sys
report = json.load(open(sys.argv[1]))
allowed = set(sys.argv[2:])
report = report if isinstance(report, list) else [report]
failed = [c for r in report for c in r.get("results", {}).get("failed_checks", [])]
passed = sum(len(r.get("results", {}).get("passed_checks", [])) for r in report)
found = {c["check_id"] for c in failed}
bad = stale_entries = 0
for c in failed:
    tag = "allowed" if c["check_id"] in allowed else "FINDING"
    bad += tag == "FINDING"
    print(f"20-k8s: checkov {tag} {c['check_id']} {c['check_name']} ({c['resource']})", file=sys.stderr)
for stale in sorted(allowed - found):
    stale_entries += 1
    print(f"20-k8s: checkov allow-list entry {stale} matches no finding: remove it", file=sys.stderr)
print(f"20-k8s: checkov: {passed} passed, {len(failed)} failed, {len(failed) - bad} of them allowed", file=sys.stderr)
sys.exit(1 if bad or stale_entries or passed == 0 else 0)
PY
