package server

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestAPIReader: each kind a review reads live is read by its namespace
// and name, a missing one is NotFound, and a kind no review reads live is
// an error rather than a silent miss.
func TestAPIReader(t *testing.T) {
	meta := func(namespace, name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"read": name}}
	}
	r := apiReader{fake.NewClientset(
		&corev1.Service{ObjectMeta: meta("shop", "db"), Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
		&corev1.PersistentVolumeClaim{ObjectMeta: meta("shop", "uploads")},
		&corev1.Namespace{ObjectMeta: meta("", "shop")},
		&appsv1.Deployment{ObjectMeta: meta("shop", "web")},
	)}
	ctx := context.Background()
	for _, c := range []struct {
		key client.ObjectKey
		obj client.Object
	}{
		{client.ObjectKey{Namespace: "shop", Name: "db"}, &corev1.Service{}},
		{client.ObjectKey{Namespace: "shop", Name: "uploads"}, &corev1.PersistentVolumeClaim{}},
		{client.ObjectKey{Name: "shop"}, &corev1.Namespace{}},
		{client.ObjectKey{Namespace: "shop", Name: "web"}, &appsv1.Deployment{}},
	} {
		if err := r.Get(ctx, c.key, c.obj); err != nil {
			t.Errorf("%T %s: %v", c.obj, c.key, err)
			continue
		}
		if c.obj.GetName() != c.key.Name || c.obj.GetNamespace() != c.key.Namespace || c.obj.GetLabels()["read"] != c.key.Name {
			t.Errorf("%T %s: read %s/%s with labels %v", c.obj, c.key, c.obj.GetNamespace(), c.obj.GetName(), c.obj.GetLabels())
		}
		missing := c.key
		missing.Name = "missing"
		if err := r.Get(ctx, missing, c.obj.DeepCopyObject().(client.Object)); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s: %v, want NotFound", c.obj, missing, err)
		}
	}
	if svc := (&corev1.Service{}); r.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "db"}, svc) == nil && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("the Service read has cluster IP %q", svc.Spec.ClusterIP)
	}
	if err := r.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "db"}, &appsv1.StatefulSet{}); err == nil {
		t.Error("a StatefulSet was read live: no review reads one")
	}
}
