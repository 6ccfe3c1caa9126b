#!/bin/bash
# The pod network of an offline kind cluster (e2e/kind/up.sh runs it after `kind create cluster`): what kind's
# kindnetd would do, done once from outside, since the offline node image carries no CNI daemon.
#
#   KUBECONFIG=... bash e2e/kind/cni.sh <cluster>
#
# Every node gets the CNI configuration kindnetd writes (ptp veth pairs + host-local IPAM on the node's podCIDR +
# portmap; Debian's CNI plugins), and a route to every other node's podCIDR through that node's address on kind's
# Docker network. All nodes share that network (one L2 segment), so no encapsulation is needed. Pod traffic that
# leaves the cluster is not masqueraded: the harness's pods talk only to each other and to the API server.
set -euo pipefail
cluster=${1:?usage: cni.sh <cluster>}
KUBECTL=${KUBECTL:-kubectl}

mapfile -t rows < <("$KUBECTL" get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
((${#rows[@]} > 0)) || { echo "cni.sh: no nodes in cluster $cluster" >&2; exit 1; }
for row in "${rows[@]}"; do
	read -r node cidr ip <<<"$row"
	[[ -n "$cidr" && -n "$ip" ]] || { echo "cni.sh: node $node has no podCIDR or InternalIP yet" >&2; exit 1; }
	docker exec -i "$node" bash -c 'mkdir -p /etc/cni/net.d && cat > /etc/cni/net.d/10-autoscale-harness.conflist' <<JSON
{
  "cniVersion": "0.4.0",
  "name": "autoscale-harness",
  "plugins": [
    {"type": "ptp", "ipMasq": false, "mtu": 1500,
     "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
              "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "$cidr"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
	for other in "${rows[@]}"; do
		read -r onode ocidr oip <<<"$other"
		[[ "$onode" == "$node" ]] && continue
		docker exec "$node" ip route replace "$ocidr" via "$oip"
	done
	echo "node/$node: pod network $cidr (ptp), routes to $((${#rows[@]} - 1)) other nodes"
done
