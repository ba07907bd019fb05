// Package check implements `stateguard check`: it reads manifest files,
// Helm charts and kustomizations and judges them with batch.Judge, which
// looks Services, claims, HPAs and Namespaces up among the same inputs.
package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// Options are the flags of `stateguard check`.
type Options struct {
	Paths []string
	// Kustomizations are the directories named with -k.
	Kustomizations []string
	Read           ReadOptions
	Output         string // one of report.Formats
	Write          report.WriteOptions
	// Rules, when set, are the only rules reported; SkipRules are never.
	Rules, SkipRules []string
	// FailOn is the least action that fails the run: deny or warn.
	FailOn engine.Action
}

// Run reads, judges and prints; it returns the exit status. Unreadable
// inputs are named on stderr while every readable one is still judged.
// When ctx ends (a signal), Run returns at once with the exit status the
// cause carries (ExitCode() int), or ExitInvalid, and prints no report.
func Run(ctx context.Context, eng *engine.Engine, opts Options, stdin io.Reader, stdout, stderr io.Writer) int {
	done := make(chan int, 1)
	var out, errOut bytes.Buffer // read only once run has returned
	go func() { done <- run(ctx, eng, opts, stdin, &out, &errOut) }()
	select {
	case code := <-done:
		errOut.WriteTo(stderr)
		if _, err := out.WriteTo(stdout); err != nil {
			fmt.Fprintf(stderr, "error: writing output: %v\n", err)
			return report.ExitInvalid
		}
		return code
	case <-ctx.Done():
		// A read may block (a pipe, a slow disk): the process exits now
		// and takes the work with it.
		cause := context.Cause(ctx)
		fmt.Fprintf(stderr, "stateguard check: stopped: %v\n", cause)
		var coded interface{ ExitCode() int }
		if errors.As(cause, &coded) {
			return coded.ExitCode()
		}
		return report.ExitInvalid
	}
}

func run(ctx context.Context, eng *engine.Engine, opts Options, stdin io.Reader, stdout, stderr io.Writer) int {
	in := Read(ctx, opts.Paths, opts.Kustomizations, stdin, opts.Read)
	if ctx.Err() != nil {
		return report.ExitInvalid
	}
	for _, n := range in.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	for _, e := range in.Errors {
		fmt.Fprintf(stderr, "error: %v\n", e)
	}
	if len(in.Objects) == 0 && len(in.Errors) == 0 {
		fmt.Fprintln(stderr, "error: no Kubernetes objects in the input: nothing was judged")
		return report.ExitInvalid
	}
	rep, warnings, err := batch.Judge(ctx, eng, in.Objects)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return report.ExitInvalid
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	for _, e := range in.Errors {
		rep.Errors = append(rep.Errors, report.Problem{Source: e.Source, Message: e.Err.Error()})
	}
	rep.FailOn = opts.FailOn
	rep.Results = slices.DeleteFunc(rep.Results, func(e report.Entry) bool {
		return len(opts.Rules) > 0 && !slices.Contains(opts.Rules, e.Rule) || slices.Contains(opts.SkipRules, e.Rule)
	})
	if err := rep.Write(stdout, opts.Output, opts.Write); err != nil {
		fmt.Fprintf(stderr, "error: writing output: %v\n", err)
		return report.ExitInvalid
	}
	return rep.ExitCode()
}
