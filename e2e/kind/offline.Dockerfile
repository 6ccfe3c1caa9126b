# The mock-vllm image of the offline kind path (e2e/kind/images.sh): the same contents as the top-level Dockerfile
# (mock-vllm and autoscale-harness, non-root user 10001, entrypoint mock-vllm), but with binaries built on the host
# (Debian 12, as the base) and a base bootstrapped from Debian's archive, since no registry serves rust or debian.
ARG BASE
FROM ${BASE}
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin mock
COPY mock-vllm autoscale-harness /usr/local/bin/
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["mock-vllm"]
