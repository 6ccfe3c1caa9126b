#!/usr/bin/env bash
# Fake GPU capacity on kind nodes: every node (or the ones named) advertises `nvidia.com/gpu: 8`, so the mock-vllm
# pods' `nvidia.com/gpu: 1` requests schedule as on the local cluster (whose node agent registers the same capacity).
#
#   e2e/kind/fake-gpus.sh [node...]        # uses the current kubectl context (`make kind-up` runs it)
#
# The capacity is written to the node *status* (the status subresource); the kubelet copies capacity into
# allocatable on its next status update (~10 s), and the script waits for that. No device plugin runs, so nothing
# is allocated to containers: the pods only pass scheduling. A kubelet restart resets the status; run it again then.
set -euo pipefail
GPUS="${GPUS:-8}"
KUBECTL="${KUBECTL:-kubectl}"
nodes=("$@")
if ((${#nodes[@]} == 0)); then
	mapfile -t nodes < <("$KUBECTL" get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
fi
for node in "${nodes[@]}"; do
	"$KUBECTL" patch node "$node" --subresource=status --type=json \
		-p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$GPUS\"}]" >/dev/null
	echo "node/$node: capacity nvidia.com/gpu=$GPUS"
done
for node in "${nodes[@]}"; do
	for _ in $(seq 1 60); do
		got=$("$KUBECTL" get node "$node" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')
		[[ "$got" == "$GPUS" ]] && break
		sleep 1
	done
	[[ "$got" == "$GPUS" ]] || { echo "node/$node: allocatable nvidia.com/gpu is '$got' after 60 s" >&2; exit 1; }
done
echo "all ${#nodes[@]} nodes allocate nvidia.com/gpu=$GPUS"
