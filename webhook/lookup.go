package webhook

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateguard/stateguard/engine"
)

// hpaTargetIndex indexes cached HPAs by the name of the Deployment they scale.
const hpaTargetIndex = "stateguard.io/scaled-deployment"

// indexHPATarget is the index function of hpaTargetIndex.
func indexHPATarget(obj client.Object) []string {
	if name, ok := engine.ScaledDeployment(obj.(*autoscalingv2.HorizontalPodAutoscaler)); ok {
		return []string{name}
	}
	return nil
}

// cacheLookup answers the engine from the manager's caches. A miss is
// confirmed with a live read before it counts: a Service created a moment
// before its StatefulSet (one `kubectl apply -f` of both) may not have
// reached the cache yet.
type cacheLookup struct {
	cache client.Reader
	live  client.Reader
}

var _ engine.Lookup = (*cacheLookup)(nil)

// get fills obj and reports whether it exists.
func (l *cacheLookup) get(ctx context.Context, namespace, name string, obj client.Object) (bool, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := l.cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = l.live.Get(ctx, key, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (l *cacheLookup) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.Service{})
}

func (l *cacheLookup) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.PersistentVolumeClaim{})
}

func (l *cacheLookup) Deployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return lookupOne(ctx, l, namespace, name, &appsv1.Deployment{})
}

func (l *cacheLookup) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return lookupOne(ctx, l, "", name, &corev1.Namespace{})
}

func (l *cacheLookup) HorizontalPodAutoscalers(ctx context.Context, namespace, deployment string) ([]*autoscalingv2.HorizontalPodAutoscaler, error) {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := l.cache.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{hpaTargetIndex: deployment}); err != nil {
		return nil, err
	}
	out := make([]*autoscalingv2.HorizontalPodAutoscaler, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func lookupOne[T client.Object](ctx context.Context, l *cacheLookup, namespace, name string, obj T) (T, error) {
	var none T
	found, err := l.get(ctx, namespace, name, obj)
	if err != nil || !found {
		return none, err
	}
	return obj, nil
}
