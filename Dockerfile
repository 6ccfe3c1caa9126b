# syntax=docker/dockerfile:1
# mock-vllm (and the harness binary, whose `metrics-adapter` subcommand is the in-cluster metrics adapter) for kind.
#
#   make image            # = docker build --build-arg RUST_IMAGE=… --build-arg RUNTIME_IMAGE=… -t mock-vllm:dev .
#
# Image versions live in e2e/versions.env (RUST_IMAGE, RUNTIME_IMAGE); the defaults below must equal them
# (e2e/tests/kind_path.rs checks). Both stages are Debian 12, so the glibc the binaries link against is the one
# they run with. TLS is rustls (no OpenSSL), tokenizer data is compiled in: the runtime needs no extra packages.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:12.12-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY mock-vllm mock-vllm
COPY e2e e2e
RUN cargo build --release --locked --bin mock-vllm --bin autoscale-harness

FROM ${RUNTIME_IMAGE}
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mock
COPY --from=build /src/target/release/mock-vllm /src/target/release/autoscale-harness /usr/local/bin/
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["mock-vllm"]
