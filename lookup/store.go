package lookup

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateguard/stateguard/engine"
)

type key struct{ namespace, name string }

// Stored is an object the Store keeps: a typed Kubernetes object with its
// protobuf encoding.
type Stored interface {
	client.Object
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// StoredKinds are the kinds a Store keeps: what the rules look up, and
// the workloads the audit judges.
var StoredKinds = []Stored{
	&corev1.Service{}, &corev1.PersistentVolumeClaim{}, &corev1.Namespace{},
	&appsv1.Deployment{}, &appsv1.StatefulSet{}, &autoscalingv2.HorizontalPodAutoscaler{},
}

// New is a new object of the stored kind named kind, nil for another.
func New(kind string) Stored {
	for _, obj := range StoredKinds {
		if t := reflect.TypeOf(obj).Elem(); t.Name() == kind {
			return reflect.New(t).Interface().(Stored)
		}
	}
	return nil
}

// Store keeps each object in a compact form of what engine.Trim keeps of
// it (codecOf says which) and decodes it when read: a Service costs about
// 200 bytes in it, against over 1 KB as a typed object in an informer's
// cache, so that the server's memory follows what the rules read rather
// than the size of the cluster. It is an engine.Lookup of what it holds,
// safe for concurrent use; Feed fills one kind from a reflector.
type Store struct {
	kinds map[reflect.Type]*records

	mu         sync.Mutex
	namespaces map[string]string // one copy of each namespace's name
}

var _ engine.Lookup = (*Store)(nil)

func NewStore() *Store {
	s := &Store{kinds: map[reflect.Type]*records{}, namespaces: map[string]string{}}
	for _, obj := range StoredKinds {
		s.kinds[reflect.TypeOf(obj)] = &records{objs: map[key]any{}, codec: codecOf(obj)}
	}
	return s
}

// records are the objects of one kind, each as its codec keeps it. What
// is stored is never written: readers use it without the lock.
type records struct {
	mu     sync.RWMutex
	objs   map[key]any
	codec  codec
	synced bool
	// Of HPAs: the workload each scales (its namespace and KIND/NAME), and
	// the HPAs that scale each workload.
	scaled   map[key]key
	byScaled map[key][]string
}

// record is an object ready to store.
type record struct {
	key
	data   any    // as its kind's codec keeps it
	scaled string // of an HPA, the KIND/NAME of the workload it scales
}

// GetObjectMeta names the record for client-go's stores, which key the
// objects they hold by namespace and name.
func (r *record) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Namespace: r.namespace, Name: r.name}
}

// A record stands in for its object in a list a reflector holds before
// its Feed stores it (Feed.Encode); it is never copied or written.
func (r *record) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (r *record) DeepCopyObject() runtime.Object   { return r }

func (s *Store) records(obj any) (*records, error) {
	r := s.kinds[reflect.TypeOf(obj)]
	if r == nil {
		return nil, fmt.Errorf("the store keeps no %T", obj)
	}
	return r, nil
}

// Put stores obj, trimmed in place, in place of any object of its kind,
// namespace and name.
func (s *Store) Put(obj Stored) error {
	r, err := s.records(obj)
	if err != nil {
		return err
	}
	rec, err := s.record(obj)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.put(rec)
	return nil
}

// record trims and encodes obj; a record is returned as it is.
func (s *Store) record(obj any) (*record, error) {
	if rec, ok := obj.(*record); ok {
		return rec, nil
	}
	o, ok := obj.(Stored)
	if !ok {
		return nil, fmt.Errorf("the store keeps no %T", obj)
	}
	o.SetManagedFields(nil)
	if a := o.GetAnnotations(); a != nil {
		delete(a, engine.AnnotationLastAppliedConfiguration)
	}
	engine.Trim(o)
	// Nothing reads a stored object's version, nor the UID of one only
	// looked up.
	o.SetResourceVersion("")
	switch o.(type) {
	case *corev1.Service, *corev1.PersistentVolumeClaim, *corev1.Namespace:
		o.SetUID("")
	}
	data, err := s.kinds[reflect.TypeOf(o)].codec.encode(o)
	if err != nil {
		return nil, fmt.Errorf("encoding %T %s/%s: %w", obj, o.GetNamespace(), o.GetName(), err)
	}
	rec := &record{key: key{s.intern(o.GetNamespace()), o.GetName()}, data: data}
	if hpa, ok := o.(*autoscalingv2.HorizontalPodAutoscaler); ok {
		if kind, name, ok := engine.ScaledWorkload(hpa); ok {
			rec.scaled = kind + "/" + name
		}
	}
	return rec, nil
}

func (s *Store) intern(namespace string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.namespaces[namespace]; ok {
		return n
	}
	s.namespaces[namespace] = namespace
	return namespace
}

// put stores rec; r.mu is held.
func (r *records) put(rec *record) {
	r.unindex(rec.key)
	r.objs[rec.key] = rec.data
	if rec.scaled == "" {
		return
	}
	if r.scaled == nil {
		r.scaled, r.byScaled = map[key]key{}, map[key][]string{}
	}
	target := key{rec.namespace, rec.scaled}
	r.scaled[rec.key] = target
	r.byScaled[target] = append(r.byScaled[target], rec.name)
}

// unindex forgets which workload the HPA k scales; r.mu is held.
func (r *records) unindex(k key) {
	target, ok := r.scaled[k]
	if !ok {
		return
	}
	delete(r.scaled, k)
	names := slices.DeleteFunc(slices.Clone(r.byScaled[target]), func(n string) bool { return n == k.name })
	if len(names) == 0 {
		delete(r.byScaled, target)
	} else {
		r.byScaled[target] = names
	}
}

// get decodes the stored object of obj's kind, namespace and name into
// obj, a new object, and reports whether there was one.
func (s *Store) get(namespace, name string, obj Stored) (bool, error) {
	r, err := s.records(obj)
	if err != nil {
		return false, err
	}
	k := key{namespace, name}
	r.mu.RLock()
	data, ok := r.objs[k]
	r.mu.RUnlock()
	if !ok {
		return false, nil
	}
	if err := r.codec.decode(k, data, obj); err != nil {
		return false, fmt.Errorf("decoding the stored %T %s/%s: %w", obj, namespace, name, err)
	}
	return true, nil
}

func lookupStored[T Stored](s *Store, namespace, name string, obj T) (T, error) {
	var none T
	found, err := s.get(namespace, name, obj)
	if err != nil || !found {
		return none, err
	}
	return obj, nil
}

func (s *Store) Service(_ context.Context, namespace, name string) (*corev1.Service, error) {
	return lookupStored(s, namespace, name, &corev1.Service{})
}

func (s *Store) PersistentVolumeClaim(_ context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return lookupStored(s, namespace, name, &corev1.PersistentVolumeClaim{})
}

func (s *Store) Deployment(_ context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return lookupStored(s, namespace, name, &appsv1.Deployment{})
}

func (s *Store) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return lookupStored(s, "", name, &corev1.Namespace{})
}

func (s *Store) HorizontalPodAutoscalers(_ context.Context, namespace, kind, name string) ([]*autoscalingv2.HorizontalPodAutoscaler, error) {
	r := s.kinds[reflect.TypeFor[*autoscalingv2.HorizontalPodAutoscaler]()]
	r.mu.RLock()
	names := r.byScaled[key{namespace, kind + "/" + name}]
	r.mu.RUnlock()
	var out []*autoscalingv2.HorizontalPodAutoscaler
	for _, n := range names {
		hpa, err := lookupStored(s, namespace, n, &autoscalingv2.HorizontalPodAutoscaler{})
		if err != nil {
			return nil, err
		}
		if hpa != nil { // deleted since
			out = append(out, hpa)
		}
	}
	return out, nil
}

// Len is how many objects of obj's kind the store holds.
func (s *Store) Len(obj Stored) int {
	r, err := s.records(obj)
	if err != nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.objs)
}

// Each yields the objects of kind T held when it is called, by namespace
// and name, each decoded into a new object when its turn comes: a pass
// over every workload holds one at a time, and blocks no writer.
func Each[T Stored](s *Store) iter.Seq2[T, error] {
	type entry struct {
		key
		data any
	}
	typ := reflect.TypeFor[T]()
	return func(yield func(T, error) bool) {
		r, err := s.records(reflect.New(typ.Elem()).Interface())
		if err != nil {
			var none T
			yield(none, err)
			return
		}
		r.mu.RLock()
		entries := make([]entry, 0, len(r.objs))
		for k, data := range r.objs {
			entries = append(entries, entry{k, data})
		}
		r.mu.RUnlock()
		slices.SortFunc(entries, func(a, b entry) int {
			return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
		})
		for _, e := range entries {
			obj := reflect.New(typ.Elem()).Interface().(T)
			if err := r.codec.decode(e.key, e.data, obj); err != nil {
				err = fmt.Errorf("decoding the stored %T %s/%s: %w", obj, e.namespace, e.name, err)
			}
			if !yield(obj, err) || err != nil {
				return
			}
		}
	}
}

// Feed is the store's kind of obj as a reflector's store: a reflector
// listing and watching that kind keeps it current. Objects are trimmed
// and encoded as they arrive, one at a time, also while a watch-list
// streams the initial objects.
func (s *Store) Feed(obj Stored) (*Feed, error) {
	r, err := s.records(obj)
	if err != nil {
		return nil, err
	}
	return &Feed{s: s, r: r}, nil
}

// Feed is a cache.ReflectorStore over one kind of a Store.
type Feed struct {
	s *Store
	r *records
}

var (
	_ cache.ReflectorStore    = (*Feed)(nil)
	_ cache.TransformingStore = (*Feed)(nil)
)

func (f *Feed) Add(obj any) error {
	rec, err := f.s.record(obj)
	if err != nil {
		return err
	}
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	f.r.put(rec)
	return nil
}

func (f *Feed) Update(obj any) error { return f.Add(obj) }

func (f *Feed) Delete(obj any) error {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	k := key{m.GetNamespace(), m.GetName()}
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	f.r.unindex(k)
	delete(f.r.objs, k)
	return nil
}

// Replace makes list, a full list of the kind, what the store holds of
// it, and marks the kind synced.
func (f *Feed) Replace(list []any, _ string) error {
	recs := make([]*record, 0, len(list))
	for _, obj := range list {
		rec, err := f.s.record(obj)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	f.r.objs, f.r.scaled, f.r.byScaled = make(map[key]any, len(recs)), nil, nil
	for _, rec := range recs {
		f.r.put(rec)
	}
	f.r.synced = true
	return nil
}

func (f *Feed) Resync() error { return nil }

// Encode trims and encodes obj as the feed stores it, for a list to hold
// in its place until the feed replaces its kind's objects with it: a list
// of compact records in place of one of typed objects.
func (f *Feed) Encode(obj Stored) (runtime.Object, error) { return f.s.record(obj) }

// Transformer encodes each object a watch-list streams as it arrives, so
// that the initial list is never held whole as typed objects.
func (f *Feed) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) { return f.s.record(obj) }
}

// HasSynced reports whether a first full list has been stored.
func (f *Feed) HasSynced() bool {
	f.r.mu.RLock()
	defer f.r.mu.RUnlock()
	return f.r.synced
}
