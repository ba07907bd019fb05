package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// served is a clientset that lists what the fake clientset holds over
// HTTP in protobuf, as an API server does, one object a page, so that
// lists are read, pruned and continued as from a real one. The fake's
// reactors answer, so a test can refuse a list.
func served(t *testing.T, fake *fake.Clientset) kubernetes.Interface {
	t.Helper()
	ctx := context.Background()
	lists := map[string]func(ns string) (runtime.Object, error){
		"statefulsets": func(ns string) (runtime.Object, error) {
			return fake.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
		},
		"deployments": func(ns string) (runtime.Object, error) {
			return fake.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		},
		"services": func(ns string) (runtime.Object, error) {
			return fake.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		},
		"persistentvolumeclaims": func(ns string) (runtime.Object, error) {
			return fake.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		},
		"namespaces": func(string) (runtime.Object, error) {
			return fake.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		},
		"horizontalpodautoscalers": func(ns string) (runtime.Object, error) {
			return fake.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
		},
	}
	encoder := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /api/v1/[namespaces/NS/]R or /apis/G/V/[namespaces/NS/]R
		segments := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		gv := schema.GroupVersion{Version: segments[1]}
		if segments[0] == "apis" {
			gv = schema.GroupVersion{Group: segments[1], Version: segments[2]}
		}
		resource, ns := segments[len(segments)-1], ""
		if len(segments) > 2 && segments[len(segments)-3] == "namespaces" {
			ns = segments[len(segments)-2]
		}
		write := func(obj runtime.Object, err error) {
			if status, ok := err.(apierrors.APIStatus); ok {
				s := status.Status()
				s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(int(s.Code))
				json.NewEncoder(w).Encode(s)
				return
			}
			var body bytes.Buffer
			if err == nil {
				err = scheme.Codecs.EncoderForVersion(encoder, gv).Encode(obj, &body)
			}
			if err != nil {
				t.Error(err)
				return
			}
			w.Header().Set("Content-Type", runtime.ContentTypeProtobuf)
			w.Write(body.Bytes())
		}
		// A namespace audit reads its Namespace.
		if len(segments) == 4 && segments[0] == "api" && segments[2] == "namespaces" {
			write(fake.CoreV1().Namespaces().Get(ctx, segments[3], metav1.GetOptions{}))
			return
		}
		listOf := lists[resource]
		if r.Method != http.MethodGet || listOf == nil {
			http.Error(w, "not served", http.StatusNotFound)
			return
		}
		list, err := listOf(ns)
		if err != nil {
			write(nil, err)
			return
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Error(err)
			return
		}
		// One object a page; the continue token is the next one's index.
		at, _ := strconv.Atoi(r.URL.Query().Get("continue"))
		page := items[min(at, len(items)):min(at+1, len(items))]
		if err := meta.SetList(list, page); err != nil {
			t.Error(err)
			return
		}
		next := ""
		if at+1 < len(items) {
			next = strconv.Itoa(at + 1)
		}
		list.(metav1.ListInterface).SetContinue(next)
		write(list, nil)
	}))
	t.Cleanup(server.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: server.URL, ContentConfig: rest.ContentConfig{ContentType: runtime.ContentTypeProtobuf}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}
