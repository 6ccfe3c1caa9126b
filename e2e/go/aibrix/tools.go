//go:build tools

// Package tools pins the AIBrix controller-manager command so that `go mod tidy`
// keeps its dependencies in go.mod/go.sum. It is never compiled.
package tools

import _ "github.com/vllm-project/aibrix/cmd/controllers"
