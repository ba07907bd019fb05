package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkStatefulSetCreateLatency measures what the webhook adds to a
// write: 500 sequential StatefulSet creates with the chart's webhook
// configurations registered and 500 without, alternated in blocks of 50 so
// both see the same machine. Run it once: make bench-webhook.
func BenchmarkStatefulSetCreateLatency(b *testing.B) {
	const perMode, block = 500, 50
	ctx := context.Background()
	admission := clientset.AdmissionregistrationV1()
	validating, err := admission.ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	mutating, err := admission.MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if len(validating.Items) != 1 || len(mutating.Items) != 1 {
		b.Fatalf("want the chart's two webhook configurations, found %d validating and %d mutating", len(validating.Items), len(mutating.Items))
	}
	register := func(on bool) {
		b.Helper()
		v, m := validating.Items[0].DeepCopy(), mutating.Items[0].DeepCopy()
		if on {
			v.ResourceVersion, m.ResourceVersion = "", ""
			if _, err := admission.ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, err := admission.MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		} else {
			if err := admission.ValidatingWebhookConfigurations().Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
			if err := admission.MutatingWebhookConfigurations().Delete(ctx, m.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		waitRegistered(b, on)
	}

	ns := namespace(b, nil, nil)
	if _, err := clientset.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	create := func(name string) time.Duration {
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.StatefulSetSpec{
				ServiceName: "db",
				Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "postgres:17"}}},
				},
			},
		}
		start := time.Now()
		if _, err := clientset.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}

	for range b.N {
		served := metricSum(b, "controller_runtime_webhook_latency_seconds_sum")
		calls := metricSum(b, "controller_runtime_webhook_latency_seconds_count")
		var with, without []time.Duration
		registered := true
		for n := 0; len(with) < perMode || len(without) < perMode; n++ {
			if n%block == 0 && n > 0 {
				registered = !registered
				register(registered)
			}
			d := create(fmt.Sprintf("sts-%d-%05d", b.N, n))
			if registered {
				with = append(with, d)
			} else {
				without = append(without, d)
			}
		}
		if !registered {
			register(true)
		}
		served = metricSum(b, "controller_runtime_webhook_latency_seconds_sum") - served
		calls = metricSum(b, "controller_runtime_webhook_latency_seconds_count") - calls
		b.Logf("the webhook answered %.0f reviews in %.1f µs on average (its own handler time)", calls, served/calls*1e6)
		p50w, p99w := percentile(with, 50), percentile(with, 99)
		p50o, p99o := percentile(without, 50), percentile(without, 99)
		b.ReportMetric(float64(p50w.Microseconds()), "p50-with-µs")
		b.ReportMetric(float64(p99w.Microseconds()), "p99-with-µs")
		b.ReportMetric(float64(p50o.Microseconds()), "p50-without-µs")
		b.ReportMetric(float64(p99o.Microseconds()), "p99-without-µs")
		b.Logf("%d creates each: with the webhook p50 %v p99 %v; without p50 %v p99 %v; added p50 %v p99 %v",
			perMode, p50w, p99w, p50o, p99o, p50w-p50o, p99w-p99o)
	}
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank-1, 0)]
}

// waitRegistered waits until the API server has seen the webhook
// configurations come or go: a StatefulSet without its Service is denied
// exactly when they are registered.
func waitRegistered(tb testing.TB, registered bool) {
	tb.Helper()
	probe := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "missing",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "probe"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "probe"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "busybox"}}},
			},
		},
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, err := clientset.AppsV1().StatefulSets("default").Create(context.Background(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if (err != nil) == registered {
			return
		}
	}
	tb.Fatalf("the API server did not see the webhook configurations %s within 30s", map[bool]string{true: "registered", false: "removed"}[registered])
}
