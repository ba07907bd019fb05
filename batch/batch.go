// Package batch judges a set of objects together, each workload as its
// creation would be judged, looking the objects its rules depend on up
// among the same set: `stateguard check` judges manifest files this way,
// `stateguard audit` and the background audit what runs in a cluster.
package batch

import (
	"context"
	"fmt"
	"iter"
	"slices"

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
// CREATE of it would be judged, in order, looking Services, claims,
// Deployments, HPAs and Namespaces up among the same objects. Warnings
// about stateguard's own annotations are returned apart from the results,
// prefixed with the object.
func Judge(ctx context.Context, eng *engine.Engine, objs []Object) (*report.Report, []string, error) {
	store := lookup.NewStore()
	for _, o := range objs {
		if _, sts := o.Typed.(*appsv1.StatefulSet); sts || o.Typed == nil {
			continue // no rule looks a StatefulSet up
		}
		if err := store.Put(o.Typed.(lookup.Stored)); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", o.Source, err)
		}
	}
	rep, warnings, err := JudgeEach(ctx, eng, slices.Values(objs), store)
	if err != nil {
		return nil, nil, err
	}
	rep.Objects = len(objs)
	return rep, warnings, nil
}

// JudgeEach judges each workload and HPA objs yields, looking up in lk.
// The report counts what it judged.
func JudgeEach(ctx context.Context, eng *engine.Engine, objs iter.Seq[Object], lk engine.Lookup) (*report.Report, []string, error) {
	rep := &report.Report{}
	var warnings []string
	for o := range objs {
		var v engine.Verdict
		var err error
		switch obj := o.Typed.(type) {
		case *appsv1.StatefulSet:
			v, err = eng.StatefulSet(ctx, obj, nil, lk)
		case *appsv1.Deployment:
			v, err = eng.Deployment(ctx, obj, nil, lk)
		case *autoscalingv2.HorizontalPodAutoscaler:
			v, err = eng.HorizontalPodAutoscaler(ctx, obj, nil, lk)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s %s/%s: %w", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), err)
		}
		rep.Objects++
		rep.Judged = append(rep.Judged, report.Subject{Kind: o.Kind, Namespace: o.Typed.GetNamespace(), Name: o.Typed.GetName(), Source: o.Source, Line: o.Line})
		rep.Add(o.Source, o.Line, v.Results)
		for _, w := range v.Warnings {
			warnings = append(warnings, fmt.Sprintf("%s: %s %s/%s: %s", o.Source, o.Kind, o.Typed.GetNamespace(), o.Typed.GetName(), w))
		}
	}
	return rep, warnings, nil
}
