#!/bin/bash
# Starts a Docker engine on this machine for the kind tier, from Debian's packages: the one place that knows how
# this host differs from a workstation with Docker installed.
#
#   bash e2e/kind/host/docker-engine.sh        # idempotent: returns at once when `docker info` already answers
#
# - Installs docker.io (dockerd, containerd, runc) and the tools the images are built with (debootstrap, jq,
#   libcap2-bin) when missing. Root only, like dockerd itself.
# - Host workaround, only where the host needs it: when the capability bounding set lacks a capability that
#   `docker run --privileged` requests (here CAP_SYS_RESOURCE), registers runc-keep-bounding-set as dockerd's default
#   runtime; on any other host dockerd runs runc unchanged.
# - Starts dockerd in the background (log: .e2e/dockerd.log; storage driver overlay2; cgroup v1 or v2, whichever
#   the host has) and waits until it answers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
log_dir="$repo/.e2e"
mkdir -p "$log_dir"

if docker info >/dev/null 2>&1; then
	echo "docker-engine: a Docker engine already answers ($(docker info --format '{{.ServerVersion}}'))"
	exit 0
fi

if [[ $(id -u) != 0 ]]; then
	echo "docker-engine: no Docker engine answers and this is not root: start dockerd yourself (or run as root)" >&2
	exit 1
fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v jq >/dev/null || need+=(jq)
command -v capsh >/dev/null || need+=(libcap2-bin)
if ((${#need[@]})); then
	echo "docker-engine: installing ${need[*]} from Debian's archive"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >"$log_dir/apt-docker.log" 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log_dir/apt-docker.log" 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >>"$log_dir/apt-docker.log" 2>&1
	} || {
		tail -20 "$log_dir/apt-docker.log" >&2
		exit 1
	}
fi

# CAP_SYS_RESOURCE is capability 24: is it in this process's bounding set (= the host's for a root shell)?
bounding=$((16#$(sed -n 's/^CapBnd:\s*//p' /proc/self/status)))
daemon_json=/etc/docker/daemon.json
mkdir -p /etc/docker
if (((bounding >> 24) & 1)); then
	echo '{"storage-driver": "overlay2"}' >"$daemon_json"
else
	wrapper=/usr/local/libexec/autoscale-harness/runc-keep-bounding-set
	install -D -m 0755 "$here/runc-keep-bounding-set" "$wrapper"
	echo "docker-engine: this host's capability bounding set lacks CAP_SYS_RESOURCE: dockerd runs $wrapper"
	cat >"$daemon_json" <<JSON
{
  "storage-driver": "overlay2",
  "runtimes": {"runc-keep-bounding-set": {"path": "$wrapper"}},
  "default-runtime": "runc-keep-bounding-set"
}
JSON
fi

# Debian's package may have started dockerd through its init script with another configuration: stop it first.
pkill -x dockerd 2>/dev/null && sleep 1 || true
nohup dockerd >"$log_dir/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		echo "docker-engine: dockerd $(docker info --format '{{.ServerVersion}}') up (runtime $(docker info --format '{{.DefaultRuntime}}'), log $log_dir/dockerd.log)"
		exit 0
	fi
	sleep 1
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $log_dir/dockerd.log:" >&2
tail -20 "$log_dir/dockerd.log" >&2
exit 1
