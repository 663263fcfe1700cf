//go:build tools

// Package tools pins the command built by testbed/build.sh.
package tools

import _ "github.com/zegl/kube-score/cmd/kube-score"
