package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/test/manifests"
)

// TestServicesListedPruned: without a watch-list, a reflector's pages of
// Services come as the store's records of what the rules read, with the
// list's options passed on and its ListMeta kept for the watch that
// follows.
func TestServicesListedPruned(t *testing.T) {
	svc := manifests.Service("db")
	svc.Namespace = "shop"
	svc.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate}}
	page := &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "7", Continue: "c2"}, Items: []corev1.Service{*svc}}
	var body bytes.Buffer
	encoder := scheme.Codecs.EncoderForVersion(protobuf.NewSerializer(scheme.Scheme, scheme.Scheme), corev1.SchemeGroupVersion)
	if err := encoder.Encode(page, &body); err != nil {
		t.Fatal(err)
	}
	var asked *url.URL
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL
		w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
		w.Write(body.Bytes())
	}))
	defer server.Close()
	cs, err := protobufClientset(&rest.Config{Host: server.URL})
	if err != nil {
		t.Fatal(err)
	}
	store := lookup.NewStore()
	feed, err := store.Feed(&corev1.Service{})
	if err != nil {
		t.Fatal(err)
	}
	lw, err := listWatchOf(cs, &corev1.Service{}, feed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := lw.ListWithContextFunc(context.Background(), metav1.ListOptions{Limit: 500, Continue: "c1", ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if asked.Path != "/api/v1/services" || asked.Query().Get("limit") != "500" || asked.Query().Get("continue") != "c1" || asked.Query().Get("resourceVersion") != "0" {
		t.Errorf("asked for %s", asked)
	}
	// As a reflector takes the list: its ListMeta, then its items into the
	// feed.
	listMeta, err := meta.ListAccessor(got)
	if err != nil || listMeta.GetResourceVersion() != "7" || listMeta.GetContinue() != "c2" {
		t.Errorf("the list's ListMeta: %v, %v", listMeta, err)
	}
	items, err := meta.ExtractListWithAlloc(got)
	if err != nil {
		t.Fatal(err)
	}
	replaced := make([]any, len(items))
	for i, item := range items {
		replaced[i] = item
	}
	if err := feed.Replace(replaced, "7"); err != nil {
		t.Fatal(err)
	}
	want := svc.DeepCopy()
	engine.Trim(want)
	want.ResourceVersion, want.UID = "", ""
	var stored []*corev1.Service
	for s, err := range lookup.Each[*corev1.Service](store) {
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, s)
	}
	if diff := cmp.Diff([]*corev1.Service{want}, stored, cmpopts.EquateEmpty(), cmpopts.IgnoreTypes(metav1.TypeMeta{})); diff != "" {
		t.Errorf("the stored Services are not the trimmed ones (-trimmed +stored):\n%s", diff)
	}
}
