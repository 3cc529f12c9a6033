#!/usr/bin/env bash
# Lambda packaging and template: cfn-lint accepts deploy/lambda/template.yaml and the mapping
# keeps the settings partial batch responses need; the release zip has `bootstrap` at its root,
# executable, for provided.al2023's glibc. Each check is first shown failing on a broken copy.
# (The function itself under the real Runtime API: tests/it/lambda_runtime.rs, in `make test`.)
# Settings: SQS2PG_LAMBDA_ZIP=PATH checks that zip; SQS2PG_LAMBDA_RELEASE=1 builds and checks
# the release zip (`make lambda-zip`, a release build: minutes); by default the debug binary
# `make test` built is zipped and checked, which links the same libc symbols and keeps CI short.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
cd "$root"
eval "$(scripts/tools env)"
tmp=$work

template=deploy/lambda/template.yaml
mapping_settings() {  # the event source mapping's settings that make partial batch responses work
  grep -q 'FunctionResponseTypes: \[ReportBatchItemFailures\]' "$1" \
    && grep -q 'MaximumBatchingWindowInSeconds:' "$1" \
    && grep -q 'BatchSize:' "$1" \
    && grep -q 'MaximumConcurrency: !Ref PostgresConnections' "$1" \
    && grep -q 'ReservedConcurrentExecutions: !Ref PostgresConnections' "$1" \
    && grep -q 'Runtime: provided.al2023' "$1"
}

sed 's/ReportBatchItemFailures/ReportBatchFailures/' "$template" > "$tmp/broken.yaml"
if "$SQS2PG_CFN_LINT" "$tmp/broken.yaml" >/dev/null 2>&1; then die "cfn-lint accepted a broken template"; fi
if mapping_settings "$tmp/broken.yaml"; then die "the settings check accepted a mapping without ReportBatchItemFailures"; fi
"$SQS2PG_CFN_LINT" "$template" || die "cfn-lint $template (findings above)"
mapping_settings "$template" || die "$template: the mapping lost one of its settings (ReportBatchItemFailures, batch size, window, MaximumConcurrency)"
say "ok: cfn-lint $("$SQS2PG_CFN_LINT" --version) accepts $template; the mapping keeps ReportBatchItemFailures, batch size, window, MaximumConcurrency = reserved concurrency"

printf '\177ELF not executable' > "$tmp/bootstrap"
(cd "$tmp" && python3 -c 'import zipfile; zipfile.ZipFile("flat.zip","w").write("bootstrap","dist/bootstrap")')
if scripts/lambda-zip check "$tmp/flat.zip" 2>/dev/null; then die "the zip check accepted bootstrap outside the root"; fi
if [ -n "${SQS2PG_LAMBDA_ZIP:-}" ]; then
  scripts/lambda-zip check "$SQS2PG_LAMBDA_ZIP"
elif [ "${SQS2PG_LAMBDA_RELEASE:-0}" = 1 ]; then
  scripts/lambda-zip build
else
  "${CARGO:-cargo}" build --locked --features lambda --bin sqs2pg-lambda >&2
  scripts/lambda-zip zip "${CARGO_TARGET_DIR:-target}/debug/sqs2pg-lambda" "$tmp/sqs2pg-lambda-x86_64.zip"
  scripts/lambda-zip check "$tmp/sqs2pg-lambda-x86_64.zip"
fi
say "ok: lambda zip layout"
