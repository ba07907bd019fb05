package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Manifests. Each test applies them in a namespace of its own.

func statefulSetWithoutService(name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  serviceName: %[1]s
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: main, image: busybox:1.36}]}
`, name)
}

func headlessService(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec: {clusterIP: None, selector: {app: %[1]s}, ports: [{port: 80}]}
`, name)
}

// statefulSet is a compliant StatefulSet: apply it after headlessService(name).
func statefulSet(name, extraSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  serviceName: %[1]s
  selector: {matchLabels: {app: %[1]s}}
%[2]s  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: main, image: busybox:1.36}]}
`, name, extraSpec)
}

const emptyDirData = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db-missing
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: busybox:1.36, volumeMounts: [{name: data, mountPath: /var/lib/db}]}]
      volumes: [{name: data, emptyDir: {}}]
`

const rwoClaim = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`

func deployment(replicas int, strategy string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  strategy: {type: %s}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.27, volumeMounts: [{name: u, mountPath: /u}]}]
      volumes: [{name: u, persistentVolumeClaim: {claimName: uploads}}]
`, replicas, strategy)
}

const hpa5 = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
`

// mustApply applies a manifest and fails on error; it returns stderr (warnings).
func mustApply(t *testing.T, ns, manifest string, args ...string) string {
	t.Helper()
	_, stderr, err := kubectlIn(manifest, append([]string{"apply", "-n", ns, "-f", "-"}, args...)...)
	if err != nil {
		t.Fatalf("kubectl apply failed: %v\n%s", err, stderr)
	}
	return stderr
}

// mustDeny applies a manifest that stateguard must refuse and returns
// stderr. A failure to reach the webhook is not a denial.
func mustDeny(t *testing.T, ns, manifest string, args ...string) string {
	t.Helper()
	_, stderr, err := kubectlIn(manifest, append([]string{"apply", "-n", ns, "-f", "-"}, args...)...)
	if err == nil {
		t.Fatalf("kubectl apply succeeded, want a denial; stderr:\n%s", stderr)
	}
	if !strings.Contains(stderr, `.stateguard.io" denied the request`) {
		t.Fatalf("kubectl apply failed, but not by a stateguard denial:\n%s", stderr)
	}
	return stderr
}

func contains(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("output does not contain %q:\n%s", w, text)
		}
	}
}

func TestEachRuleDeniesThroughKubectl(t *testing.T) {
	ns := namespace(t, nil, nil)
	stderr := mustDeny(t, ns, statefulSetWithoutService("cache"))
	contains(t, stderr, `admission webhook "statefulsets.validate.stateguard.io" denied the request`,
		"statefulset-headless-service: spec.serviceName:", `Service "cache" not found`, "create a headless Service (clusterIP: None)")

	// Two violations of one object come back in one message.
	stderr = mustDeny(t, ns, emptyDirData)
	contains(t, stderr, `StatefulSet "db" violates 2 stateguard rules`,
		"statefulset-headless-service: spec.serviceName:",
		"statefulset-emptydir-data: spec.template.spec.volumes[0]:", "move it to spec.volumeClaimTemplates")

	mustApply(t, ns, rwoClaim)
	stderr = mustDeny(t, ns, deployment(3, "Recreate"))
	contains(t, stderr, `admission webhook "deployments.validate.stateguard.io" denied the request`,
		"deployment-shared-rwo-pvc: spec.template.spec.volumes[0].persistentVolumeClaim.claimName:",
		`PersistentVolumeClaim "uploads" is ReadWriteOnce, but spec.replicas is 3`, "run 1 replica")
}

func TestServiceAndStatefulSetInOneFile(t *testing.T) {
	ns := namespace(t, nil, nil)
	stderr := mustApply(t, ns, headlessService("db")+"---\n"+statefulSet("db", ""))
	if strings.Contains(stderr, "Warning") {
		t.Errorf("unexpected warnings:\n%s", stderr)
	}
}

func TestScaleAndAutoscaler(t *testing.T) {
	ns := namespace(t, nil, nil)
	mustApply(t, ns, rwoClaim+"---\n"+deployment(1, "Recreate"))
	_, stderr, err := kubectlIn("", "scale", "-n", ns, "deployment/web", "--replicas=3")
	if err == nil {
		t.Fatalf("kubectl scale --replicas=3 succeeded, want a denial")
	}
	contains(t, stderr, `admission webhook "deployment-scales.validate.stateguard.io" denied the request`,
		"deployment-shared-rwo-pvc: spec.replicas:", "the scale request sets 3 replicas")
	if _, err := kubectl("", "scale", "-n", ns, "deployment/web", "--replicas=1"); err != nil {
		t.Errorf("scaling back to 1: %v", err)
	}
	stderr = mustDeny(t, ns, hpa5)
	contains(t, stderr, "deployment-shared-rwo-pvc: spec.maxReplicas:", `HorizontalPodAutoscaler "web" may scale to 5 replicas`,
		`set maxReplicas of HorizontalPodAutoscaler "web" to 1`)
}

// TestOnlyWhatCanViolateIsSent: the chart's matchConditions keep from
// stateguard the writes no rule can judge, so that they go through even
// when it is down: HPAs of other kinds and the HPA controller's scale
// updates; Deployments without claims go only to a fail-open webhook.
func TestOnlyWhatCanViolateIsSent(t *testing.T) {
	ns := namespace(t, nil, nil)
	sent := func() float64 { return metricSum(t, `controller_runtime_webhook_requests_total{`) }
	before := sent()
	mustApply(t, ns, `apiVersion: apps/v1
kind: Deployment
metadata: {name: stateless}
spec:
  replicas: 3
  selector: {matchLabels: {app: stateless}}
  template:
    metadata: {labels: {app: stateless}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
      volumes: [{name: cache, emptyDir: {}}]
`)
	mustApply(t, ns, `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: db}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}
  maxReplicas: 5
`)
	if _, err := kubectl("", "scale", "-n", ns, "deployment/stateless", "--replicas=5"); err != nil {
		t.Fatalf("kubectl scale of a Deployment without claims: %v", err)
	}
	if after := sent(); after != before+2 {
		// The claimless Deployment goes to the fail-open webhook of the data
		// rules (warnings); the scale request of a user is sent (a Scale
		// carries no volumes); the HPA of a StatefulSet is not.
		t.Errorf("reviews sent for a claimless Deployment, its scale and an HPA of a StatefulSet: %v, want 2 (the Deployment, the scale)", after-before)
	}

	// The HPA controller scales a Deployment over a ReadWriteOnce claim
	// past what stateguard would let a user do: its scale is not sent.
	mustApply(t, ns, rwoClaim+"---\n"+deployment(1, "Recreate"))
	const hpaController = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
	// The controller's role allows the scale subresource only: no GET of the
	// Deployment, so no kubectl scale.
	scale := fmt.Sprintf(`{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":%q},"spec":{"replicas":3}}`, ns)
	if _, stderr, err := kubectlIn(scale, "replace", "--raw", "/apis/apps/v1/namespaces/"+ns+"/deployments/web/scale", "-f", "-", "--as", hpaController); err != nil {
		t.Errorf("the HPA controller's scale: %v\n%s", err, stderr)
	}
	// A user's scale is judged: the violation the controller's scale made is
	// now pre-existing, so scaling down is a warning, and up a denial.
	if _, stderr, err := kubectlIn("", "scale", "-n", ns, "deployment/web", "--replicas=2"); err != nil || !strings.Contains(stderr, "Warning: deployment-shared-rwo-pvc: spec.replicas:") {
		t.Errorf("a user's scale down: err=%v, want it judged, with a warning\n%s", err, stderr)
	}
	if _, stderr, err := kubectlIn("", "scale", "-n", ns, "deployment/web", "--replicas=4"); err == nil || !strings.Contains(stderr, `"deployment-scales.validate.stateguard.io" denied the request`) {
		t.Errorf("a user's scale up: err=%v, want it denied\n%s", err, stderr)
	}
}

func TestServerDryRunGetsTheSameVerdict(t *testing.T) {
	ns := namespace(t, nil, nil)
	dry := mustDeny(t, ns, statefulSetWithoutService("db"), "--dry-run=server")
	real := mustDeny(t, ns, statefulSetWithoutService("db"))
	if strings.ReplaceAll(dry, " (server dry run)", "") != real {
		t.Errorf("dry run and real apply differ:\n%s\n%s", dry, real)
	}
	mustApply(t, ns, headlessService("db"), "--dry-run=server")
	if _, err := clientset.CoreV1().Services(ns).Get(context.Background(), "db", metav1.GetOptions{}); err == nil {
		t.Errorf("a server dry run created the Service")
	}
}

func TestWarnRulesAdmitWithAWarning(t *testing.T) {
	ns := namespace(t, nil, nil)
	stderr := mustApply(t, ns, rwoClaim+"---\n"+deployment(1, "RollingUpdate"))
	contains(t, stderr, "Warning: deployment-rwo-rolling-update: spec.strategy:", "set strategy: {type: Recreate}")
}

func TestDefaults(t *testing.T) {
	ns := namespace(t, nil, nil)
	mustApply(t, ns, headlessService("a")+"---\n"+statefulSet("a", "")+"---\n"+headlessService("b")+"---\n"+
		statefulSet("b", "  podManagementPolicy: OrderedReady\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain}\n"))
	get := func(name string) string {
		out, err := kubectl("", "get", "statefulset", name, "-n", ns, "-o",
			`jsonpath={.spec.podManagementPolicy} {.spec.persistentVolumeClaimRetentionPolicy.whenDeleted} {.spec.persistentVolumeClaimRetentionPolicy.whenScaled} {.metadata.annotations.stateguard\.io/defaulted}`)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := get("a"), "Parallel Delete Retain persistentVolumeClaimRetentionPolicy.whenDeleted,podManagementPolicy"; got != want {
		t.Errorf("defaults on a manifest that omits the fields: %q, want %q", got, want)
	}
	if got, want := get("b"), "OrderedReady Retain Retain "; got != want {
		t.Errorf("a manifest that sets the fields: %q, want %q", got, want)
	}
	// kubectl replace of the original manifest (no podManagementPolicy) must
	// keep working after the field was defaulted to Parallel.
	replaced := strings.Replace(statefulSet("a", ""), "busybox:1.36", "busybox:1.37", 1)
	if _, stderr, err := kubectlIn(replaced, "replace", "-n", ns, "-f", "-"); err != nil {
		t.Errorf("kubectl replace: %v\n%s", err, stderr)
	}
	if got, want := get("a"), "Parallel Delete Retain persistentVolumeClaimRetentionPolicy.whenDeleted,podManagementPolicy"; got != want {
		t.Errorf("after kubectl replace: %q, want %q", got, want)
	}
}

func TestPreexistingViolationsGetWarnings(t *testing.T) {
	// The namespace starts ignored, as if the webhook were not installed yet.
	ns := namespace(t, map[string]string{"stateguard.io/ignore": "true"}, nil)
	mustApply(t, ns, statefulSetWithoutService("legacy"))
	if _, err := kubectl("", "label", "namespace", ns, "stateguard.io/ignore-"); err != nil {
		t.Fatal(err)
	}
	// The label change reaches the API server's namespace informer shortly.
	updated := strings.Replace(statefulSetWithoutService("legacy"), "busybox:1.36", "busybox:1.37", 1)
	var stderr string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if stderr = mustApply(t, ns, updated); strings.Contains(stderr, "Warning") {
			break
		}
		updated = strings.Replace(updated, "busybox:1.37", "busybox:1.3"+fmt.Sprint(time.Now().UnixNano()%9), 1)
	}
	contains(t, stderr, "Warning: statefulset-headless-service: spec.serviceName:")
}

func TestNamespaceScopes(t *testing.T) {
	ns := namespace(t, nil, map[string]string{"stateguard.io/enforcement": "warn"})
	stderr := mustApply(t, ns, statefulSetWithoutService("db"))
	contains(t, stderr, "Warning: statefulset-headless-service: spec.serviceName:")

	stderr = mustApply(t, "kube-system", statefulSetWithoutService("never-judged"))
	if strings.Contains(stderr, "stateguard") || strings.Contains(stderr, "Warning") {
		t.Errorf("an excluded namespace was judged:\n%s", stderr)
	}
	if _, err := kubectl("", "create", "namespace", releaseNamespace); err != nil {
		t.Fatal(err)
	}
	stderr = mustApply(t, releaseNamespace, statefulSetWithoutService("own"))
	if strings.Contains(stderr, "Warning") {
		t.Errorf("the release namespace was judged:\n%s", stderr)
	}
}

func TestConfigReload(t *testing.T) {
	ns := namespace(t, nil, nil)
	original, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(configFile, original, 0o644)

	// A bad file is refused; the old policy stays (the headless rule denies).
	if err := os.WriteFile(configFile, []byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: sometimes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	mustDeny(t, ns, statefulSetWithoutService("db"), "--dry-run=server")
	log, _ := os.ReadFile(logFile)
	contains(t, string(log), "the new configuration is not valid; keeping the last good one")

	// A good file takes effect without a restart.
	if err := os.WriteFile(configFile, []byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: warn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, stderr, err = kubectlIn(statefulSetWithoutService("db"), "apply", "--dry-run=server", "-n", ns, "-f", "-"); err == nil {
			break
		}
	}
	contains(t, stderr, "Warning: statefulset-headless-service")
}

// TestCertificateRotation rotates the CA as an operator would: the webhook
// configurations trust the old and the new CA, then the serving
// certificate from the new one replaces the files under the running server.
func TestCertificateRotation(t *testing.T) {
	next := &envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1"}
	if err := next.PrepWithoutInstalling(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Cleanup() })
	nextCert := readCertificate(t, filepath.Join(next.LocalServingCertDir, "tls.crt"))
	if servedCertificate(t).Equal(nextCert) {
		t.Fatal("the webhook serves the new certificate before the swap")
	}
	trustCAs(t, append(slices.Clone(webhooks.LocalServingCAData), next.LocalServingCAData...))
	// Write to temporary names and rename: the server reloads on change and
	// must never read a half-written pair.
	for _, name := range []string{"tls.crt", "tls.key"} {
		data, err := os.ReadFile(filepath.Join(next.LocalServingCertDir, name))
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(certDir, "."+name)
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(certDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	served := func() bool { return servedCertificate(t).Equal(nextCert) }
	for deadline := time.Now().Add(15 * time.Second); !served() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if !served() {
		t.Fatalf("the webhook still serves the certificate of serial %v", servedCertificate(t).SerialNumber)
	}
	// The API server reaches the webhook over the new certificate.
	stderr := mustDeny(t, namespace(t, nil, nil), statefulSetWithoutService("db"), "--dry-run=server")
	contains(t, stderr, "statefulset-headless-service: spec.serviceName:")
}

// trustCAs sets the CA bundle of every installed webhook.
func trustCAs(t *testing.T, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	api := clientset.AdmissionregistrationV1()
	for _, c := range webhooks.ValidatingWebhooks {
		stored, err := api.ValidatingWebhookConfigurations().Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range stored.Webhooks {
			stored.Webhooks[i].ClientConfig.CABundle = bundle
		}
		if _, err := api.ValidatingWebhookConfigurations().Update(ctx, stored, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range webhooks.MutatingWebhooks {
		stored, err := api.MutatingWebhookConfigurations().Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range stored.Webhooks {
			stored.Webhooks[i].ClientConfig.CABundle = bundle
		}
		if _, err := api.MutatingWebhookConfigurations().Update(ctx, stored, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func readCertificate(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestMalformedReviews(t *testing.T) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, tt := range []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("this is not json")},
		{"wrong kind", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}`)},
		{"8 MiB", bytes.Repeat([]byte("a"), 8<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/validate-apps-v1-statefulset", "/mutate-apps-v1-statefulset", "/validate-apps-v1-deployment-scale"} {
				resp, err := client.Post(serverURL+path, "application/json", bytes.NewReader(tt.body))
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				resp.Body.Close()
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("%s: HTTP %d, want 4xx", path, resp.StatusCode)
				}
			}
		})
	}
	// The server keeps serving.
	stderr := mustDeny(t, namespace(t, nil, nil), statefulSetWithoutService("db"), "--dry-run=server")
	contains(t, stderr, "statefulset-headless-service: spec.serviceName:")
}

func TestMetrics(t *testing.T) {
	ns := namespace(t, nil, nil)
	// A real denial is counted apart from what dryrun observes (TestDryRunThenAudit).
	enforced := `stateguard_admission_decisions_total{action="deny",kind="StatefulSet",mode="enforce",operation="CREATE",rule="statefulset-headless-service"}`
	observed := `stateguard_admission_decisions_total{action="deny",kind="StatefulSet",mode="dryrun",operation="CREATE",rule="statefulset-headless-service"}`
	before, beforeObserved := metricSum(t, enforced), metricSum(t, observed)
	mustDeny(t, ns, statefulSetWithoutService("db"))
	mustApply(t, ns, headlessService("web")+"---\n"+statefulSet("web", ""))
	if got := metricSum(t, enforced); got != before+1 {
		t.Errorf("denials counted: %v, want %v", got, before+1)
	}
	if got := metricSum(t, observed); got != beforeObserved {
		t.Errorf("a real denial counted as a dryrun observation: %v, want %v", got, beforeObserved)
	}
	if got := metricSum(t, `stateguard_admission_decisions_total{action="allow",kind="StatefulSet",mode="enforce",operation="CREATE",rule="none"}`); got < 1 {
		t.Errorf("admissions without violations counted: %v, want at least 1", got)
	}
	if got := metricSum(t, `controller_runtime_webhook_requests_total{code="200",webhook="/validate-apps-v1-statefulset"}`); got < 2 {
		t.Errorf("controller-runtime's webhook request counter: %v, want at least 2", got)
	}
	if got := metricSum(t, "stateguard_config_reload_errors_total"); got < 0 {
		t.Errorf("stateguard_config_reload_errors_total: %v", got)
	}
}

// TestShutdownDelay: after SIGTERM, /readyz fails at once while the webhook
// keeps serving for --shutdown-delay, each answer closing its connection
// (before, a connection is kept), then the server exits 0.
func TestShutdownDelay(t *testing.T) {
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(serverBin, "serve", "--kubeconfig", kubeconfig, "--cert-dir", certDir,
		"--port", fmt.Sprint(ports[0]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--shutdown-delay", "3s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])
	if err := waitReady(readyz, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// A malformed review: answered at once, through the handlers.
	answerCloses := func() bool {
		t.Helper()
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d/validate-apps-v1-statefulset", ports[0]), "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("the webhook did not answer: %v", err)
		}
		resp.Body.Close()
		return resp.Close
	}
	if answerCloses() {
		t.Error("before SIGTERM, an answer closed its connection")
	}
	stopped := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		resp, err := http.Get(readyz)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for ready() {
		if time.Since(stopped) > time.Second {
			t.Fatal("/readyz still passes 1 s after SIGTERM")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if !answerCloses() {
		t.Error("during the delay, an answer kept its connection open")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
		if elapsed := time.Since(stopped); elapsed < 3*time.Second {
			t.Errorf("exited %s after SIGTERM, before the 3 s delay", elapsed.Round(time.Millisecond))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30 s after SIGTERM")
	}
}
