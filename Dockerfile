# syntax=docker/dockerfile:1
# sqs2pg container image: one binary on Debian slim, run as non-root uid 10001.
#
#   docker build -t sqs2pg:0.1.0 .
#   docker run --rm sqs2pg:0.1.0 --help
#   docker run --rm --user "$(id -u)" -p 9898:9898 \
#     -e DATABASE_URL -e AWS_REGION -e SQS2PG_QUEUE_URL \
#     -e SQS2PG_KEYS_FILE=/keys/keys -v "$PWD/keys:/keys/keys:ro" sqs2pg:0.1.0 run
#
# (`--user "$(id -u)"` because a bind-mounted keys file keeps its host owner and must stay
# mode 600: sqs2pg refuses a keys file that group or others can read.)
# Only `sqs2pg` is built here; the Lambda handler is packaged differently
# (deploy/lambda/README.md). Deployment guide: docs/DEPLOYMENT.md.

############################################################ build
FROM docker.io/library/rust:1-bookworm AS build
WORKDIR /src

# 1. Dependencies only. This layer depends on Cargo.toml and Cargo.lock alone, so editing
#    the code reuses the compiled dependencies. It builds a copy of the manifest without its
#    [[bin]] / [[test]] / [[bench]] / [[example]] sections (cargo wants every declared
#    target's file to exist) against two stub sources; the features and dependencies, hence
#    the compiled crates, are the real ones.
COPY Cargo.toml Cargo.lock ./
RUN awk '/^\[\[(bin|test|bench|example)\]\]/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
      Cargo.toml > Cargo.deps.toml \
 && mv Cargo.deps.toml Cargo.toml \
 && mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo build --release --locked --bin sqs2pg \
 && rm -rf src Cargo.toml target/release/sqs2pg target/release/deps/sqs2pg-* \
           target/release/deps/libsqs2pg-* target/release/.fingerprint/sqs2pg-*

# 2. The project as .dockerignore leaves it (the real manifest, src/, and the files of every
#    target it declares). Not stripped: the release profile keeps line tables, so a panic's
#    backtrace names lines.
COPY . .
RUN cargo build --release --locked --bin sqs2pg \
 && install -D -m 755 target/release/sqs2pg /out/sqs2pg \
 && /out/sqs2pg --version

############################################################ runtime
FROM docker.io/library/debian:bookworm-slim

# ca-certificates: the AWS SDK (rustls) verifies SQS and KMS endpoints against the system
# roots. Nothing else is installed: the HEALTHCHECK below uses bash, which slim already has.
# Unpinned on purpose, so that a rebuild picks up Debian's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 sqs2pg \
 && useradd --uid 10001 --gid 10001 --no-log-init --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sqs2pg \
 && install -d -m 755 /etc/sqs2pg \
 && install -d -o 10001 -g 10001 -m 700 /keys

COPY --from=build /out/sqs2pg /usr/local/bin/sqs2pg

USER 10001:10001
# /keys: an empty, owner-only directory for a keyring volume (docker-compose.yml uses it;
# a new named volume takes this owner and mode). /etc/sqs2pg: mount point for the config
# file and the keyring in Kubernetes (deploy/k8s/deployment.yaml).
ENV SQS2PG_METRICS_ADDR=0.0.0.0:9898 \
    SQS2PG_LOG_FORMAT=json
EXPOSE 9898

# Liveness only (`/healthz`: the process serves HTTP), never readiness: a consumer that
# waits for its database is alive. It needs the metrics listener, so it reads the port from
# SQS2PG_METRICS_ADDR (and reports unhealthy if that is unset or not on loopback or a
# wildcard address). bash's /dev/tcp speaks the HTTP: no curl in the image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${SQS2PG_METRICS_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["/usr/local/bin/sqs2pg"]
CMD ["run"]
