// Package batch judges a set of objects together, each workload as its
// creation would be judged, looking the objects its rules depend on up
// among the same set: `stateguard check` judges manifest files this way,
// `stateguard audit` and the background audit what runs in a cluster.
package batch

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/report"
)

// Object is one object to judge or look up, with where it came from.
type Object struct {
	// Source is where the object was read: FILE#INDEX for check, the
	// object's API path for audit.
	Source string
	// Line is the line of its file where the object's document starts
	// (check); 0 where there is none (audit).
	Line int
	Kind string
	// Typed is a pointer to the typed object for the kinds stateguard
	// judges or looks up, nil for every other kind.
	Typed metav1.Object
}

// Judge indexes the objects and judges each workload among them as a
// CREATE of it would be judged, in order, looking Services, claims, HPAs
// and Namespaces up among the same objects. Warnings about stateguard's own
// annotations are returned apart from the results, prefixed with the object.
func Judge(ctx context.Context, eng *engine.Engine, objs []Object) (*report.Report, []string, error) {
	idx := lookup.NewIndex()
	for _, o := range objs {
		if o.Typed != nil {
			idx.Add(o.Typed)
		}
	}
	rep := &report.Report{Objects: len(objs)}
	var warnings []string
	for _, o := range objs {
		var v engine.Verdict
		var err error
		switch obj := o.Typed.(type) {
		case *appsv1.StatefulSet:
			v, err = eng.StatefulSet(ctx, obj, nil, idx)
		case *appsv1.Deployment:
			v, err = eng.Deployment(ctx, obj, nil, idx)
		case *autoscalingv2.HorizontalPodAutoscaler:
			v, err = eng.HorizontalPodAutoscaler(ctx, obj, nil, idx)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s %s/%s: %w", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), err)
		}
		rep.Judged = append(rep.Judged, report.Subject{Kind: o.Kind, Namespace: o.Typed.GetNamespace(), Name: o.Typed.GetName(), Source: o.Source, Line: o.Line})
		rep.Add(o.Source, o.Line, v.Results)
		for _, w := range v.Warnings {
			warnings = append(warnings, fmt.Sprintf("%s: %s %s/%s: %s", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), w))
		}
	}
	return rep, warnings, nil
}
