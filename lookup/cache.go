package lookup

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateguard/stateguard/engine"
)

// HPATargetIndex is the field index of cached HPAs by the workload they
// scale, as KIND/NAME; Cache lists HPAs through it.
const HPATargetIndex = "stateguard.io/scaled-workload"

// IndexHPATarget is the index function of HPATargetIndex.
func IndexHPATarget(obj client.Object) []string {
	hpa, ok := obj.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return nil
	}
	if kind, name, ok := engine.ScaledWorkload(hpa); ok {
		return []string{kind + "/" + name}
	}
	return nil
}

// Cache answers the engine from a controller-runtime cache whose HPAs are
// indexed by HPATargetIndex. A miss is confirmed with a Live read before
// it counts: a Service created a moment before its StatefulSet (one
// `kubectl apply -f` of both) may not have reached the cache yet.
type Cache struct {
	Cache client.Reader
	Live  client.Reader
}

var _ engine.Lookup = (*Cache)(nil)

// get fills obj and reports whether it exists.
func (l *Cache) get(ctx context.Context, namespace, name string, obj client.Object) (bool, error) {
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := l.Cache.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = l.Live.Get(ctx, key, obj)
	}
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (l *Cache) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.Service{})
}

func (l *Cache) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.PersistentVolumeClaim{})
}

func (l *Cache) Deployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return lookupOne(ctx, l, namespace, name, &appsv1.Deployment{})
}

func (l *Cache) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return lookupOne(ctx, l, "", name, &corev1.Namespace{})
}

func (l *Cache) HorizontalPodAutoscalers(ctx context.Context, namespace, kind, name string) ([]*autoscalingv2.HorizontalPodAutoscaler, error) {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := l.Cache.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{HPATargetIndex: kind + "/" + name}); err != nil {
		return nil, err
	}
	out := make([]*autoscalingv2.HorizontalPodAutoscaler, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func lookupOne[T client.Object](ctx context.Context, l *Cache, namespace, name string, obj T) (T, error) {
	var none T
	found, err := l.get(ctx, namespace, name, obj)
	if err != nil || !found {
		return none, err
	}
	return obj, nil
}
