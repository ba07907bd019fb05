package lookup

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
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

	for target, want := range map[string][]string{"web": {"a"}, "api": {"b"}, "db": nil} {
		got, err := x.HorizontalPodAutoscalers(context.Background(), "shop", target)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, names(got)); diff != "" {
			t.Errorf("HPAs of Deployment %q (-want +got):\n%s", target, diff)
		}
	}
	if got, _ := x.HorizontalPodAutoscalers(context.Background(), "other", "web"); got != nil {
		t.Errorf("HPAs of another namespace: %v", names(got))
	}
}
