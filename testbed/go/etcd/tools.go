//go:build tools

// Package tools pins the command built by testbed/build.sh.
package tools

import _ "go.etcd.io/etcd/server/v3"
