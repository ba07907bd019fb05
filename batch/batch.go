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
	// judges or looks up, nil for every other kind and once encoded.
	Typed metav1.Object
	// Encoded is the protobuf encoding of the typed object once Encode
	// has replaced it: check holds every object until it judges them, at
	// about a fifth of the typed object's memory this way.
	Encoded []byte
}

// Encode replaces the typed object with its protobuf encoding.
func (o *Object) Encode() error {
	stored, ok := o.Typed.(lookup.Stored)
	if !ok {
		return nil
	}
	data, err := stored.Marshal()
	if err != nil {
		return fmt.Errorf("encoding %s %s/%s: %w", o.Kind, stored.GetNamespace(), stored.GetName(), err)
	}
	o.Typed, o.Encoded = nil, data
	return nil
}

// Decode is the typed object, decoded anew when encoded; nil for kinds
// stateguard neither judges nor looks up.
func (o Object) Decode() (lookup.Stored, error) {
	if o.Encoded == nil {
		stored, _ := o.Typed.(lookup.Stored)
		return stored, nil
	}
	obj := lookup.New(o.Kind)
	if obj == nil {
		return nil, fmt.Errorf("%s: no typed %s", o.Source, o.Kind)
	}
	if err := obj.Unmarshal(o.Encoded); err != nil {
		return nil, fmt.Errorf("%s: decoding %s: %w", o.Source, o.Kind, err)
	}
	return obj, nil
}

// Judge indexes the objects and judges each workload among them as a
// CREATE of it would be judged, in order, looking Services, claims,
// Deployments, HPAs and Namespaces up among the same objects. Warnings
// about stateguard's own annotations are returned apart from the results,
// prefixed with the object.
func Judge(ctx context.Context, eng *engine.Engine, objs []Object) (*report.Report, []string, error) {
	// Only an HPA's rule looks a Deployment up: without HPAs, none is
	// stored twice (about 1 KB each).
	hpas := slices.ContainsFunc(objs, func(o Object) bool { return o.Kind == "HorizontalPodAutoscaler" })
	store := lookup.NewStore()
	for _, o := range objs {
		if o.Kind == "StatefulSet" || o.Kind == "Deployment" && !hpas {
			continue // no rule looks it up
		}
		obj, err := o.Decode()
		if err != nil {
			return nil, nil, err
		}
		if obj == nil {
			continue
		}
		if err := store.Put(obj); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", o.Source, err)
		}
	}
	var decodeErr error
	rep, warnings, err := JudgeEach(ctx, eng, func(yield func(Object) bool) {
		for _, o := range objs {
			if !judgedKind(o.Kind) {
				continue // looked up only: in the store already
			}
			obj, err := o.Decode()
			if err != nil {
				decodeErr = err
				return
			}
			o.Typed, o.Encoded = obj, nil
			if !yield(o) {
				return
			}
		}
	}, store)
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, nil, err
	}
	rep.Objects = len(objs)
	return rep, warnings, nil
}

// judgedKind says whether objects of kind are judged (JudgeEach), not
// only looked up.
func judgedKind(kind string) bool {
	return kind == "StatefulSet" || kind == "Deployment" || kind == "HorizontalPodAutoscaler"
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
