//go:build nocheck

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/stateguard/stateguard/report"
)

// runCheck of a build without check: the image's, whose server has no use
// for Helm and kustomize, 40 MB of the binary and 25 MB of every replica's
// memory.
func runCheck(_ context.Context, _ []string, _ io.Reader, _, stderr io.Writer) int {
	fmt.Fprint(stderr, "stateguard: this build leaves out check (the server image's); run check with the stateguard binary: make build, or go install github.com/stateguard/stateguard/cmd/stateguard\n")
	return report.ExitInvalid
}
