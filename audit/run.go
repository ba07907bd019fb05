package audit

import (
	"context"
	"fmt"
	"io"
	"slices"

	"k8s.io/client-go/kubernetes"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// Options are the flags of `stateguard audit`.
type Options struct {
	Scope
	Output string // table or json
}

// Run lists, judges and prints the way `stateguard check` does, and returns
// the same exit statuses: 0 when nothing is at deny, 1 when anything is,
// 2 when the cluster could not be read.
func Run(ctx context.Context, eng *engine.Engine, cs kubernetes.Interface, opts Options, progress Progress, stdout, stderr io.Writer) int {
	if opts.Namespace != "" && slices.Contains(opts.Excluded, opts.Namespace) {
		fmt.Fprintf(stderr, "note: namespace %q is excluded from admission, so nothing there is ever denied; judging it because -n names it\n", opts.Namespace)
	}
	rep, warnings, err := listAndJudge(ctx, eng, cs, opts.Scope, &counter{progress: progress})
	if progress != nil {
		progress.Done()
	}
	if err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err := rep.Write(stdout, opts.Output, report.WriteOptions{}); err != nil {
		fmt.Fprintf(stderr, "stateguard audit: writing output: %v\n", err)
		return report.ExitInvalid
	}
	return rep.ExitCode()
}

// listAndJudge lists what the rules look up, then judges the workloads
// as they are listed, the way `stateguard check` judges manifests. The
// report counts the workloads judged; the warnings of the list come first.
func listAndJudge(ctx context.Context, eng *engine.Engine, cs kubernetes.Interface, scope Scope, c *counter) (*report.Report, []string, error) {
	objs, err := list(ctx, cs, scope, c)
	if err != nil {
		return nil, nil, err
	}
	rep, warnings, _, err := judge(ctx, eng, objs.Store, scope, listedWorkloads(ctx, cs, workloadPageSize, c), false)
	return rep, append(objs.Warnings, warnings...), err
}
