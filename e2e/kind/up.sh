#!/bin/bash
# The kind cluster of the harness, start to finish: node image, cluster, networking, fake GPUs, images loaded,
# AIBrix's controller and the metrics adapter deployed and Available.
#
#   bash e2e/kind/up.sh          # = make kind-up deploy
#   bash e2e/kind/up.sh --down   # = make kind-down: delete the cluster (its containers and the `kind` network)
#   bash e2e/kind/up.sh --diagnose  # what a failed run needs said before the cluster goes (make e2e-kind runs it)
#
# Two sources of images (KIND_IMAGES):
#   registry   the pinned public images (KIND_NODE_IMAGE, AIBRIX_CONTROLLER_IMAGE of e2e/versions.env), kind's own CNI;
#              the mock-vllm image from the top-level Dockerfile (`make image`).
#   offline    everything built here from Debian's archive and Go modules (e2e/kind/images.sh), for machines that
#              reach no container registry (this development machine and CI): the node image runs no CNI daemon, so
#              e2e/kind/cni.sh gives each node its pod network once the cluster exists.
#   auto       (default) registry when registry.k8s.io answers within 5 s, offline otherwise.
#
# Timings of every step go to stderr and to .e2e/kind/timings.tsv (step, seconds), read by the README's kind section.
# Environment: KIND_CLUSTER (default autoscale-harness), KIND (kind CLI; default the one e2e/go/build.sh --kind built),
# KUBECTL (default the pinned kubectl), KIND_IMAGES.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
state="$repo/.e2e/kind"
mkdir -p "$state"
pinned() { sed -n "s/^$1=//p" "$repo/e2e/versions.env"; }
log() { echo "kind-up: $*" >&2; }
die() {
	echo "kind-up: ERROR: $*" >&2
	exit 1
}

cluster=${KIND_CLUSTER:-autoscale-harness}
kubeconfig="$state/kubeconfig"
# The pinned binaries' directories (KIND_BIN_DIR, KUBERNETES_BIN_DIR, ...): `--print-dir` finds them without
# building; without it build.sh builds what is missing first.
binaries() {
	local out
	out=$(bash "$repo/e2e/go/build.sh" --kind "$@") || return 1
	eval "$out"
}

if [[ "${1:-}" == --diagnose ]]; then
	# The facts a red kind run is read by in a CI log: aggregated APIs, nodes, pods not Running, the adapter's and
	# the controller's last lines, recent warning events. Never fails (a half-made cluster answers what it can).
	binaries --print-dir 2>/dev/null || true
	kubectl=${KUBECTL:-${KUBERNETES_BIN_DIR:+$KUBERNETES_BIN_DIR/kubectl}}
	kubectl=${kubectl:-kubectl}
	k() { timeout 30 "$kubectl" --kubeconfig "$kubeconfig" "$@" 2>&1 | sed 's/^/  /' || true; }
	log "diagnosis of cluster $cluster:"
	echo "kind-up: APIServices" >&2 && k get apiservices -o 'custom-columns=NAME:.metadata.name,AVAILABLE:.status.conditions[?(@.type=="Available")].status,REASON:.status.conditions[?(@.type=="Available")].reason,MESSAGE:.status.conditions[?(@.type=="Available")].message' | grep -v "Local " >&2
	echo "kind-up: nodes" >&2 && k get nodes -o wide >&2
	echo "kind-up: pods not Running or not Ready" >&2 && k get pods -A -o wide | awk 'NR == 1 { print; next } { split($3, r, "/"); if ($4 != "Running" || r[1] != r[2]) print }' >&2
	echo "kind-up: namespaces" >&2 && k get namespaces >&2
	echo "kind-up: metrics adapter (last 30 lines)" >&2 && k -n autoscale-harness-system logs deployment/metrics-adapter --tail=30 --all-containers >&2
	echo "kind-up: metrics adapter pod" >&2 && k -n autoscale-harness-system describe pods -l app=autoscale-harness-metrics-adapter | tail -25 >&2
	echo "kind-up: warning events (last 30)" >&2 && k get events -A --field-selector type=Warning --sort-by=.lastTimestamp | tail -30 >&2
	echo "kind-up: node memory and load" >&2 && docker stats --no-stream --format '{{.Name}} cpu {{.CPUPerc}} mem {{.MemUsage}}' $(docker ps -q --filter "label=io.x-k8s.kind.cluster=$cluster") 2>&1 | sed 's/^/  /' >&2 || true
	exit 0
fi

if [[ "${1:-}" == --down ]]; then
	# Tearing down builds nothing: without the pinned kind CLI no cluster of ours was made with it.
	binaries --print-dir 2>/dev/null || true
	kind=${KIND:-${KIND_BIN_DIR:+$KIND_BIN_DIR/kind}}
	kind=${kind:-kind}
	if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
		"$kind" delete cluster --name "$cluster"
	fi
	# kind leaves its `kind` network behind on purpose (other clusters share it); none of ours remain, so remove it.
	if docker network inspect kind >/dev/null 2>&1 && [[ -z "$(docker network inspect kind -f '{{range .Containers}}x{{end}}')" ]]; then
		docker network rm kind >/dev/null
	fi
	rm -f "$kubeconfig" "$state/kubeconfig-internal"
	log "cluster $cluster deleted; containers left from it: $(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$cluster" | wc -l)"
	exit 0
fi

timings="$state/timings.tsv"
: >"$timings"
step_start=$SECONDS
timed() { # <step name>: record the time since the previous call
	local took=$((SECONDS - step_start))
	printf '%s\t%s\n' "$1" "$took" >>"$timings"
	log "$1: ${took} s"
	step_start=$SECONDS
}

mode=${KIND_IMAGES:-auto}
if [[ "$mode" == auto ]]; then
	if curl -fsS -m 5 -o /dev/null https://registry.k8s.io/v2/ 2>/dev/null; then mode=registry; else mode=offline; fi
	log "KIND_IMAGES=auto: registry.k8s.io $([[ $mode == registry ]] && echo answers || echo "does not answer"): $mode images"
fi
case "$mode" in
registry | offline) ;;
*) die "KIND_IMAGES=$mode: use registry, offline or auto" ;;
esac

config="$state/kind-config.yaml"
cp "$repo/kind-config.yaml" "$config"
if [[ "$mode" == offline ]]; then
	# images.sh builds the Go binaries it packs (build.sh --kind); here they are only looked up.
	bash "$here/images.sh"
	binaries --print-dir || die "the Go binaries are missing after images.sh"
	timed "images (offline build)"
	node_image="$(pinned KIND_OFFLINE_NODE_REPOSITORY):$(pinned KUBERNETES_VERSION)"
	controller_image="$(pinned KIND_OFFLINE_CONTROLLER_REPOSITORY):$(pinned AIBRIX_VERSION)"
	# The offline node image carries no CNI daemon, and its etcd is the pinned ETCD_VERSION (kubeadm's default tag
	# is its own etcd release).
	cat >>"$config" <<EOF
# --- appended by e2e/kind/up.sh for the offline node image ---
networking:
  disableDefaultCNI: true
kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    etcd:
      local:
        imageTag: $(pinned ETCD_VERSION)
EOF
else
	binaries || die "e2e/go/build.sh --kind failed"
	docker image inspect "$(pinned MOCK_VLLM_IMAGE)" >/dev/null 2>&1 || make -C "$repo" image
	timed "images (registry: mock-vllm image)"
	node_image=$(pinned KIND_NODE_IMAGE)
	controller_image=$(pinned AIBRIX_CONTROLLER_IMAGE)
fi

kind=${KIND:-$KIND_BIN_DIR/kind}
kubectl=${KUBECTL:-$KUBERNETES_BIN_DIR/kubectl}
if "$kind" get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "cluster $cluster exists: deleting it first"
	"$kind" delete cluster --name "$cluster"
fi
"$kind" create cluster --name "$cluster" --config "$config" --image "$node_image" --kubeconfig "$kubeconfig"
timed "kind create cluster"
# The same credentials for a container on kind's Docker network (the image smoke test's metrics adapter).
"$kind" get kubeconfig --internal --name "$cluster" >"$state/kubeconfig-internal"
chmod 0644 "$state/kubeconfig-internal"

export KUBECONFIG="$kubeconfig"
if [[ "$mode" == offline ]]; then
	KUBECTL="$kubectl" bash "$here/cni.sh" "$cluster"
	timed "pod network (cni.sh)"
fi
"$kubectl" wait --for=condition=Ready node --all --timeout=180s >/dev/null
KUBECTL="$kubectl" bash "$here/fake-gpus.sh"
timed "nodes Ready, fake GPUs"

"$kind" load docker-image --name "$cluster" "$(pinned MOCK_VLLM_IMAGE)"
[[ "$mode" == offline ]] && "$kind" load docker-image --name "$cluster" "$controller_image"
timed "kind load docker-image"

# AIBrix's controller and the metrics adapter. Offline the CRD comes from the aibrix module in the Go module cache
# (the kustomization's remote base needs github.com) and the controller image is the one built here.
if [[ "$mode" == offline ]]; then
	"$kubectl" apply --server-side -f "$AIBRIX_PODAUTOSCALER_CRD_PATH" >/dev/null
	for f in namespace rbac deployment; do
		sed "s#image: $(pinned AIBRIX_CONTROLLER_IMAGE)#image: $controller_image#" "$repo/manifests/aibrix/$f.yaml"
		echo "---"
	done | "$kubectl" apply --server-side -f - >/dev/null
else
	"$kubectl" apply --server-side -k "$repo/manifests/aibrix" >/dev/null
fi
"$kubectl" wait --for=condition=Established crd/podautoscalers.autoscaling.aibrix.ai --timeout=60s >/dev/null
"$kubectl" apply --server-side -k "$repo/manifests/metrics-adapter" >/dev/null
"$kubectl" -n aibrix-system rollout status deployment/aibrix-autoscaling-controller-manager --timeout=180s
"$kubectl" -n autoscale-harness-system rollout status deployment/metrics-adapter --timeout=180s
"$kubectl" wait --for=condition=Available apiservice/v1beta2.custom.metrics.k8s.io apiservice/v1beta1.metrics.k8s.io --timeout=90s
# Available is not enough: once both APIServices stayed Available while the aggregator answered 404 for them
# without forwarding a request to the adapter (every scenario then failed on discovery). Require an answer through
# the API server, and if none comes, restart kube-apiserver once (the kubelet starts its static pod again).
aggregated_answer() {
	"$kubectl" get --raw /apis/custom.metrics.k8s.io/v1beta2 >/dev/null 2>&1 &&
		"$kubectl" get --raw /apis/metrics.k8s.io/v1beta1 >/dev/null 2>&1
}
wait_aggregated() { # <seconds>
	local until=$((SECONDS + $1))
	until aggregated_answer; do
		((SECONDS < until)) || return 1
		sleep 2
	done
}
if ! wait_aggregated 60; then
	log "the metrics APIs are Available but do not answer through the API server ($("$kubectl" get --raw /apis/metrics.k8s.io/v1beta1 2>&1 | head -c 200)); restarting kube-apiserver once"
	docker exec "$cluster-control-plane" sh -c 'crictl stop $(crictl ps --name kube-apiserver -q)' >/dev/null
	sleep 5
	wait_aggregated 120 || die "the metrics APIs still do not answer through the API server after a kube-apiserver restart (bash e2e/kind/up.sh --diagnose)"
	log "the metrics APIs answer after the kube-apiserver restart"
fi
timed "deploy (AIBrix controller, metrics adapter)"
log "cluster $cluster up ($mode images); KUBECONFIG=$kubeconfig; timings in $timings"
