// Package check implements `stateguard check`: it reads manifest files and
// judges them with report.Judge, which looks Services, claims, HPAs and
// Namespaces up among the same inputs.
package check

import (
	"context"
	"fmt"
	"io"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// Options are the flags of `stateguard check`.
type Options struct {
	Paths     []string
	Namespace string
	Output    string // table or json
}

// Run reads, judges and prints; it returns the exit status. Unreadable
// documents are named on stderr while every readable one is still judged.
func Run(ctx context.Context, eng *engine.Engine, opts Options, stdin io.Reader, stdout, stderr io.Writer) int {
	in := ReadPaths(opts.Paths, stdin, opts.Namespace)
	rep, warnings, err := batch.Judge(ctx, eng, in.Objects)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return report.ExitInvalid
	}
	for _, e := range in.Errors {
		fmt.Fprintf(stderr, "error: %v\n", e)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err := rep.Write(stdout, opts.Output); err != nil {
		fmt.Fprintf(stderr, "error: writing output: %v\n", err)
		return report.ExitInvalid
	}
	if len(in.Errors) > 0 {
		return report.ExitInvalid
	}
	return rep.ExitCode()
}
