#!/usr/bin/env bash
# Prometheus rules: deploy/prometheus/alerts.yml loads (`promtool check rules`) and every alert
# passes its unit test (`promtool test rules alerts_test.yml`); first shown failing on a broken
# copy. (A live /metrics linted by `promtool check metrics`, and the real server raising
# Sqs2pgNotReady: tests/it/prometheus.rs, in `make test`.)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
cd "$root"
eval "$(scripts/tools env)"
tmp=$work

cp deploy/prometheus/alerts_test.yml "$tmp/"
sed 's/expr: sqs2pg_ready == 0/expr: sqs2pg_ready == 1/' deploy/prometheus/alerts.yml > "$tmp/alerts.yml"
if (cd "$tmp" && "$SQS2PG_PROMTOOL" test rules alerts_test.yml >/dev/null 2>&1); then
  die "promtool test rules passed a broken Sqs2pgNotReady"
fi
(cd deploy/prometheus && "$SQS2PG_PROMTOOL" check rules alerts.yml >&2 && "$SQS2PG_PROMTOOL" test rules alerts_test.yml >&2) \
  || die "deploy/prometheus: promtool (output above)"
rules=$(grep -c -- '- alert:' deploy/prometheus/alerts.yml)
tested=$(grep -o 'alertname: [A-Za-z0-9]*' deploy/prometheus/alerts_test.yml | sort -u | wc -l)
[ "$rules" -eq "$tested" ] || die "alerts.yml has $rules alerts, alerts_test.yml tests $tested"
say "ok: $rules alerts, each unit-tested ($("$SQS2PG_PROMTOOL" --version 2>&1 | head -n 1))"
