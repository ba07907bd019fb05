// Package lookup holds the engine's two Lookups: Index, in memory over a
// set of objects (check and audit judge among what they read), and Cache,
// over the server's informer caches (the webhook and the background audit).
package lookup

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateguard/stateguard/engine"
)

type key struct{ namespace, name string }

// Index is an engine.Lookup over objects added to it. A later object
// replaces an earlier one of the same kind, namespace and name, as a later
// `kubectl apply` would. It is not safe for concurrent writes.
type Index struct {
	services     map[key]*corev1.Service
	claims       map[key]*corev1.PersistentVolumeClaim
	deployments  map[key]*appsv1.Deployment
	hpas         map[key]*autoscalingv2.HorizontalPodAutoscaler
	hpasByScaled map[key][]*autoscalingv2.HorizontalPodAutoscaler // by the workload they scale: its kind/name
	namespaces   map[string]*corev1.Namespace
}

var _ engine.Lookup = (*Index)(nil)

func NewIndex() *Index {
	return &Index{
		services:     map[key]*corev1.Service{},
		claims:       map[key]*corev1.PersistentVolumeClaim{},
		deployments:  map[key]*appsv1.Deployment{},
		hpas:         map[key]*autoscalingv2.HorizontalPodAutoscaler{},
		hpasByScaled: map[key][]*autoscalingv2.HorizontalPodAutoscaler{},
		namespaces:   map[string]*corev1.Namespace{},
	}
}

// Add indexes the objects the engine looks up; other kinds are ignored.
func (x *Index) Add(obj any) {
	switch o := obj.(type) {
	case *corev1.Service:
		x.services[key{o.Namespace, o.Name}] = o
	case *corev1.PersistentVolumeClaim:
		x.claims[key{o.Namespace, o.Name}] = o
	case *appsv1.Deployment:
		x.deployments[key{o.Namespace, o.Name}] = o
	case *corev1.Namespace:
		x.namespaces[o.Name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		k := key{o.Namespace, o.Name}
		if old, ok := x.hpas[k]; ok {
			x.removeScaled(old)
		}
		x.hpas[k] = o
		if kind, target, ok := engine.ScaledWorkload(o); ok {
			t := key{o.Namespace, kind + "/" + target}
			x.hpasByScaled[t] = append(x.hpasByScaled[t], o)
		}
	}
}

func (x *Index) removeScaled(old *autoscalingv2.HorizontalPodAutoscaler) {
	kind, target, ok := engine.ScaledWorkload(old)
	if !ok {
		return
	}
	t := key{old.Namespace, kind + "/" + target}
	list := x.hpasByScaled[t]
	for i, h := range list {
		if h == old {
			x.hpasByScaled[t] = append(list[:i:i], list[i+1:]...)
			return
		}
	}
}

func (x *Index) Service(_ context.Context, namespace, name string) (*corev1.Service, error) {
	return x.services[key{namespace, name}], nil
}

func (x *Index) PersistentVolumeClaim(_ context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return x.claims[key{namespace, name}], nil
}

func (x *Index) Deployment(_ context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return x.deployments[key{namespace, name}], nil
}

func (x *Index) HorizontalPodAutoscalers(_ context.Context, namespace, kind, name string) ([]*autoscalingv2.HorizontalPodAutoscaler, error) {
	return x.hpasByScaled[key{namespace, kind + "/" + name}], nil
}

func (x *Index) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return x.namespaces[name], nil
}
