//go:build tools

// Package tools pins CoreDNS (github.com/coredns/coredns is `package main`) at the
// version kubeadm of KUBERNETES_VERSION deploys (cmd/kubeadm/app/constants), for the
// offline kind node image. It is never compiled.
package tools

import _ "github.com/coredns/coredns"
