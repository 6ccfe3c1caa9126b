//go:build tools

// Package tools pins crictl (sigs.k8s.io/cri-tools/cmd/crictl) at the minor of
// KUBERNETES_VERSION, for the offline kind node image. It is never compiled.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
