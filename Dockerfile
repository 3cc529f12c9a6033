# syntax=docker/dockerfile:1
# sqs2pg container image: a static-ish Debian slim runtime with one binary, run as non-root.
#   docker build -t sqs2pg .
#   docker run --rm -e DATABASE_URL=... -e SQS2PG_KEYS_FILE=/keys -v $PWD/keys:/keys:ro sqs2pg run

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src/bin tests/it \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/sqs2pg-lambda.rs \
 && echo '' > src/lib.rs \
 && echo '' > tests/it/main.rs \
 && cargo build --release --locked --bin sqs2pg \
 && rm -rf src tests
COPY src ./src
COPY tests ./tests
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin sqs2pg \
 && strip target/release/sqs2pg

FROM debian:bookworm-slim
# Unpinned on purpose: the slim base's security updates should flow in on rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sqs2pg \
 && mkdir /keys && chown 10001 /keys && chmod 700 /keys
COPY --from=build /src/target/release/sqs2pg /usr/local/bin/sqs2pg
USER 10001
ENV SQS2PG_METRICS_ADDR=0.0.0.0:9898 \
    SQS2PG_LOG_FORMAT=json
EXPOSE 9898
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:9898/healthz"]
ENTRYPOINT ["/usr/local/bin/sqs2pg"]
CMD ["run"]
