// Package check implements `stateguard check`: it reads manifest files,
// looks Services, claims, HPAs and Namespaces up among them, and judges every
// StatefulSet, Deployment and HorizontalPodAutoscaler with the engine.
package check

import (
	"context"
	"fmt"
	"io"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/report"
)

// Judge indexes the input's objects and judges each workload as a CREATE of
// it would be judged, in input order. Warnings about stateguard's own
// annotations are returned apart from the results, prefixed with the object.
func Judge(ctx context.Context, eng *engine.Engine, in *Input) (*report.Report, []string, error) {
	idx := lookup.NewIndex()
	for _, o := range in.Objects {
		if o.Typed != nil {
			idx.Add(o.Typed)
		}
	}
	rep := &report.Report{Objects: len(in.Objects)}
	var warnings []string
	for _, o := range in.Objects {
		var v engine.Verdict
		var err error
		switch obj := o.Typed.(type) {
		case *appsv1.StatefulSet:
			v, err = eng.StatefulSet(ctx, admissionv1.Create, obj, nil, idx)
		case *appsv1.Deployment:
			v, err = eng.Deployment(ctx, admissionv1.Create, obj, nil, idx)
		case *autoscalingv2.HorizontalPodAutoscaler:
			v, err = eng.HorizontalPodAutoscaler(ctx, admissionv1.Create, obj, nil, idx)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s %s/%s: %w", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), err)
		}
		rep.Add(o.Source, v.Results)
		for _, w := range v.Warnings {
			warnings = append(warnings, fmt.Sprintf("%s: %s %s/%s: %s", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), w))
		}
	}
	return rep, warnings, nil
}

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
	rep, warnings, err := Judge(ctx, eng, in)
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
