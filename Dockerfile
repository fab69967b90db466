# citybrain: multi-stage build. The builder compiles librdkafka (rdkafka-sys, with TLS via the
# system OpenSSL) and the engine (npm fetches the console's pinned front-end libraries, embedded
# in the binary: console/build.rs); the runtime image holds the binary and the rule library.
FROM rust:1.94-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev zlib1g-dev nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin citybrain

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/citybrain /usr/local/bin/citybrain
COPY rules/library /opt/citybrain/rules/library
# Checkpoints (deploy/citybrain.toml: [checkpoint] store): a folder the service user owns,
# mounted as a volume by docker-compose.yml so that they outlive the container.
RUN mkdir -p /var/lib/citybrain/checkpoints && chown -R 65532:65532 /var/lib/citybrain
WORKDIR /opt/citybrain
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["citybrain"]
CMD ["run", "--config", "/etc/citybrain/citybrain.toml"]
