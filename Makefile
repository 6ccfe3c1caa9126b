# One entry point for people and CI. `make demo` and `make test` are the two commands README promises work on a
# fresh machine; every other target is a building block.

CARGO ?= cargo

.PHONY: all demo test lint unit e2e serve bench calibration clean up down status binaries

HARNESS = $(CARGO) run --release -q -p e2e --bin autoscale-harness --

all: test

## The main job: watch a simulated V100 follow a stepped load (a live table of what autoscalers scrape).
demo:
	$(CARGO) run --release -p mock-vllm --example load_demo

## Everything CI checks: formatting, clippy with warnings as errors, every test, then the autoscaling e2e suite.
test: lint unit e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Library, binary and integration tests (doc examples are not tests here; benches run under `make bench`).
unit:
	$(CARGO) test --workspace --lib --bins --tests

## The autoscaling e2e suite: a fresh local cluster (real control plane + AIBrix controller), every scenario of
## e2e/scenarios side by side, report in .e2e/report (summary.json, report.md); non-zero exit on any unexpected
## result. `make e2e ONLY=kpa-panic,hpa-kv-cache` runs a subset.
ONLY ?=
e2e:
	$(HARNESS) run $(if $(ONLY),--only $(ONLY),)

## Print the V100 calibration table (simulated vs measured).
calibration:
	$(CARGO) test -p mock-vllm --test calibration -- --nocapture

## The local cluster: a real control plane + AIBrix controller and the node agent, in the background.
## kubeconfig: .e2e/kubeconfig. `make up NAME=b` starts a second one beside it.
NAME ?= default
up:
	$(HARNESS) up --name $(NAME)

down:
	$(HARNESS) down --name $(NAME)

status:
	$(HARNESS) status --name $(NAME)

## Build (or find cached) the pinned Go binaries: etcd, kube-*, the AIBrix controller manager.
binaries:
	bash e2e/go/build.sh

## Run one mock-vllm on :8000 with no simulated model-load delay.
serve:
	$(CARGO) run --release -p mock-vllm -- --startup-delay 0 --port 8000

## Loopback throughput and scheduling-jitter benchmark (not part of `test`).
bench:
	$(CARGO) bench -p mock-vllm --bench stream_load

clean:
	$(CARGO) clean
