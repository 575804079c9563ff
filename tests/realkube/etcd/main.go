// Command etcd is etcd v3.7.0's server (the version kubernetes v1.37.2 pins),
// built from the Go module proxy for the real kube-apiserver tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
