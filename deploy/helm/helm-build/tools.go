//go:build tools

// Package tools pins the helm command that ../build-helm.sh compiles, so that
// `go mod tidy` keeps every module it needs in go.mod/go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
