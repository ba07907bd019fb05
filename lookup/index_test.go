package lookup

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	x := NewIndex()
	x.Add(hpa("a", "Deployment", "apps/v1", "web"))
	x.Add(hpa("b", "Deployment", "apps/v1", "web"))
	x.Add(hpa("c", "StatefulSet", "apps/v1", "web"))
	x.Add(hpa("d", "Deployment", "example.com/v1", "web"))
	// A later HPA of the same name replaces the earlier one, here retargeting it.
	x.Add(hpa("b", "Deployment", "apps/v1", "api"))

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

func TestIndexHPATarget(t *testing.T) {
	if diff := cmp.Diff([]string{"Deployment/web"}, IndexHPATarget(hpa("a", "Deployment", "apps/v1", "web"))); diff != "" {
		t.Errorf("an HPA of Deployment web (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"StatefulSet/web"}, IndexHPATarget(hpa("c", "StatefulSet", "apps/v1", "web"))); diff != "" {
		t.Errorf("an HPA of StatefulSet web (-want +got):\n%s", diff)
	}
	if got := IndexHPATarget(hpa("d", "ReplicaSet", "apps/v1", "web")); got != nil {
		t.Errorf("an HPA of a ReplicaSet is indexed under %q", got)
	}
	// A cache hands the index function whatever it holds; it must not panic.
	if got := IndexHPATarget(&corev1.Service{}); got != nil {
		t.Errorf("a Service is indexed under %q", got)
	}
}
