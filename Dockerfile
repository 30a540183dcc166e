# flux-engine in a container: a build stage with the Rust toolchain, and a small runtime image
# (Debian slim: glibc like the build stage, coreutils' `timeout` for the scheduling examples of
# docs/archive.md, CA certificates for AWS's TLS endpoints) that runs as a non-root user.
#
#   docker build -t flux-engine:0.1.0 .
#   docker run --rm flux-engine:0.1.0 flux-engine validate pipelines/nightly-archive.toml
#
# tests/docker-smoke.sh builds and checks it where a container runtime is available.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The manifests first, so a change in the sources alone reuses the fetched dependencies.
COPY Cargo.toml Cargo.lock ./
COPY engine/Cargo.toml engine/Cargo.toml
COPY stages/Cargo.toml stages/Cargo.toml
RUN mkdir -p engine/src stages/src \
    && echo 'fn main() {}' > engine/src/main.rs \
    && touch engine/src/lib.rs stages/src/lib.rs \
    && cargo fetch --locked
COPY engine engine
COPY stages stages
RUN cargo build --release --locked -p flux-engine --bin flux-engine \
    && install -m 0755 target/release/flux-engine /usr/local/bin/flux-engine

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /opt/flux-engine --shell /usr/sbin/nologin flux
COPY --from=build /usr/local/bin/flux-engine /usr/local/bin/flux-engine
COPY --chown=root:root pipelines /opt/flux-engine/pipelines
COPY --chown=root:root schemas /opt/flux-engine/schemas
COPY --chown=root:root examples /opt/flux-engine/examples
WORKDIR /opt/flux-engine
USER 10001:10001
# No ENTRYPOINT: schedulers run `timeout … flux-engine run …` (docs/archive.md).
CMD ["flux-engine", "--help"]
