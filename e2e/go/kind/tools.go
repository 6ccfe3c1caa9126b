//go:build tools

// Package tools pins the kind CLI (sigs.k8s.io/kind is `package main`) so that
// `go mod tidy` keeps its dependencies in go.mod/go.sum. It is never compiled.
// The same module's images/base/files tree (kind's node entrypoint, containerd and
// kubelet units) is read from the module cache by e2e/kind/images.sh when it
// builds the offline node image; nothing of it is copied into this repository.
package tools

import _ "sigs.k8s.io/kind"
