package lookup

import (
	"context"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateguard/stateguard/engine"
)

// Cache answers the engine from the server's Store, which its reflectors
// keep current. A miss is confirmed with a Live read before it counts: a
// Service created a moment before its StatefulSet (one `kubectl apply -f`
// of both) may not have reached the store yet.
//
// Live reads of one object coalesce: a read answers every review that
// arrived before it started, so a burst of reviews of a StatefulSet whose
// Service is missing makes a read or two at a time, not one per review,
// and does not queue behind the client's rate limit. No answer is older
// than a read of its own would be.
type Cache struct {
	Store *Store
	Live  Reader

	mu      sync.Mutex
	flights map[liveKey]*keyFlights
}

var _ engine.Lookup = (*Cache)(nil)

// Reader reads one object from the API server, as client.Reader's Get:
// a missing one is a NotFound error.
type Reader interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
}

// liveTimeout bounds a live read, which no one review's context may end
// for the others.
const liveTimeout = 10 * time.Second

type liveKey struct {
	kind            reflect.Type
	namespace, name string
}

// keyFlights are the live reads of one object: the one under way, and
// the next, which the reviews that arrive during it wait for.
type keyFlights struct{ current, next *flight }

type flight struct {
	done chan struct{}
	obj  client.Object // a copy of what was read
	err  error
}

// get fills obj and reports whether it exists.
func (l *Cache) get(ctx context.Context, namespace, name string, obj Stored) (bool, error) {
	if found, err := l.Store.get(namespace, name, obj); found || err != nil {
		return found, err
	}
	err := l.live(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// live reads obj from the API server, or waits for a read of it that
// starts after this call. The reads run on their own, bounded by
// liveTimeout: a review whose context ends stops waiting, and the others
// still get the read.
func (l *Cache) live(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	k := liveKey{reflect.TypeOf(obj), key.Namespace, key.Name}
	l.mu.Lock()
	if l.flights == nil {
		l.flights = map[liveKey]*keyFlights{}
	}
	kf := l.flights[k]
	if kf == nil {
		kf = &keyFlights{}
		l.flights[k] = kf
	}
	f := kf.next
	switch {
	case kf.current == nil:
		f = &flight{done: make(chan struct{})}
		kf.current = f
		go l.fly(k, kf, f, key)
	case f == nil:
		f = &flight{done: make(chan struct{})}
		kf.next = f
		current := kf.current
		go func() {
			<-current.done // which made f the current read
			l.fly(k, kf, f, key)
		}()
	}
	l.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.err != nil {
		return f.err
	}
	reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(f.obj.DeepCopyObject()).Elem())
	return nil
}

// fly makes the read of f, the current one, ends f and makes the next
// read the current one.
func (l *Cache) fly(k liveKey, kf *keyFlights, f *flight, key client.ObjectKey) {
	ctx, cancel := context.WithTimeout(context.Background(), liveTimeout)
	obj := reflect.New(k.kind.Elem()).Interface().(client.Object)
	f.err = l.Live.Get(ctx, key, obj)
	cancel()
	f.obj = obj
	l.mu.Lock()
	kf.current, kf.next = kf.next, nil
	if kf.current == nil {
		delete(l.flights, k)
	}
	l.mu.Unlock()
	close(f.done)
}

func (l *Cache) Service(ctx context.Context, namespace, name string) (*corev1.Service, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.Service{})
}

func (l *Cache) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return lookupOne(ctx, l, namespace, name, &corev1.PersistentVolumeClaim{})
}

// Deployment is read live: the server keeps no workload, and only an
// HPA's review looks one up.
func (l *Cache) Deployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{}
	err := l.live(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dep)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return dep, nil
}

func (l *Cache) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return lookupOne(ctx, l, "", name, &corev1.Namespace{})
}

// HorizontalPodAutoscalers are the stored ones, with no live read: there
// is no name to read a missing one by.
func (l *Cache) HorizontalPodAutoscalers(ctx context.Context, namespace, kind, name string) ([]*autoscalingv2.HorizontalPodAutoscaler, error) {
	return l.Store.HorizontalPodAutoscalers(ctx, namespace, kind, name)
}

func lookupOne[T Stored](ctx context.Context, l *Cache, namespace, name string, obj T) (T, error) {
	var none T
	found, err := l.get(ctx, namespace, name, obj)
	if err != nil || !found {
		return none, err
	}
	return obj, nil
}
