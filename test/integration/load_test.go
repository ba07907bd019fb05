package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateguard/stateguard/webhook"
)

// loadReview is a review the load generator sends, and what its answer
// must say.
type loadReview struct {
	body    []byte
	uid     []byte // `"uid":"..."`, echoed by the answer
	allowed bool
	says    []byte // what the answer must say
}

// BenchmarkReviewLoad drives one stateguard server, run as the chart runs
// it, with validating reviews straight over TLS with keep-alive, as the
// API server sends them: first as fast as 32 connections go (the most it
// answers), then at a fixed 5,000 reviews/s for 10 s, with each review's
// latency counted from when it was due, so that a server that falls
// behind shows it in the percentiles. One review in ten is of a
// StatefulSet without its Service, which must be denied; every answer is
// checked. Run it once: make bench-load.
func BenchmarkReviewLoad(b *testing.B) {
	const connections, rate, duration = 32, 5000, 10 * time.Second
	server := startServer(b, kubeconfig, "--config", configFile, "--zap-log-level", "info")
	ns := namespace(b, nil, nil)
	if _, err := clientset.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	compliant, missing := latencyStatefulSet("compliant", ""), latencyStatefulSet("no-service", "stateguard")
	compliant.Namespace, missing.Namespace = ns, ns
	reviews := make([]loadReview, 10)
	for i := range reviews {
		obj, allowed := compliant, true
		if i == 0 {
			obj, allowed = missing, false
		}
		reviews[i] = newLoadReview(b, fmt.Sprintf("load-%d", i), obj, allowed)
	}

	client := reviewClient(connections)
	url := fmt.Sprintf("https://127.0.0.1:%d%s", server.port, webhook.PathValidateStatefulSet)
	var wrong atomic.Int64
	send := func(r loadReview) {
		answer, err := postReview(client, url, r.body)
		if err != nil || !bytes.Contains(answer, r.uid) || !bytes.Contains(answer, r.says) {
			if wrong.Add(1) <= 3 {
				b.Errorf("review %s (allowed %v): %v %s", r.uid, r.allowed, err, answer)
			}
		}
	}
	// The Service reaches the server's cache; the connections open.
	for range connections {
		send(reviews[1])
	}

	for range b.N {
		// As fast as the connections go.
		var done atomic.Int64
		stop := time.Now().Add(5 * time.Second)
		var wg sync.WaitGroup
		for c := range connections {
			wg.Go(func() {
				for i := c; time.Now().Before(stop); i += connections {
					send(reviews[i%len(reviews)])
					done.Add(1)
				}
			})
		}
		wg.Wait()
		most := float64(done.Load()) / 5

		// At a fixed rate, each review timed from when it was due.
		due := make(chan time.Time, rate)
		// By connection, then by whether the review is allowed.
		latencies := make([][2][]time.Duration, connections)
		for c := range connections {
			wg.Go(func() {
				for i := c; ; i += connections {
					at, ok := <-due
					if !ok {
						return
					}
					r := reviews[i%len(reviews)]
					send(r)
					class := 0
					if !r.allowed {
						class = 1
					}
					latencies[c][class] = append(latencies[c][class], time.Since(at))
				}
			})
		}
		serverCPU := metricSumAt(b, server.metricsURL, "process_cpu_seconds_total")
		ownCPU := cpuTime(b)
		start := time.Now()
		for sent := range int(duration.Seconds()) * rate {
			at := start.Add(time.Duration(sent) * time.Second / rate)
			time.Sleep(time.Until(at))
			due <- at
		}
		close(due)
		wg.Wait()
		elapsed := time.Since(start)
		serverCPU = metricSumAt(b, server.metricsURL, "process_cpu_seconds_total") - serverCPU
		ownCPU = cpuTime(b) - ownCPU
		var all, allowed, denied []time.Duration
		for _, l := range latencies {
			allowed, denied = append(allowed, l[0]...), append(denied, l[1]...)
		}
		all = append(append(all, allowed...), denied...)
		b.ReportMetric(most, "max-reviews/s")
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "reviews/s")
		b.ReportMetric(float64(percentile(all, 50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99-µs")
		b.Logf("%d connections: at most %.0f reviews/s", connections, most)
		b.Logf("at %d/s for %v: %d reviews in %v (%.0f/s); wrong answers %d; CPU: the server %.2f cores (%.0f µs per review), the load generator %.2f cores",
			rate, duration, len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(), wrong.Load(),
			serverCPU/elapsed.Seconds(), serverCPU/float64(len(all))*1e6, ownCPU.Seconds()/elapsed.Seconds())
		for _, class := range []struct {
			name string
			ds   []time.Duration
		}{{"all", all}, {"allowed", allowed}, {"denied (a live read confirms the missing Service)", denied}} {
			b.Logf("  %s: p50 %v, p99 %v, p99.9 %v, max %v", class.name, percentile(class.ds, 50), percentile(class.ds, 99),
				percentileOf(class.ds, 999, 1000), percentileOf(class.ds, 1000, 1000))
		}
	}
	if n := wrong.Load(); n > 0 {
		b.Fatalf("%d answers were wrong", n)
	}
}

// TestLiveReadsAreNotRateLimited: a review whose Service is not in the
// store waits for a live read, and the API server waits for the review.
// With the client's rate limit at 1 request a second, 12 reviews of
// StatefulSets naming 12 different missing Services would take 11 s or
// more if the reads queued behind it; they are answered (denied) in a
// fraction of that. The first review is not counted: it also resolves
// the Service kind's REST mapping, whose discovery requests the limit
// does govern.
func TestLiveReadsAreNotRateLimited(t *testing.T) {
	server := startServer(t, kubeconfig, "--config", configFile, "--kube-api-qps", "1", "--kube-api-burst", "1")
	ns := namespace(t, nil, nil)
	client := reviewClient(1)
	url := fmt.Sprintf("https://127.0.0.1:%d%s", server.port, webhook.PathValidateStatefulSet)
	sts := latencyStatefulSet("db", "")
	sts.Namespace = ns
	deny := func(service string) {
		sts.Spec.ServiceName = service
		r := newLoadReview(t, service, sts, false)
		answer, err := postReview(client, url, r.body)
		if err != nil || !bytes.Contains(answer, r.uid) || !bytes.Contains(answer, r.says) {
			t.Fatalf("the review of a StatefulSet naming the missing Service %s: %v %s", service, err, answer)
		}
	}
	deny("missing-first")

	const reviews = 12
	start := time.Now()
	for i := range reviews {
		deny(fmt.Sprintf("missing-%d", i))
	}
	if took := time.Since(start); took > (reviews-1)*time.Second/2 {
		t.Errorf("%d denials, each confirmed by a live read, took %v: the reads waited on the rate limit of 1/s", reviews, took)
	} else {
		t.Logf("%d denials, each confirmed by a live read, in %v with --kube-api-qps 1", reviews, took)
	}
}

// newLoadReview encodes the CREATE review of obj as the API server does.
func newLoadReview(tb testing.TB, uid string, obj runtime.Object, allowed bool) loadReview {
	tb.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		tb.Fatal(err)
	}
	meta := obj.(metav1.Object)
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID(uid),
			Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"},
			Resource:  metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"},
			Name:      meta.GetName(),
			Namespace: meta.GetNamespace(),
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	r := loadReview{body: body, uid: []byte(`"uid":"` + uid + `"`), allowed: allowed, says: []byte(`"allowed":true`)}
	if !allowed {
		r.says = []byte(`statefulset-headless-service: spec.serviceName`)
	}
	return r
}

// reviewClient talks TLS with keep-alive to a server on the harness's
// serving certificate, over at most connections connections.
func reviewClient(connections int) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(webhooks.LocalServingCAData)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: connections, MaxConnsPerHost: connections,
	}}
}

func postReview(client *http.Client, url string, body []byte) ([]byte, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return answer, err
}

// cpuTime is the CPU time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}
