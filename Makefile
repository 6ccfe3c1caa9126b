# One entry point for people and CI. `make demo` and `make test` are the two commands README promises work on a
# fresh machine; every other target is a building block.

CARGO ?= cargo

.PHONY: all demo demo-mock test lint unit patch-tests e2e e2e-full e2e-patched e2e-patched-cover e2e-compare serve bench calibration clean up down status binaries

HARNESS = $(CARGO) run --release -q -p e2e --bin autoscale-harness --

all: test

## The main job: AIBrix's HPA / KPA / APA comparison on simulated V100s (one workload, three strategies side by
## side, live lines while it runs); plots and table in .e2e/report/demo/. `make demo FULL=1` for the 25-minute shape.
FULL ?=
demo:
	RUST_LOG=$${RUST_LOG:-warn} $(HARNESS) demo $(if $(FULL),--full,)

## One simulated V100 following a stepped load (a live table of what autoscalers scrape).
demo-mock:
	$(CARGO) run --release -p mock-vllm --example load_demo

## Everything CI checks: formatting, clippy with warnings as errors, every test, the controller's own Go tests on
## the patched build, the autoscaling e2e suite, then the patched controller on the scenarios tagged `patch-cover`
## (together they judge every patch; the whole patched suite, `make e2e-patched`, takes as long as the pristine one)
## and the pristine/patched comparison. CI (.ci/run) runs the kind tier, `make e2e-kind`, after this.
## Each step's time is printed after it and again, all together, at the end (a CI log keeps only its tail).
TEST_STEPS = lint unit patch-tests e2e e2e-patched-cover e2e-compare
test:
	@times=""; status=0; for step in $(TEST_STEPS); do \
		start=$$(date +%s); $(MAKE) --no-print-directory $$step || status=$$?; \
		line="$$step $$(( $$(date +%s) - start )) s (exit $$status)"; echo "make test: $$line"; \
		times="$$times$${times:+, }$$line"; [ $$status -eq 0 ] || break; \
	done; echo "make test steps: $$times"; exit $$status

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Library, binary and integration tests (doc examples are not tests here; benches run under `make bench`).
unit:
	$(CARGO) test --workspace --lib --bins --tests

## `go test` of every AIBrix package the patch series (e2e/go/aibrix-patches) touches, on the patched copy.
patch-tests:
	bash e2e/go/build.sh --test-patches

## The autoscaling e2e suite: a fresh local cluster (real control plane + AIBrix controller), every scenario of
## e2e/scenarios side by side, report in .e2e/report (summary.json, report.md); non-zero exit on any unexpected
## result. `make e2e ONLY=kpa-panic,hpa-kv-cache` runs a subset by name, `make e2e TAGS=kpa,cooldown` by tag;
## `make e2e` is the default tier (every scenario not tagged `full`), `make e2e TIER=full` (= `make e2e-full`) all.
## `make e2e AIBRIX=patched` (= `make e2e-patched`) runs the same scenarios against the controller built with
## e2e/go/aibrix-patches (report in .e2e/report-patched); `make e2e-compare` then puts both runs side by side.
ONLY ?=
TAGS ?=
TIER ?= default
CLUSTER ?= local
AIBRIX ?= pristine
e2e:
	RUST_LOG=$${RUST_LOG:-warn} $(HARNESS) run $(if $(ONLY),--only $(ONLY),) $(if $(TAGS),--tags $(TAGS),) \
		--tier $(TIER) --cluster $(CLUSTER) --aibrix $(AIBRIX) \
		$(if $(filter kind,$(CLUSTER)),--kubeconfig $(KIND_KUBECONFIG) --report-dir .e2e/report-kind,)

e2e-full:
	$(MAKE) e2e TIER=full

e2e-patched:
	$(MAKE) e2e AIBRIX=patched

## The patched controller on the scenarios that judge every patch (a test keeps the tag's cover whole).
e2e-patched-cover:
	$(MAKE) e2e AIBRIX=patched TAGS=patch-cover

e2e-compare:
	$(HARNESS) compare

## --- The kind path (README "kind"): a kind cluster of one control plane and two workers, AIBrix's controller and the
## metrics adapter as pods, the scenarios on it. Images come from registries where they answer, else are built here
## (KIND_IMAGES=auto|registry|offline; e2e/kind/up.sh). Versions: e2e/versions.env.
##   make kind-up && make e2e CLUSTER=kind ONLY=kpa-panic; make kind-down     (or all at once: make e2e-kind)
.PHONY: image kind-images kind-up kind-down e2e-kind docker-engine
DOCKER ?= docker
KIND_CLUSTER ?= autoscale-harness
KIND_KUBECONFIG = .e2e/kind/kubeconfig
KIND_TAGS ?= kind
pinned = $(shell sed -n 's/^$(1)=//p' e2e/versions.env)

## A Docker engine for the kind path (Debian's docker.io; this host's capability workaround: e2e/kind/host/).
docker-engine:
	bash e2e/kind/host/docker-engine.sh

## The mock-vllm image from the top-level Dockerfile (Rust and Debian images from a registry), tagged MOCK_VLLM_IMAGE.
image:
	$(DOCKER) build --build-arg RUST_IMAGE=$(call pinned,RUST_IMAGE) --build-arg RUNTIME_IMAGE=$(call pinned,RUNTIME_IMAGE) \
		-t $(call pinned,MOCK_VLLM_IMAGE) .

## Every image of the offline kind path, from Debian's archive and Go modules (node image, control-plane images,
## mock-vllm, AIBrix's controller); cached by the key of their inputs.
kind-images: docker-engine
	bash e2e/kind/images.sh

## The cluster, its pod network and fake GPUs, the images loaded, AIBrix's controller and the metrics adapter Available.
kind-up: docker-engine
	KIND_CLUSTER=$(KIND_CLUSTER) bash e2e/kind/up.sh

## Delete the cluster: no container or network of it is left.
kind-down:
	KIND_CLUSTER=$(KIND_CLUSTER) bash e2e/kind/up.sh --down

## The kind tier: cluster up, the image smoke test (tests/image_smoke.rs), the scenarios tagged KIND_TAGS (one per
## strategy at least), cluster down whatever failed (a half-made cluster too), after a diagnosis if anything failed.
e2e-kind: docker-engine
	status=0; KIND_CLUSTER=$(KIND_CLUSTER) bash e2e/kind/up.sh || status=$$?; \
		[ $$status -ne 0 ] || $(CARGO) test -q -p e2e --test image_smoke -- --ignored || status=$$?; \
		[ $$status -ne 0 ] || $(MAKE) e2e CLUSTER=kind TAGS=$(KIND_TAGS) || status=$$?; \
		[ $$status -eq 0 ] || KIND_CLUSTER=$(KIND_CLUSTER) bash e2e/kind/up.sh --diagnose; \
		$(MAKE) kind-down; exit $$status

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
