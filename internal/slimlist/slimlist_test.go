package slimlist

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/randfill"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/test/manifests"
)

var protobufSerializer = protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)

// encode encodes list as the API server does: the protobuf magic, then a
// runtime.Unknown naming its kind.
func encode(t testing.TB, list runtime.Object, gv schema.GroupVersion) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := scheme.Codecs.EncoderForVersion(protobufSerializer, gv).Encode(list, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decode(t testing.TB, body []byte, into runtime.Object) {
	t.Helper()
	if _, _, err := protobufSerializer.Decode(body, nil, into); err != nil {
		t.Fatal(err)
	}
}

// randomFill fills every field, some nil, with values the protobuf
// encoding takes back as they were.
func randomFill(seed int64) *randfill.Filler {
	return randfill.NewWithSeed(seed).NilChance(0.1).NumElements(1, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1000), resource.DecimalSI)
		},
		func(tm *metav1.Time, c randfill.Continue) { *tm = metav1.Unix(c.Int63n(1<<32), 0) },
		func(tm *metav1.MicroTime, c randfill.Continue) {
			*tm = metav1.NewMicroTime(time.Unix(c.Int63n(1<<32), 0))
		},
		func(d *metav1.Duration, c randfill.Continue) { d.Duration = time.Duration(c.Int63n(1 << 32)) },
		func(f *metav1.FieldsV1, _ randfill.Continue) { f.Raw = []byte(`{"f:spec":{}}`) },
		func(x *intstr.IntOrString, c randfill.Continue) { *x = intstr.FromInt32(c.Int31()) },
	)
}

var equal = cmp.Options{cmpopts.EquateEmpty(), cmpopts.IgnoreTypes(metav1.TypeMeta{})}

// TestPrunedIsTrimmed fills every field of each pruned kind at random, and
// checks that a list pruned and decoded holds the trimmed objects, with
// its ListMeta whole. Objects of hundreds of bytes exercise lengths of one
// varint byte and of two, and the move down between them.
func TestPrunedIsTrimmed(t *testing.T) {
	for seed := range int64(40) {
		fill := randomFill(seed)
		var meta metav1.ListMeta
		fill.Fill(&meta)
		t.Run("", func(t *testing.T) {
			var statefulSets appsv1.StatefulSetList
			fill.Fill(&statefulSets.Items)
			var deployments appsv1.DeploymentList
			fill.Fill(&deployments.Items)
			var services corev1.ServiceList
			fill.Fill(&services.Items)
			var claims corev1.PersistentVolumeClaimList
			fill.Fill(&claims.Items)
			statefulSets.ListMeta, deployments.ListMeta, services.ListMeta, claims.ListMeta = meta, meta, meta, meta

			checkPruned(t, &statefulSets, meta, appsv1.SchemeGroupVersion, func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} })
			checkPruned(t, &deployments, meta, appsv1.SchemeGroupVersion, func() *appsv1.Deployment { return &appsv1.Deployment{} })
			checkPruned(t, &services, meta, corev1.SchemeGroupVersion, func() *corev1.Service { return &corev1.Service{} })
			checkPruned(t, &claims, meta, corev1.SchemeGroupVersion, func() *corev1.PersistentVolumeClaim { return &corev1.PersistentVolumeClaim{} })
		})
	}
}

// read reads body with Each, decoding each item with newItem.
func read[T runtime.Object](t testing.TB, body []byte, newItem func() T) (metav1.ListMeta, []T) {
	t.Helper()
	var items []T
	meta, err := Each(bytes.NewReader(body), func(item []byte) error {
		decoded := newItem()
		items = append(items, decoded)
		return any(decoded).(interface{ Unmarshal([]byte) error }).Unmarshal(item)
	})
	if err != nil {
		t.Fatal(err)
	}
	return meta, items
}

// checkPruned reads list's body and compares its items, decoded by
// newItem, with list's trimmed, and its ListMeta with listMeta.
func checkPruned[T runtime.Object](t *testing.T, list runtime.Object, listMeta metav1.ListMeta, gv schema.GroupVersion, newItem func() T) {
	t.Helper()
	gotMeta, got := read(t, encode(t, list, gv), newItem)
	want, err := meta.ExtractList(list.DeepCopyObject())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%T: %d items, want %d", list, len(got), len(want))
	}
	for i, item := range want {
		if diff := cmp.Diff(engine.Trim(item), got[i], equal); diff != "" {
			t.Errorf("%T item %d: the pruned object is not the trimmed one (-trimmed +pruned):\n%s", list, i, diff)
		}
	}
	if diff := cmp.Diff(listMeta, gotMeta); diff != "" {
		t.Errorf("%T: ListMeta (-want +got):\n%s", list, diff)
	}
}

// TestEach reads a list of a kind it does not prune whole, and refuses
// what is not a protobuf list, or is cut short, with an error.
func TestEach(t *testing.T) {
	namespaces := &corev1.NamespaceList{
		ListMeta: metav1.ListMeta{Continue: "next"},
		Items:    []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "shop", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}},
	}
	listMeta, got := read(t, encode(t, namespaces, corev1.SchemeGroupVersion), func() *corev1.Namespace { return &corev1.Namespace{} })
	if len(got) != 1 || listMeta.Continue != "next" {
		t.Fatalf("a NamespaceList: %+v, %d items", listMeta, len(got))
	}
	if diff := cmp.Diff(&namespaces.Items[0], got[0]); diff != "" {
		t.Errorf("a Namespace is read whole (-want +got):\n%s", diff)
	}

	sts := &appsv1.StatefulSetList{Items: []appsv1.StatefulSet{*manifests.StatefulSet("db")}}
	body := encode(t, sts, appsv1.SchemeGroupVersion)
	for name, tt := range map[string]struct {
		body []byte
		want string
	}{
		"cut in an item": {body[:len(body)-40], "StatefulSetList: unexpected EOF"},
		"cut at its end": {body[:len(body)-3], "the answer's envelope: unexpected EOF"},
		"JSON":           {[]byte(`{"kind":"StatefulSetList","items":[]}`), "the answer is JSON, not protobuf"},
		"not a list":     {append(slices.Clone(body[:4]), 0xff), "the answer's envelope: unexpected EOF"},
		"empty":          {nil, "the answer is not protobuf"},
	} {
		if _, err := Each(bytes.NewReader(tt.body), func([]byte) error { return nil }); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one saying %q", name, err, tt.want)
		}
	}
	// fn's error ends the list.
	stop := errors.New("stop")
	if _, err := Each(bytes.NewReader(body), func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fn's error: %v", err)
	}
}

// BenchmarkListDecode decodes a page of 500 chart-shaped StatefulSets,
// each with its managed fields and status as an API server lists them:
// whole into a StatefulSetList, as client-go decodes it, and pruned, item
// by item, as Each reads it.
func BenchmarkListDecode(b *testing.B) {
	var list appsv1.StatefulSetList
	for i := range 500 {
		sts := manifests.StatefulSet(fmt.Sprintf("db-%d", i))
		sts.Namespace = "shop"
		sts.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1",
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}},"f:spec":{"f:replicas":{},"f:serviceName":{},"f:template":{"f:spec":{"f:containers":{}}}}}`)},
		}}
		sts.Status = appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 3, CurrentRevision: "db-5f8d", UpdateRevision: "db-5f8d"}
		list.Items = append(list.Items, *sts)
	}
	body := encode(b, &list, appsv1.SchemeGroupVersion)
	page := make([]byte, len(body))
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copy(page, body)
			decode(b, page, &appsv1.StatefulSetList{})
		}
	})
	b.Run("pruned", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			copy(page, body)
			if _, err := Each(bytes.NewReader(page), func(item []byte) error {
				return new(appsv1.StatefulSet).Unmarshal(item)
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
