#!/usr/bin/env bash
# Dockerfile and compose (no container engine here: the image is never built):
#   - hadolint on the Dockerfile (exceptions: inline `# hadolint ignore=` with a reason),
#   - `docker-compose config -q` validates docker-compose.yml,
#   - the runtime stage uses what it copies: the binary COPY'd from the build stage is the
#     ENTRYPOINT, the USER is the uid the stage creates and owns /keys with, the CA bundle
#     the AWS SDK needs comes from the ca-certificates package it installs, and compose
#     runs the image it builds from this Dockerfile.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need hadolint; need docker-compose; need python3

hadolint "$root/Dockerfile" || die "hadolint findings above"
say "hadolint $(hadolint --version | sed 's/^Haskell Dockerfile Linter //'): clean"

(cd "$root" && docker-compose -f docker-compose.yml config -q) || die "docker-compose config rejected docker-compose.yml"
say "docker-compose $(docker-compose version --short) config: valid"

python3 - "$root" <<'PY' || die "the Dockerfile's runtime stage does not match what it copies"
import re, sys, yaml
root = sys.argv[1]
text = open(f"{root}/Dockerfile").read().replace("\\\n", " ")
stages = re.split(r"(?m)^FROM ", text)
runtime = stages[-1]
build = stages[-2]
def one(pattern, where, what):
    m = re.findall(pattern, where, re.M)
    if len(m) != 1:
        sys.exit(f"40-container: expected one {what}, found {m}")
    return m[0]
src, dst = one(r"^COPY --from=build (\S+) (\S+)$", runtime, "COPY --from=build in the runtime stage")
if src not in build or not re.search(rf"install .*\S+ {re.escape(src)}", build):
    sys.exit(f"40-container: the build stage never installs {src}")
entry = one(r'^ENTRYPOINT \["([^"]+)"\]', runtime, "ENTRYPOINT")
if entry != dst:
    sys.exit(f"40-container: ENTRYPOINT {entry} is not the copied binary {dst}")
user = one(r"^USER (\S+)$", runtime, "USER")
uid, _, gid = user.partition(":")
if not re.search(rf"useradd --uid {uid} --gid {gid or uid}\b", runtime):
    sys.exit(f"40-container: USER {user} is not the user the stage creates")
if not re.search(rf"install -d -o {uid} -g {gid or uid} -m 700 /keys", runtime):
    sys.exit(f"40-container: /keys is not owned by USER {user}")
if not re.search(r"apt-get install -y --no-install-recommends ca-certificates", runtime):
    sys.exit("40-container: the runtime stage installs no ca-certificates (the CA bundle rustls-native-certs reads)")
compose = yaml.safe_load(open(f"{root}/docker-compose.yml"))
built = [n for n, s in compose["services"].items() if s.get("build") == "."]
if len(built) != 1:
    sys.exit(f"40-container: expected one compose service built from the Dockerfile, found {built}")
image = compose["services"][built[0]]["image"]
users = [n for n, s in compose["services"].items() if s.get("image") == image]
print(f"40-container: runtime stage: {dst} from the build stage is the ENTRYPOINT, USER {user} owns /keys, "
      f"ca-certificates installed; compose builds {image} once and runs it as {', '.join(users)}", file=sys.stderr)
PY
