// Tests of the deployment files under docker/ (Dockerfile, Kubernetes
// manifests, Helm values, default configuration). A module of its own so that
// its test-only dependencies (Kubernetes API types) stay out of the plugin.
module github.com/fluent-bit-teleport/fluent-bit-teleport/docker/manifests

go 1.26.8

require (
	github.com/moby/patternmatcher v0.6.1
	k8s.io/api v0.37.2
	k8s.io/apimachinery v0.37.2
	sigs.k8s.io/json v0.0.0-20250730193827-2d320260d730
	sigs.k8s.io/yaml v1.6.0
)
