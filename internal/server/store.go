package server

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateguard/stateguard/internal/slimlist"
	"github.com/stateguard/stateguard/lookup"
)

// storedKinds are what the rules look up, and what the server keeps. The
// one Deployment an HPA's review looks up is read live (lookup.Cache), so
// no workload is kept: the background audit lists them in pages.
var storedKinds = []lookup.Stored{
	&corev1.Service{}, &corev1.PersistentVolumeClaim{}, &corev1.Namespace{},
	&autoscalingv2.HorizontalPodAutoscaler{},
}

// startReflectors has a reflector per kind keep the store current, on
// every replica, in protobuf. Nothing else caches: the store keeps each
// object as it arrives, compactly, in place of an informer's typed copy.
// synced reports whether every kind has had its first full list.
func startReflectors(mgr manager.Manager, store *lookup.Store, kinds []lookup.Stored, log logr.Logger) (synced func() bool, err error) {
	cs, err := protobufClientset(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	var reflectors []*cache.Reflector
	var feeds []cache.InformerSynced
	for _, obj := range kinds {
		feed, err := store.Feed(obj)
		if err != nil {
			return nil, err
		}
		lw, err := listWatchOf(cs, obj, feed)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%T", obj)
		reflectors = append(reflectors, cache.NewReflectorWithOptions(lw, obj, feed, cache.ReflectorOptions{Name: name, TypeDescription: name}))
		feeds = append(feeds, feed.HasSynced)
	}
	synced = func() bool {
		for _, f := range feeds {
			if !f() {
				return false
			}
		}
		return true
	}
	return synced, mgr.Add(everyReplica(func(ctx context.Context) error {
		// One kind's first list at a time: a list is held whole until it
		// replaces what the store had, and all at once would add up.
		for i, r := range reflectors {
			go r.RunWithContext(ctx)
			if !cache.WaitForCacheSync(ctx.Done(), feeds[i]) {
				return nil
			}
		}
		log.Info("caches synced")
		<-ctx.Done()
		return nil
	}))
}

// protobufClientset is a clientset that reads in protobuf, which costs
// less to decode than JSON.
func protobufClientset(config *rest.Config) (*kubernetes.Clientset, error) {
	cfg := rest.CopyConfig(config)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return kubernetes.NewForConfig(cfg)
}

// listWatchOf lists and watches obj's kind in every namespace, for feed.
func listWatchOf(cs kubernetes.Interface, obj lookup.Stored, feed *lookup.Feed) (*cache.ListWatch, error) {
	switch obj.(type) {
	case *corev1.Service:
		return recordListWatch[corev1.Service](cs.CoreV1().Services(metav1.NamespaceAll).Watch, cs.CoreV1().RESTClient(), "services", feed), nil
	case *corev1.PersistentVolumeClaim:
		return recordListWatch[corev1.PersistentVolumeClaim](cs.CoreV1().PersistentVolumeClaims(metav1.NamespaceAll).Watch, cs.CoreV1().RESTClient(), "persistentvolumeclaims", feed), nil
	case *corev1.Namespace:
		return recordListWatch[corev1.Namespace](cs.CoreV1().Namespaces().Watch, cs.CoreV1().RESTClient(), "namespaces", feed), nil
	case *autoscalingv2.HorizontalPodAutoscaler:
		return recordListWatch[autoscalingv2.HorizontalPodAutoscaler](cs.AutoscalingV2().HorizontalPodAutoscalers(metav1.NamespaceAll).Watch, cs.AutoscalingV2().RESTClient(), "horizontalpodautoscalers", feed), nil
	}
	return nil, fmt.Errorf("no list and watch of %T", obj)
}

// recordListWatch watches with watch, and lists resource in every
// namespace as slimlist reads it: each object, pruned to what the rules
// read when slimlist knows its kind, is encoded by feed as it arrives.
// An API server without watch-lists (1.30 among them) answers a
// reflector's first list of every object of a kind in one answer,
// whatever its limit, and the reflector holds it until the feed replaces
// the kind's objects: typed and whole, 110,000 Services took several
// hundred MB at once.
func recordListWatch[T any, PT interface {
	*T
	lookup.Stored
}](watch cache.WatchFuncWithContext, client rest.Interface, resource string, feed *lookup.Feed) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			var records []runtime.RawExtension
			meta, err := slimlist.Get(ctx, client, metav1.NamespaceAll, resource, opts, func(item []byte) error {
				obj := PT(new(T))
				if err := obj.Unmarshal(item); err != nil {
					return fmt.Errorf("decoding a listed %s: %w", resource, err)
				}
				rec, err := feed.Encode(obj)
				records = append(records, runtime.RawExtension{Object: rec})
				return err
			})
			if err != nil {
				return nil, err
			}
			return &metav1.List{ListMeta: meta, Items: records}, nil
		},
		WatchFuncWithContext: watch,
	}
}
