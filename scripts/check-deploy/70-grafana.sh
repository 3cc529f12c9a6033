#!/usr/bin/env bash
# Grafana: deploy/grafana/sqs2pg.json is JSON and names only metric families sqs2pg describes
# (src/telemetry/metrics.rs's HELP table); first shown failing on a broken copy. (Every
# expression parsed by the real Prometheus and checked against a live /metrics:
# tests/it/grafana.rs, in `make test`.)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
cd "$root"
tmp=$work

check() {  # check DASHBOARD: JSON, and every sqs2pg_ family it names is one sqs2pg describes
  python3 - "$1" src/telemetry/metrics.rs <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
known = set(re.findall(r'\("(sqs2pg_[a-z_]+)", "', open(sys.argv[2]).read()))
used = set()
for p in d["panels"]:
    for t in p["targets"]:
        for n in re.findall(r"sqs2pg_[a-z_]+", t["expr"]):
            used.add(re.sub(r"_(bucket|sum|count)$", "", n))
unknown = sorted(used - known)
if unknown:
    sys.exit(f"{sys.argv[1]}: names metrics sqs2pg does not export: {unknown}")
print(f"{len(used)} families, all exported")
PY
}
sed 's/sqs2pg_in_flight/sqs2pg_in_flight_messages/' deploy/grafana/sqs2pg.json > "$tmp/broken.json"
if check "$tmp/broken.json" >/dev/null 2>&1; then die "the check accepted a metric sqs2pg does not export"; fi
out=$(check deploy/grafana/sqs2pg.json) || die "deploy/grafana/sqs2pg.json (above)"
say "ok: deploy/grafana/sqs2pg.json: $out"
