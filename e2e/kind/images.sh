#!/bin/bash
# Builds every image the kind path needs on a machine that reaches no container registry, from Debian's archive
# and Go modules only (versions: e2e/versions.env):
#
#   bash e2e/kind/images.sh            # build what is missing (each image is cached under a key of its inputs)
#   bash e2e/kind/images.sh --rebuild  # rebuild all of them
#
# Images (all local; nothing is pushed):
#   autoscale-harness/debian:<suite>            debootstrap --variant=minbase of DEBIAN_SUITE, `docker import`ed
#   autoscale-harness/kind-rootfs:<suite>       the same plus what a kind node runs (systemd, containerd, runc, CNI
#                                               plugins, iptables, conntrack ...), Debian's packages
#   autoscale-harness/kind-node-base:<kind>     kind-rootfs + kind's node files (entrypoint, containerd config,
#                                               kubelet and containerd units) read from the kind module at KIND_VERSION
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler,proxy}:<KUBERNETES_VERSION>, registry.k8s.io/etcd:
#   <ETCD_VERSION>, registry.k8s.io/coredns/coredns:<COREDNS_VERSION>, autoscale-harness/pause:catatonit
#                                               the images kubeadm runs, each the binary built by e2e/go/build.sh
#   autoscale-harness/kind-node:<KUBERNETES_VERSION>
#                                               the node image: kind-node-base + kubelet, kubeadm, kubectl, crictl
#                                               and the images above preloaded into containerd (kubeadm never pulls)
#   mock-vllm:dev (MOCK_VLLM_IMAGE)             mock-vllm + autoscale-harness (the metrics adapter), host-built
#   autoscale-harness/aibrix-controller-manager:<AIBRIX_VERSION>
#                                               AIBrix's controller manager built from its module (pristine)
#
# What a node image must hold is read from kind's own builder (pkg/build/nodeimage/buildcontext.go at KIND_VERSION):
# kubeadm, kubelet and kubectl in /usr/bin, /kind/version, the images kubeadm needs imported into containerd's k8s.io
# namespace (`ctr images import --no-unpack`), and the entrypoint `/usr/local/bin/entrypoint /sbin/init`.
# This node image's own choices: Debian's containerd and runc instead of kind's source builds, no kindnetd (not
# served by the module proxy; e2e/kind/cni.sh gives each node a bridge network and routes instead), catatonit as
# the sandbox ("pause") image, and a plain host-path StorageClass.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work="$repo/.e2e/kind/images"
rebuild=0
for arg in "$@"; do
	case "$arg" in
	--rebuild) rebuild=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "images.sh: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "images.sh: $*" >&2; }
die() {
	echo "images.sh: ERROR: $*" >&2
	exit 1
}
pinned() { sed -n "s/^$1=//p" "$repo/e2e/versions.env"; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (bash e2e/kind/host/docker-engine.sh starts one)"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"

suite=$(pinned DEBIAN_SUITE)
mirror=$(pinned DEBIAN_MIRROR)
k8s=$(pinned KUBERNETES_VERSION)
etcd=$(pinned ETCD_VERSION)
coredns=$(pinned COREDNS_VERSION)
kind_version=$(pinned KIND_VERSION)
aibrix=$(pinned AIBRIX_VERSION)
mock_image=$(pinned MOCK_VLLM_IMAGE)
node_image="$(pinned KIND_OFFLINE_NODE_REPOSITORY):$k8s"
controller_image="$(pinned KIND_OFFLINE_CONTROLLER_REPOSITORY):$aibrix"
pause_image=$(pinned KIND_OFFLINE_PAUSE_IMAGE)

mkdir -p "$work"
log "Go binaries (e2e/go/build.sh --kind) ..."
eval "$(bash "$repo/e2e/go/build.sh" --kind)"

# An image is rebuilt when the key of its inputs (a label on it) changes.
image_key() { docker image inspect -f '{{index .Config.Labels "autoscale-harness.key"}}' "$1" 2>/dev/null || true; }
fresh() { [[ $rebuild == 0 && "$(image_key "$1")" == "$2" ]]; }
key_of() { cat "$@" | sha256sum | cut -c1-16; }
step() {
	log "$1 ..."
	step_start=$SECONDS
}
done_step() { log "$1 in $((SECONDS - step_start)) s"; }

# --- Debian root filesystems ---------------------------------------------------------------------------------------
# debootstrap keeps the .debs it fetched in one cache, so the second root filesystem downloads only what it adds.
node_packages=systemd,conntrack,iptables,nftables,iproute2,ethtool,kmod,libseccomp2,pigz,bash,ca-certificates,procps,jq,socat,containerd,runc,containernetworking-plugins,catatonit
bootstrap() { # <image> <key> [--include=...]
	local image=$1 key=$2 include=${3:-}
	fresh "$image" "$key" && {
		log "cached   $image"
		return 0
	}
	step "debootstrap $suite${include:+ with $include} -> $image"
	local root="$work/rootfs-$(echo "$image" | tr '/:' '--')"
	rm -rf "$root"
	mkdir -p "$work/debs"
	debootstrap --variant=minbase --cache-dir="$work/debs" ${include:+"$include"} "$suite" "$root" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || {
		tail -20 "$work/debootstrap.log" >&2
		die "debootstrap of $image failed (log: $work/debootstrap.log)"
	}
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
	tar -C "$root" -c . | docker import --change "LABEL autoscale-harness.key=$key" --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
	rm -rf "$root"
	done_step "$image"
}
debian_image="autoscale-harness/debian:$suite"
bootstrap "$debian_image" "$(echo "$suite $mirror minbase" | sha256sum | cut -c1-16)"
rootfs_image="autoscale-harness/kind-rootfs:$suite"
bootstrap "$rootfs_image" "$(echo "$suite $mirror $node_packages" | sha256sum | cut -c1-16)" "--include=$node_packages"

# --- docker build helper: a context directory holding only what the Dockerfile copies ----------------------------
build() { # <image> <key> <context dir> (Dockerfile inside) [docker build arguments...]
	local image=$1 key=$2 ctx=$3
	shift 3
	fresh "$image" "$key" && {
		log "cached   $image"
		return 0
	}
	step "docker build $image"
	# The engine's legacy builder prints a deprecation notice on every build: output goes to a log, shown on failure.
	docker build -q --label "autoscale-harness.key=$key" "$@" -t "$image" "$ctx" >"$work/docker-build.log" 2>&1 || {
		tail -20 "$work/docker-build.log" >&2
		die "docker build of $image failed (context $ctx)"
	}
	done_step "$image"
}

# --- kind node base: kind's node files on the Debian root filesystem ----------------------------------------------
kind_files="$KIND_MODULE_DIR/images/base/files"
[[ -f "$kind_files/usr/local/bin/entrypoint" ]] || die "kind's node files are not at $kind_files"
ctx="$work/ctx-node-base"
rm -rf "$ctx"
mkdir -p "$ctx"
cp -r "$kind_files" "$ctx/files"
chmod -R u+w "$ctx/files"
# Debian's containerd runs the pause image of this node image, not kind's registry.k8s.io/pause.
sed -i "s#sandbox_image = .*#sandbox_image = \"$pause_image\"#" "$ctx/files/etc/containerd/config.toml"
cp "$here/node/Dockerfile" "$ctx/Dockerfile"
mkdir -p "$ctx/files/etc/systemd/system/containerd.service.d"
cp "$here/node/containerd.service.d/"*.conf "$ctx/files/etc/systemd/system/containerd.service.d/"
base_image="autoscale-harness/kind-node-base:$kind_version"
build "$base_image" "$(cd "$ctx" && find . -type f | sort | xargs cat | cat - <(image_key "$rootfs_image") | sha256sum | cut -c1-16)" "$ctx" \
	--build-arg "ROOTFS=$rootfs_image"

# --- the images kubeadm runs ---------------------------------------------------------------------------------------
binary_image() { # <image> <from> <binary path> <path in the image> [USER]
	local image=$1 from=$2 bin=$3 dest=$4 user=${5:-}
	local ctx="$work/ctx-$(basename "$bin")"
	rm -rf "$ctx"
	mkdir -p "$ctx"
	cp "$bin" "$ctx/"
	cat >"$ctx/Dockerfile" <<EOF
FROM $from
COPY $(basename "$bin") $dest
${user:+USER $user}
ENTRYPOINT ["$dest"]
EOF
	build "$image" "$(key_of "$ctx/Dockerfile" "$bin" <(image_key "$from"))" "$ctx"
}
for b in kube-apiserver kube-controller-manager kube-scheduler; do
	binary_image "registry.k8s.io/$b:$k8s" "$debian_image" "$KUBERNETES_BIN_DIR/$b" "/usr/local/bin/$b"
done
# kube-proxy programs iptables and conntrack: the root filesystem with those.
binary_image "registry.k8s.io/kube-proxy:$k8s" "$rootfs_image" "$KUBERNETES_BIN_DIR/kube-proxy" /usr/local/bin/kube-proxy
binary_image "registry.k8s.io/etcd:$etcd" "$debian_image" "$ETCD_BIN_DIR/etcd" /usr/local/bin/etcd
binary_image "registry.k8s.io/coredns/coredns:$coredns" "$debian_image" "$COREDNS_BIN_DIR/coredns" /coredns

# The sandbox image: Debian's statically linked catatonit in pause mode, alone in its image.
pause_key=$(echo "catatonit $(image_key "$rootfs_image")" | sha256sum | cut -c1-16)
if ! fresh "$pause_image" "$pause_key"; then
	step "$pause_image"
	ctx="$work/ctx-pause"
	rm -rf "$ctx" && mkdir -p "$ctx"
	id=$(docker create "$rootfs_image")
	docker cp "$id:/usr/bin/catatonit" "$ctx/catatonit"
	docker rm "$id" >/dev/null
	tar -C "$ctx" -c catatonit | docker import --change "LABEL autoscale-harness.key=$pause_key" \
		--change 'ENTRYPOINT ["/catatonit", "-P"]' - "$pause_image" >/dev/null
	done_step "$pause_image"
fi

# --- the node image --------------------------------------------------------------------------------------------------
preload=("registry.k8s.io/kube-apiserver:$k8s" "registry.k8s.io/kube-controller-manager:$k8s"
	"registry.k8s.io/kube-scheduler:$k8s" "registry.k8s.io/kube-proxy:$k8s" "registry.k8s.io/etcd:$etcd"
	"registry.k8s.io/coredns/coredns:$coredns" "$pause_image")
node_key=$(for i in "$base_image" "${preload[@]}"; do echo "$i $(image_key "$i")"; done |
	cat - "$KUBERNETES_BIN_DIR/kubelet" "$KUBERNETES_BIN_DIR/kubeadm" "$KUBERNETES_BIN_DIR/kubectl" \
		"$CRICTL_BIN_DIR/crictl" "$here/node/default-storage.yaml" "$0" | sha256sum | cut -c1-16)
if ! fresh "$node_image" "$node_key"; then
	step "node image $node_image (kubelet, kubeadm, kubectl, crictl; ${#preload[@]} images preloaded)"
	id="kind-node-build-$$"
	docker rm -f "$id" >/dev/null 2>&1 || true
	# As kind's builder does: a container that sleeps, binaries copied in, containerd started inside to import the
	# images (unpacked later, on the node's own snapshotter), then committed with kind's entrypoint.
	docker run -d --name "$id" --entrypoint=sleep --security-opt seccomp=unconfined "$base_image" infinity >/dev/null
	trap 'docker rm -f "$id" >/dev/null 2>&1 || true' EXIT
	for b in kubelet kubeadm kubectl; do
		docker cp "$KUBERNETES_BIN_DIR/$b" "$id:/usr/bin/$b"
	done
	docker cp "$CRICTL_BIN_DIR/crictl" "$id:/usr/local/bin/crictl"
	docker exec "$id" mkdir -p /kind/manifests
	docker cp "$here/node/default-storage.yaml" "$id:/kind/manifests/default-storage.yaml"
	echo "$k8s" | docker exec -i "$id" cp /dev/stdin /kind/version
	docker exec "$id" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
	for _ in $(seq 1 30); do docker exec "$id" ctr version >/dev/null 2>&1 && break; sleep 1; done
	docker save "${preload[@]}" | docker exec -i "$id" ctr --namespace=k8s.io images import \
		--all-platforms --no-unpack --digests - >/dev/null || die "importing the images into the node failed"
	docker exec "$id" ctr --namespace=k8s.io images list -q | sed 's/^/images.sh:   preloaded /' >&2
	docker exec "$id" pkill containerd || true
	sleep 1
	docker exec "$id" rm -f /tmp/containerd.log
	docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
		--change "LABEL autoscale-harness.key=$node_key" "$id" "$node_image" >/dev/null
	docker rm -f "$id" >/dev/null
	trap - EXIT
	done_step "$node_image"
else
	log "cached   $node_image"
fi

# --- the harness's own images ------------------------------------------------------------------------------------------
# mock-vllm and the harness (metrics adapter) from this checkout, built on the host (Debian 12, the glibc of the
# image) rather than in a Rust image from a registry.
log "cargo build --release (mock-vllm, autoscale-harness) ..."
(cd "$repo" && cargo build --release -q --bin mock-vllm --bin autoscale-harness) || die "cargo build failed"
ctx="$work/ctx-mock-vllm"
rm -rf "$ctx" && mkdir -p "$ctx"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cp "$target_dir/release/mock-vllm" "$target_dir/release/autoscale-harness" "$ctx/"
cp "$here/offline.Dockerfile" "$ctx/Dockerfile"
build "$mock_image" "$(key_of "$ctx/Dockerfile" "$ctx/mock-vllm" "$ctx/autoscale-harness" <(image_key "$debian_image"))" \
	"$ctx" --build-arg "BASE=$debian_image"
# As AIBrix's own image: the manager at /manager (manifests/aibrix/deployment.yaml runs it), a non-root user.
binary_image "$controller_image" "$debian_image" "$AIBRIX_BIN_DIR/aibrix-controller-manager" /manager 65532:65532

log "done: node image $node_image; $mock_image; $controller_image"
