package lookup

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/randfill"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/test/manifests"
)

func hpa(name, kind, apiVersion, target string) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: kind, APIVersion: apiVersion, Name: target},
		},
	}
}

func names(hpas []*autoscalingv2.HorizontalPodAutoscaler) []string {
	var out []string
	for _, h := range hpas {
		out = append(out, h.Name)
	}
	return out
}

func TestHorizontalPodAutoscalersByTarget(t *testing.T) {
	x := NewStore()
	put(t, x, hpa("a", "Deployment", "apps/v1", "web"), hpa("b", "Deployment", "apps/v1", "web"),
		hpa("c", "StatefulSet", "apps/v1", "web"), hpa("d", "Deployment", "example.com/v1", "web"),
		// A later HPA of the same name replaces the earlier one, here retargeting it.
		hpa("b", "Deployment", "apps/v1", "api"))

	for target, want := range map[string][]string{"Deployment/web": {"a"}, "Deployment/api": {"b"}, "Deployment/db": nil, "StatefulSet/web": {"c"}} {
		kind, name, _ := strings.Cut(target, "/")
		got, err := x.HorizontalPodAutoscalers(context.Background(), "shop", kind, name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, names(got)); diff != "" {
			t.Errorf("HPAs of %s (-want +got):\n%s", target, diff)
		}
	}
	if got, _ := x.HorizontalPodAutoscalers(context.Background(), "other", "Deployment", "web"); got != nil {
		t.Errorf("HPAs of another namespace: %v", names(got))
	}
}

func put(t *testing.T, s *Store, objs ...Stored) {
	t.Helper()
	for _, o := range objs {
		if err := s.Put(o); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStoreKeepsTheTrimmedObject: what the store returns is what
// engine.Trim keeps of the object (the engine's tests prove the trimmed
// object gets the whole one's verdict), but its version, and the UID of
// the kinds only looked up, and type metadata, which protobuf leaves out
// as an API server's lists and watches do. Objects of every stored kind with every field
// filled at random go through the store.
func TestStoreKeepsTheTrimmedObject(t *testing.T) {
	fill := randfill.NewWithSeed(1).NilChance(0.1).NumElements(1, 2).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1000), resource.DecimalSI)
		},
		func(tm *metav1.Time, c randfill.Continue) { *tm = metav1.Unix(c.Int63n(1<<32), 0) },
		func(d *metav1.Duration, c randfill.Continue) { d.Duration = time.Duration(c.Int63n(1 << 32)) },
		func(f *metav1.FieldsV1, _ randfill.Continue) { f.Raw = []byte(`{"f:spec":{}}`) },
		func(x *intstr.IntOrString, c randfill.Continue) { *x = intstr.FromInt32(c.Int31()) },
	)
	s := NewStore()
	for i := range 30 {
		for _, kind := range StoredKinds {
			obj := reflect.New(reflect.TypeOf(kind).Elem()).Interface().(Stored)
			fill.Fill(obj)
			want := engine.Trim(obj.DeepCopyObject()).(Stored)
			want.SetResourceVersion("")
			switch want.(type) {
			case *corev1.Service, *corev1.PersistentVolumeClaim, *corev1.Namespace:
				want.SetUID("")
			}
			delete(want.GetAnnotations(), engine.AnnotationLastAppliedConfiguration)
			want.SetManagedFields(nil)
			put(t, s, obj)
			got := reflect.New(reflect.TypeOf(kind).Elem()).Interface().(Stored)
			if found, err := s.get(obj.GetNamespace(), obj.GetName(), got); err != nil || !found {
				t.Fatalf("%T %d: found %v, %v", obj, i, found, err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreTypes(metav1.TypeMeta{})); diff != "" {
				t.Errorf("%T %d: the stored object is not the trimmed one (-trimmed +stored):\n%s", obj, i, diff)
			}
		}
	}
}

func service(namespace, name string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}}
}

// TestFeedFollowsAReflector: a reflector hands a Feed whole objects (a
// list, watch events) or, from a watch-list, what its Transformer made of
// them; the store follows either, its HPA index too.
func TestFeedFollowsAReflector(t *testing.T) {
	ctx := context.Background()
	s := NewStore()
	services, err := s.Feed(&corev1.Service{})
	if err != nil {
		t.Fatal(err)
	}
	if services.HasSynced() {
		t.Fatal("synced before any list")
	}
	streamed, err := services.Transformer()(service("shop", "streamed"))
	if err != nil {
		t.Fatal(err)
	}
	if err := services.Replace([]any{service("shop", "db"), streamed}, "1"); err != nil {
		t.Fatal(err)
	}
	if !services.HasSynced() {
		t.Fatal("not synced after a list")
	}
	for _, name := range []string{"db", "streamed"} {
		if svc, err := s.Service(ctx, "shop", name); err != nil || svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s after the list: %v, %v", name, svc, err)
		}
	}
	if err := services.Add(service("shop", "web")); err != nil {
		t.Fatal(err)
	}
	if err := services.Delete(cache.DeletedFinalStateUnknown{Key: "shop/db", Obj: service("shop", "db")}); err != nil {
		t.Fatal(err)
	}
	if err := services.Delete(service("shop", "streamed")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for svc, err := range Each[*corev1.Service](s) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, svc.Namespace+"/"+svc.Name)
	}
	if diff := cmp.Diff([]string{"shop/web"}, got); diff != "" {
		t.Errorf("Services after the watch events (-want +got):\n%s", diff)
	}

	hpas, err := s.Feed(&autoscalingv2.HorizontalPodAutoscaler{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hpas.Replace([]any{hpa("a", "Deployment", "apps/v1", "web"), hpa("b", "Deployment", "apps/v1", "web")}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := hpas.Delete(hpa("a", "Deployment", "apps/v1", "web")); err != nil {
		t.Fatal(err)
	}
	if err := hpas.Update(hpa("b", "StatefulSet", "apps/v1", "db")); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string][]string{"Deployment/web": nil, "StatefulSet/db": {"b"}} {
		kind, name, _ := strings.Cut(target, "/")
		got, err := s.HorizontalPodAutoscalers(ctx, "shop", kind, name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, names(got)); diff != "" {
			t.Errorf("HPAs of %s (-want +got):\n%s", target, diff)
		}
	}
	// A relist drops what is gone, index included.
	if err := hpas.Replace(nil, "2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.HorizontalPodAutoscalers(ctx, "shop", "StatefulSet", "db"); got != nil {
		t.Errorf("HPAs after a relist of none: %v", names(got))
	}
	if err := s.Put(&corev1.ConfigMap{}); err == nil {
		t.Error("the store took a ConfigMap")
	}
}

// BenchmarkStoreMemory reports the heap the store takes per object, and
// beside it what the same objects took trimmed and typed, as the
// informer caches held them before: objects shaped as charts make them,
// with the metadata the API server adds, decoded from protobuf as a
// reflector decodes them (each string its own copy).
func BenchmarkStoreMemory(b *testing.B) {
	const n = 10000
	served := func(obj Stored, i int) Stored {
		obj.SetNamespace(fmt.Sprintf("team-%d", i%50))
		obj.SetUID(types.UID(fmt.Sprintf("8b2c6f0e-4d1a-4c3b-9e7f-%012d", i)))
		obj.SetResourceVersion(strconv.Itoa(100000 + i))
		obj.SetGeneration(1)
		obj.SetCreationTimestamp(metav1.Unix(1767225600, 0))
		obj.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "helm", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}},"f:spec":{}}`)}}})
		data, err := obj.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		decoded := reflect.New(reflect.TypeOf(obj).Elem()).Interface().(Stored)
		if err := decoded.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
		return decoded
	}
	kinds := []struct {
		name string
		new  func(name string) Stored
	}{
		{"Service", func(name string) Stored { return manifests.Service(name) }},
		{"PersistentVolumeClaim", func(name string) Stored { return manifests.Claim(name) }},
		{"StatefulSet", func(name string) Stored { return manifests.StatefulSet(name) }},
		{"Deployment", func(name string) Stored { return manifests.Deployment(name) }},
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, kind := range kinds {
		b.Run(kind.name+"/store", func(b *testing.B) {
			for b.Loop() {
				before, s := heap(), NewStore()
				for i := range n {
					if err := s.Put(served(kind.new(fmt.Sprintf("app-%d", i)), i)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(heap()-before)/n, "B/object")
				runtime.KeepAlive(s)
			}
		})
		b.Run(kind.name+"/typed", func(b *testing.B) {
			for b.Loop() {
				before, typed := heap(), map[key]Stored{}
				for i := range n {
					obj := served(kind.new(fmt.Sprintf("app-%d", i)), i)
					obj.SetManagedFields(nil)
					typed[key{obj.GetNamespace(), obj.GetName()}] = engine.Trim(obj).(Stored)
				}
				b.ReportMetric(float64(heap()-before)/n, "B/object")
				runtime.KeepAlive(typed)
			}
		})
	}
}
