#!/usr/bin/env bash
# Each tool of check-deploy must fail on a deliberately broken copy: one break per case, in a
# copy of the tree, and the case passes only if the check exits non-zero with that tool's
# message (so a check that fails for another reason does not count). Cheap: the copies
# reuse the tools, the binary and the advisory snapshot.
# The sed scripts and the advisory text are single-quoted on purpose: nothing expands there.
# shellcheck source=lib.sh disable=SC2016
source "$(dirname "$0")/lib.sh" "$@"

tree="$work/tree"
mkdir -p "$tree"
tar -C "$root" --exclude=./target --exclude=./.git -cf - . | tar -C "$tree" -xf -
export SQS2PG_BIN=${SQS2PG_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/sqs2pg}
SQS2PG_ADVISORY_DB=$(advisory_db)
export SQS2PG_ADVISORY_DB

fails=0 cases=0
# expect_failure CHECK 'MESSAGE' 'WHAT' FILE SED-SCRIPT: break FILE of the copy with sed, run CHECK
# on the copy, want a failure whose output contains MESSAGE; then restore FILE.
expect_failure() {
  local check=$1 message=$2 what=$3 file=$4 edit=$5 out rc=0
  cases=$((cases + 1))
  cp "$tree/$file" "$work/saved"
  sed -i "$edit" "$tree/$file"
  if cmp -s "$tree/$file" "$work/saved"; then say "BROKEN CASE: '$edit' changes nothing in $file"; fails=$((fails + 1)); return; fi
  out=$(bash "$here/$check.sh" "$tree" 2>&1) || rc=$?
  cp "$work/saved" "$tree/$file"
  if [ "$rc" -ne 0 ] && grep -qF -- "$message" <<<"$out"; then say "ok: $what -> $check fails ($message)"
  else say "NOT CAUGHT: $what ($check exit $rc)"; printf '%s\n' "$out" | tail -n 5 >&2; fails=$((fails + 1)); fi
}

expect_failure 10-shell 'SC2086' 'an unquoted expansion in scripts/services' scripts/services '$a [ $1 = x ] \&\& true'
expect_failure 15-yaml 'trailing-spaces' 'trailing spaces in configmap.yaml' deploy/k8s/configmap.yaml 's/^  name: sqs2pg-config$/&  /'
expect_failure 20-k8s 'kubernetes-validate --strict failed' 'an unknown Deployment field' deploy/k8s/deployment.yaml 's/^  revisionHistoryLimit: 5$/&\n  revisionHistoryLimitt: 5/'
expect_failure 20-k8s 'kubernetes-validate --strict failed' 'a wrong type in the NetworkPolicy' deploy/k8s/networkpolicy.yaml 's/port: 5432/port: [5432]/'
expect_failure 20-k8s 'unknown key .spec.pollingInterva1' 'a misspelt ScaledObject key' deploy/k8s/scaledobject.yaml 's/pollingInterval:/pollingInterva1:/'
expect_failure 20-k8s 'spec.podIdentity.provider' 'an unknown KEDA podIdentity provider' deploy/k8s/scaledobject.yaml 's/provider: aws$/provider: aws-irsa/'
expect_failure 20-k8s 'FINDING CKV_K8S_38' 'the service-account token automounted' deploy/k8s/deployment.yaml '/automountServiceAccountToken: false/d'
expect_failure 20-k8s 'FINDING CKV2_K8S_6' 'no NetworkPolicy' deploy/k8s/kustomization.yaml '/networkpolicy.yaml/d'
expect_failure 20-k8s 'matches no finding' 'a stale allow-list entry' deploy/checks-allowlist '$a checkov CKV_K8S_15 pull policy (no longer flagged)'
expect_failure 30-systemd 'verify reported' 'a misspelt unit key' deploy/systemd/sqs2pg.service 's/^PrivateUsers=yes/PrivateUser=yes/'
expect_failure 30-systemd 'is above 2.0' 'the sandbox removed' deploy/systemd/sqs2pg.service '/^DynamicUser=yes/,/^SystemCallErrorNumber/d'
expect_failure 40-container 'hadolint findings' 'apt-get without --no-install-recommends' Dockerfile 's/apt-get install -y --no-install-recommends ca-certificates/apt-get install -y ca-certificates/'
expect_failure 40-container 'docker-compose config rejected' 'an unknown compose key' docker-compose.yml 's/^    stop_grace_period: 45s.*/    stop_grace_periodd: 45s/'
expect_failure 40-container 'is not the user the stage creates' 'USER not the created user' Dockerfile 's/^USER 10001:10001$/USER 10002:10002/'
expect_failure 40-container 'is not the copied binary' 'ENTRYPOINT not the copied binary' Dockerfile 's|^ENTRYPOINT \["/usr/local/bin/sqs2pg"\]|ENTRYPOINT ["/usr/bin/sqs2pg"]|'
expect_failure 70-supply-chain 'license' 'a needed license not allowed' deny.toml '/^  "Zlib",/d'

# An advisory against a crate of the tree, in a copy of the snapshot.
cases=$((cases + 1))
db="$work/advisory-db"
cp -r "$SQS2PG_ADVISORY_DB/." "$db"
mkdir -p "$db/crates/zeroize"
printf '```toml\n[advisory]\nid = "RUSTSEC-2099-0001"\npackage = "zeroize"\ndate = "2099-01-01"\n\n[versions]\npatched = []\n```\n\n# selftest: every zeroize is vulnerable\n\nA made-up advisory.\n' \
  >"$db/crates/zeroize/RUSTSEC-2099-0001.md"
rc=0; out=$(SQS2PG_ADVISORY_DB="$db" bash "$here/70-supply-chain.sh" "$tree" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] && grep -qF 'RUSTSEC-2099-0001' <<<"$out"; then say "ok: an advisory against zeroize -> 70-supply-chain fails (RUSTSEC-2099-0001)"
else say "NOT CAUGHT: an advisory against zeroize (exit $rc)"; printf '%s\n' "$out" | tail -n 5 >&2; fails=$((fails + 1)); fi

say "$((cases - fails)) of $cases broken copies caught"
[ "$fails" -eq 0 ]
