package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
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

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/webhook"
)

// loadReview is a review the load generator sends, and what its answer
// must say.
type loadReview struct {
	obj     runtime.Object
	body    []byte
	allowed bool
	says    [][]byte // what the answer must say: its uid, its verdict
}

// answered says whether answer is the review's.
func (r loadReview) answered(answer []byte) bool {
	for _, says := range r.says {
		if !bytes.Contains(answer, says) {
			return false
		}
	}
	return true
}

// loadTarget is a webhook the load generator drives: its reviews, and
// the process whose CPU it reads.
type loadTarget struct {
	name    string
	url     string
	pid     int
	reviews []loadReview
	runs    []loadRun
}

// loadRun is one run of the load against a target.
type loadRun struct {
	most            float64 // reviews/s, as fast as the connections go
	allowed, denied []time.Duration
	// late is how long after its due time each review was sent: the load
	// generator's own delays, and a connection's wait for its previous answer.
	late    []time.Duration
	elapsed time.Duration
	// The target's CPU, the load generator's and the API server's, in cores.
	cores, ownCores, apiCores float64
}

func (r loadRun) all() []time.Duration { return append(slices.Clone(r.allowed), r.denied...) }

const loadConnections, loadRate, loadDuration, loadRounds = 32, 5000, 10 * time.Second, 5

// BenchmarkReviewLoad drives one stateguard server, run as the chart runs
// it, with validating reviews straight over TLS with keep-alive, as the
// API server sends them: first as fast as 32 connections go (the most it
// answers), then at a fixed 5,000 reviews/s for 10 s, with each review's
// latency counted from when it was due, so that a server that falls
// behind shows it in the percentiles. One review in ten is of a
// StatefulSet without its Service, which must be denied; every answer is
// checked. A second load has every review allowed, which takes no live
// read. The anchor, alternated with both five times, is the bare Go
// webhook of BenchmarkStatefulSetCreateLatency in a process of its own:
// what this machine answers at that rate when the webhook does the least.
// Each connection writes its reviews and reads its answers itself
// (reviewConn), and how late the generator sent each review is printed
// beside the latencies: on 2 cores shared with the server, the
// generator's own delays are part of every figure. Run it once: make
// bench-load.
func BenchmarkReviewLoad(b *testing.B) {
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
	// Its data on an emptyDir: denied on the object alone, with no lookup.
	scratch := compliant.DeepCopy()
	scratch.Name, scratch.Spec.VolumeClaimTemplates = "emptydir-data", nil
	scratch.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	var allowed, deniedAlone, deniedLive, bare []loadReview
	for i := range 10 {
		uid := fmt.Sprintf("load-%d", i)
		allowed = append(allowed, newLoadReview(b, uid, compliant, ""))
		bare = append(bare, newLoadReview(b, uid, compliant, "")) // it judges nothing
		if i == 0 {
			deniedAlone = append(deniedAlone, newLoadReview(b, uid, scratch, engine.RuleEmptyDirData))
			deniedLive = append(deniedLive, newLoadReview(b, uid, missing, engine.RuleHeadlessService))
		} else {
			deniedAlone, deniedLive = append(deniedAlone, allowed[i]), append(deniedLive, allowed[i])
		}
	}
	bareURL, barePID := startBareWebhookProcess(b)
	url := fmt.Sprintf("https://127.0.0.1:%d%s", server.port, webhook.PathValidateStatefulSet)
	targets := []*loadTarget{
		{name: "bare Go webhook (encoding/json, allows all)", url: bareURL, pid: barePID, reviews: bare},
		{name: "stateguard, every review allowed", url: url, pid: server.pid, reviews: allowed},
		{name: "stateguard, 1 in 10 denied on the object alone (data on an emptyDir)", url: url, pid: server.pid, reviews: deniedAlone},
		{name: "stateguard, 1 in 10 denied after a live read (its Service missing)", url: url, pid: server.pid, reviews: deniedLive},
	}
	var wrong atomic.Int64

	for range b.N {
		for range loadRounds {
			for _, t := range targets {
				t.runs = append(t.runs, t.run(b, &wrong))
			}
		}
	}
	if n := wrong.Load(); n > 0 {
		b.Fatalf("%d answers were wrong", n)
	}
	b.Logf("%d connections, then %d reviews/s for %v; medians of %d runs, alternated:", loadConnections, loadRate, loadDuration, len(targets[0].runs))
	for _, t := range targets {
		most, p50, p99 := t.medianOf(func(r loadRun) float64 { return r.most }), t.percentileMs(loadRun.all, 50), t.percentileMs(loadRun.all, 99)
		b.Logf("%s: at most %.0f reviews/s %v; at %d/s p50 %.2f ms %v, p99 %.2f ms %v; CPU: its %.2f cores, the load generator's %.2f, the API server's %.2f",
			t.name, most, t.each(func(r loadRun) float64 { return r.most }), loadRate, median(p50), p50, median(p99), p99,
			t.medianOf(func(r loadRun) float64 { return r.cores }), t.medianOf(func(r loadRun) float64 { return r.ownCores }),
			t.medianOf(func(r loadRun) float64 { return r.apiCores }))
		allowed := t.percentileMs(func(r loadRun) []time.Duration { return r.allowed }, 99)
		late50, late99 := t.percentileMs(func(r loadRun) []time.Duration { return r.late }, 50), t.percentileMs(func(r loadRun) []time.Duration { return r.late }, 99)
		b.Logf("  allowed: p99 %.2f ms %v; sent after their due time: p50 %.2f ms %v, p99 %.2f ms %v", median(allowed), allowed, median(late50), late50, median(late99), late99)
		if len(t.runs[0].denied) > 0 {
			denied50, denied99 := t.percentileMs(func(r loadRun) []time.Duration { return r.denied }, 50), t.percentileMs(func(r loadRun) []time.Duration { return r.denied }, 99)
			b.Logf("  denied: p50 %.2f ms %v, p99 %.2f ms %v", median(denied50), denied50, median(denied99), denied99)
		}
	}
	for _, m := range []struct {
		unit   string
		target *loadTarget
	}{{"bare-p99-µs", targets[0]}, {"allowed-p99-µs", targets[1]}, {"denied-alone-p99-µs", targets[2]}, {"denied-live-p99-µs", targets[3]}} {
		b.ReportMetric(median(m.target.percentileMs(loadRun.all, 99))*1000, m.unit)
	}
	b.ReportMetric(targets[1].medianOf(func(r loadRun) float64 { return r.most }), "max-reviews/s")
}

// send posts one review on conn and checks its answer.
func (t *loadTarget) send(tb testing.TB, conn *reviewConn, r loadReview, wrong *atomic.Int64) {
	answer, err := conn.post(r.body)
	if err != nil || !r.answered(answer) {
		if wrong.Add(1) <= 3 {
			tb.Errorf("%s: review %s (allowed %v): %v %s", t.name, r.says[0], r.allowed, err, answer)
		}
	}
}

// run drives the target as fast as the connections go for 5 s, then at
// loadRate for loadDuration, each review timed from when it was due.
func (t *loadTarget) run(tb testing.TB, wrong *atomic.Int64) loadRun {
	// The connections open, and the first review of each waits for the
	// Service to reach the server's store, before anything is timed.
	conns := make([]*reviewConn, loadConnections)
	for c := range conns {
		conn, err := dialReview(t.url)
		if err != nil {
			tb.Fatal(err)
		}
		defer conn.Close()
		conns[c] = conn
		t.send(tb, conn, t.reviews[1], wrong)
	}
	var done atomic.Int64
	stop := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for c := range loadConnections {
		wg.Go(func() {
			for i := c; time.Now().Before(stop); i += loadConnections {
				t.send(tb, conns[c], t.reviews[i%len(t.reviews)], wrong)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	run := loadRun{most: float64(done.Load()) / 5}

	// Each connection keeps its own schedule, every loadConnections-th
	// review from start: no dispatcher stands between a review's due time
	// and its sending. A connection still waiting for an answer sends its
	// next review late, and the lateness counts.
	latencies := make([][3][]time.Duration, loadConnections)
	reviews := int(loadDuration.Seconds()) * loadRate
	cpu, ownCPU, apiCPU := processCPU(tb, t.pid), cpuTime(tb), apiServerCPU(tb)
	start := time.Now()
	for c := range loadConnections {
		wg.Go(func() {
			for i := c; i < reviews; i += loadConnections {
				at := start.Add(time.Duration(i) * time.Second / loadRate)
				time.Sleep(time.Until(at))
				sent := time.Now()
				r := t.reviews[i%len(t.reviews)]
				t.send(tb, conns[c], r, wrong)
				class := 0
				if !r.allowed {
					class = 1
				}
				latencies[c][class] = append(latencies[c][class], time.Since(at))
				latencies[c][2] = append(latencies[c][2], sent.Sub(at))
			}
		})
	}
	wg.Wait()
	run.elapsed = time.Since(start)
	run.cores = (processCPU(tb, t.pid) - cpu).Seconds() / run.elapsed.Seconds()
	run.ownCores = (cpuTime(tb) - ownCPU).Seconds() / run.elapsed.Seconds()
	run.apiCores = (apiServerCPU(tb) - apiCPU).Seconds() / run.elapsed.Seconds()
	for _, l := range latencies {
		run.allowed, run.denied, run.late = append(run.allowed, l[0]...), append(run.denied, l[1]...), append(run.late, l[2]...)
	}
	return run
}

// each is one figure of every run.
func (t *loadTarget) each(of func(loadRun) float64) []float64 {
	var xs []float64
	for _, r := range t.runs {
		xs = append(xs, math.Round(of(r)*100)/100)
	}
	return xs
}

func (t *loadTarget) medianOf(of func(loadRun) float64) float64 { return median(t.each(of)) }

// percentileMs is the pth percentile of every run's latencies, in ms.
func (t *loadTarget) percentileMs(latencies func(loadRun) []time.Duration, p int) []float64 {
	return t.each(func(r loadRun) float64 { return float64(percentile(latencies(r), p).Microseconds()) / 1000 })
}

// TestLiveReadsAreNotRateLimited: a review whose Service is not in the
// store waits for a live read, and the API server waits for the review.
// With the client's rate limit at 1 request a second, 12 reviews of
// StatefulSets naming 12 different missing Services would take 11 s or
// more if the reads queued behind it; they are answered (denied) in a
// fraction of that, the first included: the reads need no discovery of
// the Service kind, whose requests the limit does govern.
func TestLiveReadsAreNotRateLimited(t *testing.T) {
	server := startServer(t, kubeconfig, "--config", configFile, "--kube-api-qps", "1", "--kube-api-burst", "1")
	ns := namespace(t, nil, nil)
	conn, err := dialReview(fmt.Sprintf("https://127.0.0.1:%d%s", server.port, webhook.PathValidateStatefulSet))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sts := latencyStatefulSet("db", "")
	sts.Namespace = ns
	deny := func(service string) {
		sts.Spec.ServiceName = service
		r := newLoadReview(t, service, sts, engine.RuleHeadlessService)
		answer, err := conn.post(r.body)
		if err != nil || !r.answered(answer) {
			t.Fatalf("the review of a StatefulSet naming the missing Service %s: %v %s", service, err, answer)
		}
	}
	const reviews = 12
	start := time.Now()
	deny("missing-first")
	if took := time.Since(start); took > 800*time.Millisecond {
		t.Errorf("the first denial took %v: its live read waited on a rate-limited discovery of the Service kind", took)
	}
	for i := range reviews - 1 {
		deny(fmt.Sprintf("missing-%d", i))
	}
	if took := time.Since(start); took > (reviews-1)*time.Second/2 {
		t.Errorf("%d denials, each confirmed by a live read, took %v: the reads waited on the rate limit of 1/s", reviews, took)
	} else {
		t.Logf("%d denials, each confirmed by a live read, in %v with --kube-api-qps 1", reviews, took)
	}
}

// newLoadReview encodes the CREATE review of obj as the API server does;
// the answer must deny it by the rule deniedBy, or allow it if "".
func newLoadReview(tb testing.TB, uid string, obj runtime.Object, deniedBy string) loadReview {
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
	r := loadReview{obj: obj, body: body, allowed: deniedBy == "", says: [][]byte{[]byte(`"uid":"` + uid + `"`), []byte(`"allowed":true`)}}
	if !r.allowed {
		// The denial's message lists the rule, on a line of its own.
		r.says = [][]byte{r.says[0], []byte(`"allowed":false`), []byte(`\n` + deniedBy + `: `)}
	}
	return r
}

// reviewConn is one keep-alive TLS connection to a webhook on the
// harness's serving certificate. It writes each review's request whole
// and reads the answer on the calling goroutine: net/http's client hands
// every request between goroutines, and at 5,000 reviews/s cost nearly
// as much CPU as the server it measured, on the same cores.
type reviewConn struct {
	*tls.Conn
	path, host string
	answers    *bufio.Reader
	request    bytes.Buffer
}

func dialReview(rawURL string) (*reviewConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(webhooks.LocalServingCAData)
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	return &reviewConn{Conn: conn, path: u.Path, host: u.Host, answers: bufio.NewReader(conn)}, nil
}

// post sends a review and returns the answer's body.
func (c *reviewConn) post(review []byte) ([]byte, error) {
	c.request.Reset()
	fmt.Fprintf(&c.request, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.path, c.host, len(review))
	c.request.Write(review)
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := c.Write(c.request.Bytes()); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.answers, nil)
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

// processCPU is the CPU time process pid has used (/proc/PID/stat's
// utime and stime, in the kernel's 100 ticks a second).
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The fields after the command's closing parenthesis, from the state.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// apiServerCPU is the CPU time kube-apiserver has used, from its metrics.
func apiServerCPU(tb testing.TB) time.Duration {
	tb.Helper()
	body, err := clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatalf("reading the API server's metrics: %v", err)
	}
	return time.Duration(sumMetric(tb, body, "process_cpu_seconds_total ") * float64(time.Second))
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
