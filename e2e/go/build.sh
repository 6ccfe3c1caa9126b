#!/usr/bin/env bash
# Build the real control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd) and the AIBrix controller manager from Go modules at the
# versions pinned in e2e/versions.env, into a cache directory keyed by version:
#
#   ${E2E_BIN_CACHE:-$HOME/.cache/autoscale-harness/bin}/<component>-<version>/<binary>
#
# A binary that already exists there is not rebuilt, so a second run is instant.
# Only the Go module proxy is used (wrapper modules in e2e/go/<component>/ with
# committed go.mod + go.sum; GOFLAGS=-mod=readonly).
#
# Usage:
#   e2e/go/build.sh              build what is missing; progress on stderr,
#                                KEY=VALUE summary (dirs, CRD path) on stdout
#   e2e/go/build.sh --print-dir  build nothing; print the KEY=VALUE summary only
#                                (exit 1 if a binary is missing)
#   e2e/go/build.sh --check      only check that versions.env and the go.mod files agree
#   e2e/go/build.sh --rebuild    rebuild even if the binaries exist
#   e2e/go/build.sh --test-patches  run `go test` on every package the patch series
#                                touches, in the patched copy (fetches test-only
#                                dependencies from the module proxy)
#   e2e/go/build.sh --kind       also the binaries of the offline kind path (e2e/kind/images.sh):
#                                kubelet, kubeadm, kube-proxy, the kind CLI, CoreDNS, crictl
#
# Two AIBrix controller builds: the pristine module, and the same module with the
# patch series e2e/go/aibrix-patches/NNNN-<deviation id>.patch applied to a copy
# of its source (zero-context patches, `git apply --unidiff-zero`), cached under
# aibrix-<version>-patched-<hash of the patches>/.
#
# Environment: E2E_BIN_CACHE (cache root), GOMODCACHE/GOCACHE/GOPROXY as usual,
# E2E_GO_BUILD_P (go build -p, default: number of CPUs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
versions_file="$(cd "$here/.." && pwd)/versions.env"

mode=build
rebuild=0
with_kind=0
for arg in "$@"; do
	case "$arg" in
	--print-dir) mode=print ;;
	--check) mode=check ;;
	--rebuild) rebuild=1 ;;
	--test-patches) mode=test-patches ;;
	--kind) with_kind=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "build.sh: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

log() { echo "build.sh: $*" >&2; }
die() {
	echo "build.sh: ERROR: $*" >&2
	exit 1
}

# --- versions.env --------------------------------------------------------------
[[ -f "$versions_file" ]] || die "missing $versions_file"
# Parse KEY=VALUE lines strictly rather than `source`-ing arbitrary shell.
while IFS= read -r line || [[ -n "$line" ]]; do
	[[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
	[[ "$line" =~ ^([A-Z][A-Z0-9_]*)=([^[:space:]\"\']+)$ ]] ||
		die "$versions_file: malformed line: $line"
	declare "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
done <"$versions_file"
for key in GO_MIN_VERSION KUBERNETES_VERSION KUBERNETES_STAGING_VERSION ETCD_VERSION AIBRIX_VERSION AIBRIX_SONIC_VERSION AIBRIX_PODAUTOSCALER_CRD KIND_VERSION COREDNS_VERSION CRICTL_VERSION; do
	[[ -n "${!key:-}" ]] || die "$versions_file: $key is not set"
done

# --- Go environment ------------------------------------------------------------
command -v go >/dev/null || die "go not found in PATH (need Go >= $GO_MIN_VERSION)"
go_version="$(go env GOVERSION)" # e.g. go1.26.8
version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }
version_ge "${go_version#go}" "$GO_MIN_VERSION" ||
	die "Go $go_version is older than GO_MIN_VERSION=$GO_MIN_VERSION from $versions_file"

export CGO_ENABLED=0
# Replace (not extend) GOFLAGS so a user's -mod=mod cannot sneak in; -buildvcs=false
# keeps the harness repo's git state out of the binaries.
export GOFLAGS="-mod=readonly -buildvcs=false"
# Never let `go` fetch a different toolchain behind our back.
export GOTOOLCHAIN=local

# --- consistency check: versions.env vs go.mod files ---------------------------
# `go list -m` reads the committed go.mod/go.sum (readonly): it is the version
# that will actually be built, including replaces.
modver() { (cd "$here/$1" && go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$2"); }
check_versions() {
	local bad=0 got
	got="$(modver kubernetes k8s.io/kubernetes)" || die "cannot read e2e/go/kubernetes/go.mod"
	[[ "$got" == "$KUBERNETES_VERSION" ]] || {
		log "MISMATCH: e2e/go/kubernetes/go.mod has k8s.io/kubernetes $got, versions.env KUBERNETES_VERSION=$KUBERNETES_VERSION"
		bad=1
	}
	# v1.34.12 -> v0.34.12
	local want_staging="v0.${KUBERNETES_VERSION#v1.}"
	[[ "$KUBERNETES_STAGING_VERSION" == "$want_staging" ]] || {
		log "MISMATCH: versions.env KUBERNETES_STAGING_VERSION=$KUBERNETES_STAGING_VERSION, expected $want_staging for KUBERNETES_VERSION=$KUBERNETES_VERSION"
		bad=1
	}
	# Every k8s.io staging module that k8s.io/kubernetes requires at v0.0.0 must be
	# replaced, and every k8s.io replace in go.mod must use KUBERNETES_STAGING_VERSION.
	local path ver rep n=0
	while read -r path ver rep; do
		[[ -n "$path" ]] || continue
		[[ -n "${rep:-}" ]] || {
			log "MISMATCH: e2e/go/kubernetes/go.mod needs a replace for $path (required at $ver by k8s.io/kubernetes)"
			bad=1
		}
	done < <(cd "$here/kubernetes" && go list -m -f '{{.Path}} {{.Version}} {{with .Replace}}{{.Version}}{{end}}' all | awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0"')
	# `go mod edit -json` prints the replace entries as written, also those the
	# pruned module graph does not reach (sample-*, ...).
	while read -r path rep; do
		[[ -n "$path" ]] || continue
		n=$((n + 1))
		[[ "$rep" == "$KUBERNETES_STAGING_VERSION" ]] || {
			log "MISMATCH: e2e/go/kubernetes/go.mod replaces $path with $rep, versions.env KUBERNETES_STAGING_VERSION=$KUBERNETES_STAGING_VERSION"
			bad=1
		}
	done < <(cd "$here/kubernetes" && go mod edit -json | tr -d ' \t' | awk -F'"' '
		/^"Replace":\[/ {inrep = 1}
		inrep && /^"Old":/ {side = "old"}
		inrep && /^"New":/ {side = "new"}
		inrep && /^"Path":/ && side == "old" {path = $4}
		inrep && /^"Version":/ && side == "new" && path ~ /^k8s\.io\// {print path, $4; path = ""}
	')
	((n >= 31)) || {
		log "MISMATCH: only $n k8s.io staging replaces in e2e/go/kubernetes/go.mod (expected 31)"
		bad=1
	}
	got="$(modver etcd go.etcd.io/etcd/server/v3)" || die "cannot read e2e/go/etcd/go.mod"
	[[ "$got" == "$ETCD_VERSION" ]] || {
		log "MISMATCH: e2e/go/etcd/go.mod has go.etcd.io/etcd/server/v3 $got, versions.env ETCD_VERSION=$ETCD_VERSION"
		bad=1
	}
	got="$(modver aibrix github.com/vllm-project/aibrix)" || die "cannot read e2e/go/aibrix/go.mod"
	[[ "$got" == "$AIBRIX_VERSION" ]] || {
		log "MISMATCH: e2e/go/aibrix/go.mod has github.com/vllm-project/aibrix $got, versions.env AIBRIX_VERSION=$AIBRIX_VERSION"
		bad=1
	}
	got="$(modver aibrix github.com/bytedance/sonic)" || die "cannot read e2e/go/aibrix/go.mod"
	[[ "$got" == "$AIBRIX_SONIC_VERSION" ]] || {
		log "MISMATCH: e2e/go/aibrix/go.mod selects github.com/bytedance/sonic $got, versions.env AIBRIX_SONIC_VERSION=$AIBRIX_SONIC_VERSION"
		bad=1
	}
	local mod want dir
	for mod in kind:sigs.k8s.io/kind:KIND_VERSION coredns:github.com/coredns/coredns:COREDNS_VERSION cri-tools:sigs.k8s.io/cri-tools:CRICTL_VERSION; do
		IFS=: read -r dir path want <<<"$mod"
		got="$(modver "$dir" "$path")" || die "cannot read e2e/go/$dir/go.mod"
		[[ "$got" == "${!want}" ]] || {
			log "MISMATCH: e2e/go/$dir/go.mod has $path $got, versions.env $want=${!want}"
			bad=1
		}
	done
	((bad == 0)) || die "e2e/versions.env and e2e/go/*/go.mod disagree (see above); fix one of them"
}

# --- components ----------------------------------------------------------------
cache_root="${E2E_BIN_CACHE:-$HOME/.cache/autoscale-harness/bin}"
k8s_dir="$cache_root/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache_root/etcd-$ETCD_VERSION"
aibrix_dir="$cache_root/aibrix-$AIBRIX_VERSION"
kind_dir="$cache_root/kind-$KIND_VERSION"
coredns_dir="$cache_root/coredns-$COREDNS_VERSION"
crictl_dir="$cache_root/crictl-$CRICTL_VERSION"
patches_dir="$here/aibrix-patches"
shopt -s nullglob
patches=("$patches_dir"/[0-9][0-9][0-9][0-9]-*.patch)
shopt -u nullglob
((${#patches[@]} > 0)) || die "no patches in $patches_dir"
# The cache key covers the patches' names and contents: editing one rebuilds the patched binary.
patches_key="$(for p in "${patches[@]}"; do basename "$p"; cat "$p"; done | sha256sum | cut -c1-12)"
aibrix_patched_dir="$cache_root/aibrix-$AIBRIX_VERSION-patched-$patches_key"

k8s_minor="${KUBERNETES_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean"
done

# Lines: <module dir> <out dir> <binary> <version> <package> <ldflags...>
components() {
	local b
	for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
		echo "kubernetes|$k8s_dir|$b|$KUBERNETES_VERSION|k8s.io/kubernetes/cmd/$b|$k8s_ldflags|"
	done
	echo "etcd|$etcd_dir|etcd|$ETCD_VERSION|go.etcd.io/etcd/server/v3|-s -w|"
	# cmd/controllers has its zmq code behind the `zmq` build tag; `nozmq` is what
	# aibrix's own Makefile passes for the CGO-free build.
	echo "aibrix|$aibrix_dir|aibrix-controller-manager|$AIBRIX_VERSION|github.com/vllm-project/aibrix/cmd/controllers|-s -w|nozmq"
	echo "aibrix-patched|$aibrix_patched_dir|aibrix-controller-manager|$AIBRIX_VERSION+${#patches[@]} patches|github.com/vllm-project/aibrix/cmd/controllers|-s -w|nozmq"
	((with_kind)) || return 0
	for b in kubelet kubeadm kube-proxy; do
		echo "kubernetes|$k8s_dir|$b|$KUBERNETES_VERSION|k8s.io/kubernetes/cmd/$b|$k8s_ldflags|"
	done
	echo "kind|$kind_dir|kind|$KIND_VERSION|sigs.k8s.io/kind|-s -w|"
	echo "coredns|$coredns_dir|coredns|$COREDNS_VERSION|github.com/coredns/coredns|-s -w|"
	echo "cri-tools|$crictl_dir|crictl|$CRICTL_VERSION|sigs.k8s.io/cri-tools/cmd/crictl|-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION|"
}

# The kind module's source in the module cache (its node-image files, read by e2e/kind/images.sh).
kind_module_dir() {
	(cd "$here/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
}

aibrix_module_dir() {
	local dir
	dir="$(cd "$here/aibrix" && go list -m -f '{{.Dir}}' github.com/vllm-project/aibrix)"
	[[ -n "$dir" && -d "$dir" ]] || die "aibrix module $AIBRIX_VERSION is not in the module cache (run go mod download in e2e/go/aibrix)"
	echo "$dir"
}

# A copy of the aibrix module with the patch series applied, and a copy of the wrapper module that replaces
# github.com/vllm-project/aibrix with it; prints the wrapper's directory. Rebuilt from scratch every time (cheap:
# a file copy), so the copy is always exactly pristine + patches.
prepare_patched() {
	local work="$cache_root/src/aibrix-$AIBRIX_VERSION-patched-$patches_key"
	rm -rf "$work"
	mkdir -p "$work"
	cp -r "$(aibrix_module_dir)" "$work/aibrix"
	chmod -R u+w "$work/aibrix"
	local p
	for p in "${patches[@]}"; do
		(cd "$work/aibrix" && git apply --unidiff-zero -p1 "$p") ||
			die "patch $(basename "$p") does not apply to aibrix $AIBRIX_VERSION"
	done
	mkdir -p "$work/wrapper"
	cp "$here/aibrix/go.mod" "$here/aibrix/go.sum" "$here/aibrix/tools.go" "$work/wrapper/"
	(cd "$work/wrapper" && go mod edit -replace "github.com/vllm-project/aibrix=$work/aibrix") ||
		die "cannot point the wrapper module at the patched copy"
	echo "$work/wrapper"
}

aibrix_crd() {
	local crd
	crd="$(aibrix_module_dir)/$AIBRIX_PODAUTOSCALER_CRD"
	[[ -f "$crd" ]] || die "PodAutoscaler CRD not found at $crd (AIBRIX_PODAUTOSCALER_CRD in versions.env)"
	echo "$crd"
}

summary() {
	echo "KUBERNETES_BIN_DIR=$k8s_dir"
	echo "ETCD_BIN_DIR=$etcd_dir"
	echo "AIBRIX_BIN_DIR=$aibrix_dir"
	echo "AIBRIX_PATCHED_BIN_DIR=$aibrix_patched_dir"
	echo "AIBRIX_PATCHES_KEY=$patches_key"
	echo "AIBRIX_PODAUTOSCALER_CRD_PATH=$(aibrix_crd)"
	if ((with_kind)); then
		echo "KIND_BIN_DIR=$kind_dir"
		echo "COREDNS_BIN_DIR=$coredns_dir"
		echo "CRICTL_BIN_DIR=$crictl_dir"
		echo "KIND_MODULE_DIR=$(kind_module_dir)"
	fi
}

if [[ "$mode" == print ]]; then
	missing=0
	while IFS='|' read -r _ out bin _; do
		[[ -x "$out/$bin" ]] || {
			log "missing $out/$bin (run e2e/go/build.sh)"
			missing=1
		}
	done < <(components)
	((missing == 0)) || exit 1
	summary
	exit 0
fi

check_versions
log "versions.env and go.mod files agree (kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, aibrix $AIBRIX_VERSION; $go_version)"
[[ "$mode" == check ]] && exit 0

if [[ "$mode" == test-patches ]]; then
	wrapper="$(prepare_patched)" || exit 1
	# The packages the series touches, from the patches' `+++ b/<path>` lines.
	pkgs="$(sed -n 's#^+++ b/\(.*\)/[^/]*$#github.com/vllm-project/aibrix/\1#p' "${patches[@]}" | sort -u)"
	log "go test of the ${#patches[@]} patches' packages: $(echo $pkgs)"
	# -mod=mod: the tests need modules the binaries do not (testify, ...); the copy's go.sum takes them.
	(cd "$wrapper" && GOFLAGS="-mod=mod -buildvcs=false" nice -n 10 go test -count=1 $pkgs 2>&1 |
		grep -E '^(ok|FAIL|---|panic|\?|\s+\S+_test\.go)' ; exit "${PIPESTATUS[0]}") ||
		die "go test failed on the patched aibrix (see above)"
	log "the controller's own tests pass on the patched build"
	exit 0
fi

mkdir -p "$cache_root"
nproc="$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)"
total_start=$SECONDS
built=0
while IFS='|' read -r mod out bin ver pkg ldflags tags; do
	if [[ -x "$out/$bin" && "$rebuild" == 0 ]]; then
		log "cached   $bin $ver ($out/$bin)"
		continue
	fi
	mkdir -p "$out"
	log "building $bin $ver ..."
	start=$SECONDS
	tmp="$out/.$bin.tmp.$$"
	# `nice` keeps a shared 2-core machine responsive; the build is CPU-bound.
	moddir="$here/$mod"
	if [[ "$mod" == aibrix-patched ]]; then moddir="$(prepare_patched)" || exit 1; fi
	if ! (cd "$moddir" && nice -n 10 go build -trimpath -p "${E2E_GO_BUILD_P:-$nproc}" \
		${tags:+-tags "$tags"} -ldflags "$ldflags" -o "$tmp" "$pkg"); then
		rm -f "$tmp"
		die "go build of $pkg ($bin $ver) failed"
	fi
	mv -f "$tmp" "$out/$bin"
	log "built    $bin $ver in $((SECONDS - start))s ($(du -h "$out/$bin" | cut -f1))"
	built=$((built + 1))
done < <(components)
log "done: $built built, total $((SECONDS - total_start))s; cache $cache_root"
crd="$(aibrix_crd)"
log "PodAutoscaler CRD: $crd"
summary
