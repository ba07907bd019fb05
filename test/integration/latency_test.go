package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// markerLabel marks the probe StatefulSets that tell which variant the
// API server calls: the bare webhook and the CEL policy deny a probe
// carrying their name, and nothing else.
const markerLabel = "bench.stateguard.io/deny"

// latencyVariant is one way of admitting StatefulSet creates.
type latencyVariant struct {
	name    string
	install func()
	remove  func()
}

// BenchmarkStatefulSetCreateLatency measures what admission adds to a
// write: sequential creates of a compliant StatefulSet under each of
// these variants, in turns of 100 creates so that all see the same
// machine, 2,000 creates each:
//   - no admission;
//   - an in-tree ValidatingAdmissionPolicy with 2 CEL rules;
//   - a bare Go webhook over TLS that decodes the review and the object
//     with encoding/json and allows, registered as the chart registers
//     stateguard's StatefulSet webhook;
//   - stateguard with the chart's default webhook configuration;
//   - stateguard with a default set, which adds the mutating webhook.
//
// Besides the percentiles it reports where the slowest creates fall (the
// first create after the API server picked up a configuration opens a
// new TLS connection) and the webhook's garbage collections. Run it once:
// make bench-webhook.
func BenchmarkStatefulSetCreateLatency(b *testing.B) {
	const perVariant, turn = 2000, 100
	ctx := context.Background()
	admission := clientset.AdmissionregistrationV1()
	validating, err := admission.ValidatingWebhookConfigurations().Get(ctx, "stateguard", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	mutating, err := admission.MutatingWebhookConfigurations().Get(ctx, "stateguard", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// A server as the chart runs it (the harness's logs at debug level),
	// which the stateguard variants' configurations point to.
	server := startServer(b, kubeconfig, "--config", configFile, "--zap-log-level", "info", "--mutating-webhook-configuration", "stateguard")
	harnessURL := strings.TrimSuffix(serverURL, "/") + "/"
	serverAt := func(cfg *admissionregistrationv1.WebhookClientConfig) {
		url := strings.Replace(*cfg.URL, harnessURL, fmt.Sprintf("https://127.0.0.1:%d/", server.port), 1)
		cfg.URL = &url
	}
	validating, mutating = validating.DeepCopy(), mutating.DeepCopy()
	for i := range validating.Webhooks {
		serverAt(&validating.Webhooks[i].ClientConfig)
	}
	for i := range mutating.Webhooks {
		serverAt(&mutating.Webhooks[i].ClientConfig)
	}
	ns := namespace(b, nil, nil)
	if _, err := clientset.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []corev1.ServicePort{{Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}

	bareURL := startBareWebhook(b)
	bare := validating.DeepCopy()
	bare.ObjectMeta = metav1.ObjectMeta{Name: "bench-bare"}
	bare.Webhooks = bare.Webhooks[:1] // the StatefulSet webhook, as the chart registers it
	bare.Webhooks[0].Name = "statefulsets.bare.bench.stateguard.io"
	bare.Webhooks[0].ClientConfig.URL = &bareURL
	policy, binding := celPolicy(validating.Webhooks[0].NamespaceSelector)

	createOrFail := func(err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
	}
	recreate := func(obj interface{ SetResourceVersion(string) }) { obj.SetResourceVersion("") }
	installStateguard := func() {
		v := validating.DeepCopy()
		recreate(v)
		_, err := admission.ValidatingWebhookConfigurations().Create(ctx, v, metav1.CreateOptions{})
		createOrFail(err)
	}
	removeStateguard := func() {
		createOrFail(admission.ValidatingWebhookConfigurations().Delete(ctx, "stateguard", metav1.DeleteOptions{}))
	}
	variants := []latencyVariant{
		{name: "no admission", install: func() {}, remove: func() {}},
		{name: "ValidatingAdmissionPolicy, 2 CEL rules",
			install: func() {
				_, err := admission.ValidatingAdmissionPolicies().Create(ctx, policy.DeepCopy(), metav1.CreateOptions{})
				createOrFail(err)
				_, err = admission.ValidatingAdmissionPolicyBindings().Create(ctx, binding.DeepCopy(), metav1.CreateOptions{})
				createOrFail(err)
			},
			remove: func() {
				createOrFail(admission.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}))
				createOrFail(admission.ValidatingAdmissionPolicies().Delete(ctx, policy.Name, metav1.DeleteOptions{}))
			}},
		{name: "bare Go webhook (encoding/json, allows)",
			install: func() {
				_, err := admission.ValidatingWebhookConfigurations().Create(ctx, bare.DeepCopy(), metav1.CreateOptions{})
				createOrFail(err)
			},
			remove: func() {
				createOrFail(admission.ValidatingWebhookConfigurations().Delete(ctx, bare.Name, metav1.DeleteOptions{}))
			}},
		{name: "stateguard, the chart's defaults", install: installStateguard, remove: removeStateguard},
		{name: "stateguard with a default (+ mutating webhook)",
			install: func() {
				installStateguard()
				m := mutating.DeepCopy()
				recreate(m)
				_, err := admission.MutatingWebhookConfigurations().Create(ctx, m, metav1.CreateOptions{})
				createOrFail(err)
			},
			remove: func() {
				removeStateguard()
				createOrFail(admission.MutatingWebhookConfigurations().Delete(ctx, "stateguard", metav1.DeleteOptions{}))
			}},
	}
	const stateguardVariant, defaultingVariant = 3, 4

	// The harness installed both of stateguard's configurations: start
	// from none, and leave both installed for the tests that follow.
	variants[defaultingVariant].remove()
	defer func() {
		original := func(cfg *admissionregistrationv1.WebhookClientConfig) {
			url := strings.Replace(*cfg.URL, fmt.Sprintf("https://127.0.0.1:%d/", server.port), harnessURL, 1)
			cfg.URL = &url
		}
		for i := range validating.Webhooks {
			original(&validating.Webhooks[i].ClientConfig)
		}
		for i := range mutating.Webhooks {
			original(&mutating.Webhooks[i].ClientConfig)
		}
		variants[defaultingVariant].install()
		waitVariant(b, ns, "stateguard")
	}()

	create := func(name string) time.Duration {
		b.Helper()
		start := time.Now()
		if _, err := clientset.AppsV1().StatefulSets(ns).Create(ctx, latencyStatefulSet(name, ""), metav1.CreateOptions{}); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return time.Since(start)
	}
	for range b.N {
		samples := make([][]time.Duration, len(variants))
		firstOfTurn := make([]map[int]bool, len(variants)) // indices of samples that opened a turn
		var gcCycles, gcPause, served, calls float64
		n := 0
		for round := 0; round*turn < perVariant; round++ {
			for i, v := range variants {
				v.install()
				waitVariant(b, ns, markerOf(i))
				if i >= stateguardVariant {
					gcCycles -= metricSumAt(b, server.metricsURL, "go_gc_duration_seconds_count")
					gcPause -= metricSumAt(b, server.metricsURL, "go_gc_duration_seconds_sum")
					served -= metricSumAt(b, server.metricsURL, "controller_runtime_webhook_latency_seconds_sum")
					calls -= metricSumAt(b, server.metricsURL, "controller_runtime_webhook_latency_seconds_count")
				}
				if firstOfTurn[i] == nil {
					firstOfTurn[i] = map[int]bool{}
				}
				firstOfTurn[i][len(samples[i])] = true
				for range turn {
					n++
					samples[i] = append(samples[i], create(fmt.Sprintf("sts-%d-%05d", b.N, n)))
				}
				if i >= stateguardVariant {
					gcCycles += metricSumAt(b, server.metricsURL, "go_gc_duration_seconds_count")
					gcPause += metricSumAt(b, server.metricsURL, "go_gc_duration_seconds_sum")
					served += metricSumAt(b, server.metricsURL, "controller_runtime_webhook_latency_seconds_sum")
					calls += metricSumAt(b, server.metricsURL, "controller_runtime_webhook_latency_seconds_count")
				}
				v.remove()
			}
		}

		base50, base99 := percentile(samples[0], 50), percentile(samples[0], 99)
		var table strings.Builder
		fmt.Fprintf(&table, "%d StatefulSet creates per variant, in turns of %d:\n", perVariant, turn)
		fmt.Fprintf(&table, "| variant | p50 | p99 | added p50 | added p99 | of the slowest 1%%, first of a turn |\n|---|---|---|---|---|---|\n")
		for i, v := range variants {
			p50, p99 := percentile(samples[i], 50), percentile(samples[i], 99)
			fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %d of %d |\n", v.name, ms(p50), ms(p99), ms(p50-base50), ms(p99-base99),
				slowestFirst(samples[i], firstOfTurn[i]), len(samples[i])/100)
			unit := strings.NewReplacer(" ", "-", ",", "", "(", "", ")", "", "+", "", "/", "-").Replace(v.name)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs-"+unit)
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs-"+unit)
		}
		b.Log(table.String())
		b.Logf("stateguard (both variants, %0.f reviews): %.1f µs per review in its handler; %.0f garbage collections, %.2f ms of GC pauses in all",
			calls, served/calls*1e6, gcCycles, gcPause*1e3)
	}
}

// ms renders d in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// slowestFirst counts the slowest 1% of samples that opened a turn.
func slowestFirst(samples []time.Duration, first map[int]bool) int {
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(samples[b] - samples[a]) })
	count := 0
	for _, i := range order[:len(samples)/100] {
		if first[i] {
			count++
		}
	}
	return count
}

// markerOf is the probe each variant denies: stateguard's is a StatefulSet
// without its Service.
func markerOf(variant int) string {
	return [...]string{"", "cel", "bare", "stateguard", "stateguard"}[variant]
}

// latencyStatefulSet is a compliant database StatefulSet: its headless
// Service exists and its data directory is on a claim.
func latencyStatefulSet(name, marker string) *appsv1.StatefulSet {
	labels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "postgresql"}},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "db", Image: "postgres:17",
					Ports:        []corev1.ContainerPort{{Name: "postgres", ContainerPort: 5432}},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				},
			}},
		},
	}
	switch marker {
	case "":
	case "stateguard":
		sts.Spec.ServiceName = "missing"
	default:
		sts.Labels[markerLabel] = marker
	}
	return sts
}

// waitVariant waits until the API server admits with the variant whose
// probe is marker ("" for no admission): that probe is denied, the other
// variants' are admitted. Configurations reach it through informers.
func waitVariant(tb testing.TB, namespace, marker string) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		settled := true
		for _, probe := range []string{"cel", "bare", "stateguard"} {
			_, err := clientset.AppsV1().StatefulSets(namespace).Create(context.Background(), latencyStatefulSet("probe", probe), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if (err != nil) != (probe == marker) {
				settled = false
				break
			}
		}
		if settled {
			return
		}
	}
	tb.Fatalf("the API server did not switch to admission variant %q within 30s", marker)
}

// bareWebhookEnv, set to a certificate directory, makes the test binary
// the bare webhook alone, in a process of its own: TestMain runs
// runBareWebhook instead of the tests.
const bareWebhookEnv = "STATEGUARD_BARE_WEBHOOK_CERT_DIR"

// bareListener listens on the serving certificate in dir, with the TLS
// settings stateguard uses (HTTP/1.1, TLS 1.2 or later).
func bareListener(dir string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		return nil, err
	}
	return tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
}

func bareServer() *http.Server {
	return &http.Server{Handler: http.HandlerFunc(bareReview), ReadHeaderTimeout: 10 * time.Second}
}

// startBareWebhook serves the bare webhook in this process on the
// harness's serving certificate, and returns its URL.
func startBareWebhook(tb testing.TB) string {
	tb.Helper()
	listener, err := bareListener(certDir)
	if err != nil {
		tb.Fatal(err)
	}
	server := bareServer()
	go func() { _ = server.Serve(listener) }()
	tb.Cleanup(func() { _ = server.Close() })
	return "https://" + listener.Addr().String() + "/validate"
}

// runBareWebhook prints the bare webhook's address and serves it until
// the process is killed.
func runBareWebhook(dir string) error {
	listener, err := bareListener(dir)
	if err != nil {
		return err
	}
	fmt.Println(listener.Addr())
	return bareServer().Serve(listener)
}

// startBareWebhookProcess runs the bare webhook in a process of its own,
// as stateguard runs, and returns its URL and process ID.
func startBareWebhookProcess(tb testing.TB) (string, int) {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), bareWebhookEnv+"="+certDir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("the bare webhook's process did not print its address: %v", err)
	}
	return "https://" + strings.TrimSpace(addr) + "/validate", cmd.Process.Pid
}

// bareReview is the least a Go webhook does: decode the review and its
// StatefulSet, and answer. It denies only the probe that carries its name.
func bareReview(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	var sts appsv1.StatefulSet
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal(review.Request.Object.Raw, &sts); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	response := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: sts.Labels[markerLabel] != "bare"}
	if !response.Allowed {
		response.Result = &metav1.Status{Code: http.StatusForbidden, Message: "the bare webhook's probe"}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: response})
}

// celPolicy is the in-tree anchor: a ValidatingAdmissionPolicy on
// StatefulSet writes in the namespaces the chart's webhook judges, with
// two CEL rules (a rule of the kind stateguard checks, and the probe's).
func celPolicy(namespaces *metav1.LabelSelector) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	fail := admissionregistrationv1.Fail
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-cel"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: namespaces,
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets"}},
				}}},
			},
			Validations: []admissionregistrationv1.Validation{
				{Expression: "!has(object.spec.volumeClaimTemplates) || object.spec.volumeClaimTemplates.all(t, has(t.spec.accessModes) && t.spec.accessModes.size() > 0)", Message: "every volumeClaimTemplate names its access modes"},
				{Expression: fmt.Sprintf("!has(object.metadata.labels) || !(%[1]q in object.metadata.labels) || object.metadata.labels[%[1]q] != 'cel'", markerLabel), Message: "the CEL policy's probe"},
			},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-cel"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	return policy, binding
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration { return percentileOf(ds, p, 100) }

// percentileOf is the n/of-th quantile (nearest rank) of ds.
func percentileOf(ds []time.Duration, n, of int) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := (n*len(sorted) + of - 1) / of
	return sorted[max(rank-1, 0)]
}
