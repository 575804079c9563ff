// Package manifests holds the tests of the files under docker/: the
// Dockerfile, the default Fluent Bit configuration, the Kubernetes manifests
// and the Helm values. Run them with `go test ./...` from this directory;
// set TELEPORT_PLUGIN_SO to a built in_teleport.so to skip building one, and
// FLUENT_BIT to a fluent-bit binary to check the configurations with it.
package manifests
