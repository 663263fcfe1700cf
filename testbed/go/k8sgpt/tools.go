//go:build tools

// Package tools pins the command built by testbed/build.sh.
package tools

import _ "github.com/k8sgpt-ai/k8sgpt"
