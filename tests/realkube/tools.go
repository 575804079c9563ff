//go:build tools

// Package realkube pins the real Kubernetes API server and etcd that the
// leader-election tests start on loopback (see Makefile target kube). It is a
// module of its own so that its replace lines and its 130-odd modules stay out
// of the plugin's go.mod and never reach the .so.
package realkube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
