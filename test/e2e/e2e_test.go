//go:build e2e

// Package e2e installs the chart on the one-node cluster of `make cluster`
// as a user installs it, and checks stateguard as a workload: its Pods
// under the restricted Pod Security level, its readiness, leader election,
// denials through the chart's Service, the background audit with the
// Pod's own token, and what an uninstall leaves. `make test-cluster`
// (part of `make test`) brings the cluster up and runs it.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

var kubeconfig, kubectlBin, helmBin string

const (
	release   = "stateguard"
	namespace = "stateguard-system"
	chart     = "../../charts/stateguard"
	examples  = "../../examples"
)

func TestMain(m *testing.M) {
	kubeconfig = os.Getenv("STATEGUARD_CLUSTER_KUBECONFIG")
	kubectlBin = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	helmBin = os.Getenv("STATEGUARD_HELM")
	out, err := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`).CombinedOutput()
	if err != nil || string(out) != "True" {
		fmt.Fprintf(os.Stderr, "e2e: no Ready node at STATEGUARD_CLUSTER_KUBECONFIG=%q (%v: %s): run the tests with make test-cluster, which starts the cluster\n", kubeconfig, err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestChartOnTheNode installs the chart as the README tells a user (no
// cert-manager: self-managed TLS) into a namespace that enforces the
// restricted Pod Security level, and follows it to its uninstall.
func TestChartOnTheNode(t *testing.T) {
	cleanup := func() {
		_, _ = helm("uninstall", release, "--namespace", namespace, "--ignore-not-found", "--wait")
		_, _ = kubectl("delete", "namespace", namespace, "shop", "statefulset-demo", "e2e-dryrun", "e2e-outage", "e2e-attack", "e2e-rollout", "e2e-broken-install", "--ignore-not-found", "--wait", "--timeout=120s")
	}
	cleanup()
	t.Cleanup(cleanup)
	mustKubectl(t, "create", "namespace", namespace)
	mustKubectl(t, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted")
	// The ServiceAccount the metrics are read with, as Prometheus's would be.
	mustKubectl(t, "-n", namespace, "create", "serviceaccount", "metrics-reader")
	installed := time.Now()
	if out, err := helm("install", release, chart, "--namespace", namespace, "--set", "certManager.enabled=false",
		"--set", "audit.interval=5s", "--set", "metrics.readers[0].namespace="+namespace+",metrics.readers[0].name=metrics-reader",
		"--wait", "--timeout", "4m"); err != nil {
		t.Fatalf("helm install: %v\n%s\n%s", err, out, mustKubectl(t, "-n", namespace, "get", "pods,events"))
	}
	t.Logf("helm install --wait took %s", time.Since(installed).Round(time.Second))
	awaitWebhook(t)
	t.Logf("the webhook answered through its Service %s after the install", time.Since(installed).Round(time.Second))

	pods := stateguardPods(t)
	t.Run("two replicas Ready under the restricted level", func(t *testing.T) {
		if len(pods) != 2 {
			t.Fatalf("%d stateguard Pods, want 2", len(pods))
		}
		for _, p := range pods {
			if !p.ready() || p.Status.Phase != "Running" {
				t.Errorf("Pod %s: phase %s, not Ready", p.Metadata.Name, p.Status.Phase)
			}
		}
		level := mustKubectl(t, "get", "namespace", namespace, "-o", `jsonpath={.metadata.labels.pod-security\.kubernetes\.io/enforce}`)
		if level != "restricted" {
			t.Errorf("namespace enforces %q", level)
		}
	})

	t.Run("Ready only after the caches synced", func(t *testing.T) {
		for _, p := range pods {
			synced := logTime(t, p.Metadata.Name, "caches synced")
			ready := p.readySince()
			// Both have second precision.
			if ready.Before(synced) {
				t.Errorf("Pod %s was Ready at %s, before its caches synced at %s", p.Metadata.Name, ready, synced)
			}
		}
	})

	t.Run("one replica holds the Lease", func(t *testing.T) {
		holder := mustKubectl(t, "-n", namespace, "get", "lease", "stateguard.io", "-o", "jsonpath={.spec.holderIdentity}")
		name, _, _ := strings.Cut(holder, "_")
		if name != pods[0].Metadata.Name && name != pods[1].Metadata.Name {
			t.Errorf("the Lease is held by %q, not by a stateguard Pod (%s, %s)", holder, pods[0].Metadata.Name, pods[1].Metadata.Name)
		}
	})

	t.Run("the metrics answer only a token the chart's metrics-reader RBAC admits", func(t *testing.T) {
		pod := stateguardPods(t)[0].Status.PodIP
		mustKubectl(t, "-n", namespace, "create", "serviceaccount", "someone")
		for _, tt := range []struct {
			who, token string
			want       int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"a ServiceAccount without the role", mustKubectl(t, "-n", namespace, "create", "token", "someone"), http.StatusForbidden},
			{"metrics.readers", metricsToken(t), http.StatusOK},
		} {
			if status, _ := scrape(t, pod, tt.token); status != tt.want {
				t.Errorf("%s: HTTP %d, want %d", tt.who, status, tt.want)
			}
		}
	})

	t.Run("kubectl apply of the violating examples is denied through the Service", func(t *testing.T) {
		mustKubectl(t, "apply", "-f", examples+"/violations/namespace.yaml")
		out, err := kubectl("apply", "-f", examples+"/violations/")
		if err == nil {
			t.Errorf("kubectl apply -f examples/violations/ succeeded, want denials:\n%s", out)
		}
		for _, want := range []string{
			`admission webhook "statefulsets.validate.stateguard.io" denied the request: StatefulSet "redis" violates 1 stateguard rule:`,
			`statefulset-headless-service: spec.serviceName: Service "redis-headless" not found in namespace "shop"`,
			`StatefulSet "mysql" violates 1 stateguard rule:`, "statefulset-emptydir-data: spec.template.spec.volumes[0]:",
			`StatefulSet "jenkins" violates 1 stateguard rule:`,
			`admission webhook "horizontalpodautoscalers.validate.stateguard.io" denied the request`,
			`admission webhook "deployments.validate.stateguard.io" denied the request: Deployment "storefront"`,
			"Warning: deployment-rwo-rolling-update: spec.strategy:",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply -f examples/violations/ does not say %q:\n%s", want, out)
			}
		}
	})

	t.Run("a compliant StatefulSet's Pods run with their claims and keep their identity", func(t *testing.T) {
		mustKubectl(t, "apply", "-f", examples+"/compliant/statefulset-demo/namespace.yaml")
		mustKubectl(t, "apply", "-f", examples+"/compliant/statefulset-demo/")
		mustKubectl(t, "-n", "statefulset-demo", "rollout", "status", "statefulset/counter-sts", "--timeout=180s")
		mustKubectl(t, "-n", "statefulset-demo", "rollout", "status", "deployment/counter-deploy", "--timeout=180s")
		for _, claim := range []string{"data-counter-sts-0", "data-counter-sts-1"} {
			if phase := mustKubectl(t, "-n", "statefulset-demo", "get", "pvc", claim, "-o", "jsonpath={.status.phase}"); phase != "Bound" {
				t.Errorf("claim %s is %s, want Bound", claim, phase)
			}
		}
		page := func(host string) string {
			return mustKubectl(t, "-n", "statefulset-demo", "exec", "deployment/counter-deploy", "-c", "web", "--", "wget", "-qO-", "http://"+host)
		}
		// counter-sts-0.counter-sts resolves from another Pod, through cluster DNS.
		if got, want := page("counter-sts-0.counter-sts"), "<h1>counter-sts-0 has booted 1 times</h1>"; strings.TrimSpace(got) != want {
			t.Errorf("counter-sts-0.counter-sts serves %q, want %q", got, want)
		}
		old := mustKubectl(t, "-n", "statefulset-demo", "get", "pod", "counter-sts-0", "-o", "jsonpath={.metadata.uid}")
		mustKubectl(t, "-n", "statefulset-demo", "delete", "pod", "counter-sts-0", "--wait")
		waitFor(t, 120*time.Second, "counter-sts-0 to come back Ready", func() bool {
			out, err := kubectl("-n", "statefulset-demo", "get", "pod", "counter-sts-0", "-o", `jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}`)
			return err == nil && out != old+" True" && strings.HasSuffix(out, " True")
		})
		if got, want := page("counter-sts-0.counter-sts"), "<h1>counter-sts-0 has booted 2 times</h1>"; strings.TrimSpace(got) != want {
			t.Errorf("after its deletion, counter-sts-0 serves %q, want %q: the claim keeps the count", got, want)
		}
		// The Deployment's Pod keeps its count on emptyDir: its replacement, under a new name, starts again at 1.
		deployPod := mustKubectl(t, "-n", "statefulset-demo", "get", "pods", "-l", "variant=deployment", "-o", "jsonpath={.items[0].metadata.name}")
		mustKubectl(t, "-n", "statefulset-demo", "delete", "pod", deployPod, "--wait")
		mustKubectl(t, "-n", "statefulset-demo", "rollout", "status", "deployment/counter-deploy", "--timeout=120s")
		for _, name := range strings.Fields(mustKubectl(t, "-n", "statefulset-demo", "get", "pods", "-l", "variant=deployment", "-o", "jsonpath={.items[*].metadata.name}")) {
			if name == deployPod {
				t.Errorf("the Deployment's deleted Pod %s is back under its name", name)
			}
			got := mustKubectl(t, "-n", "statefulset-demo", "exec", name, "-c", "web", "--", "wget", "-qO-", "http://127.0.0.1")
			if want := "<h1>" + name + " has booted 1 times</h1>"; got != want {
				t.Errorf("%s serves %q, want %q", name, got, want)
			}
		}
	})

	t.Run("the background audit records its Event with the Pod's own token", func(t *testing.T) {
		mustKubectl(t, "create", "namespace", "e2e-dryrun")
		mustKubectl(t, "annotate", "namespace", "e2e-dryrun", "stateguard.io/enforcement=dryrun")
		manifest := strings.ReplaceAll(readFile(t, examples+"/violations/headless-service-missing.yaml"), "namespace: shop", "namespace: e2e-dryrun")
		if out, err := kubectlStdin(manifest, "apply", "-f", "-"); err != nil || strings.Contains(out, "Warning") {
			t.Fatalf("dryrun namespace: kubectl apply: %v\n%s", err, out)
		}
		var event string
		waitFor(t, 60*time.Second, "a PolicyViolation Event on StatefulSet e2e-dryrun/redis", func() bool {
			event, _ = kubectl("-n", "e2e-dryrun", "get", "events", "--field-selector", "reason=PolicyViolation,involvedObject.name=redis",
				"-o", "jsonpath={.items[*].message}")
			return event != ""
		})
		if !strings.Contains(event, "statefulset-headless-service") {
			t.Errorf("the Event says %q", event)
		}
	})

	t.Run("stalled uploads to a replica neither kill it nor slow the API server's reviews", func(t *testing.T) {
		target := stateguardPods(t)[0]
		const ns = "e2e-attack"
		mustKubectl(t, "create", "namespace", ns)
		stop := make(chan struct{})
		var attackers sync.WaitGroup
		for range 30 {
			attackers.Add(1)
			go func() {
				defer attackers.Done()
				stallUploads(net.JoinHostPort(target.Status.PodIP, "9443"), stop)
			}()
		}
		defer func() { close(stop); attackers.Wait() }()
		var peakRSS float64
		var slowest time.Duration
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			peakRSS = max(peakRSS, residentBytes(t, target.Status.PodIP))
			start := time.Now()
			out, err := kubectlStdin(webhookProbe(t, ns), "apply", "--dry-run=server", "-f", "-")
			slowest = max(slowest, time.Since(start))
			if err == nil || !strings.Contains(out, "denied the request") {
				t.Errorf("a StatefulSet during the attack: err=%v, want stateguard's denial:\n%s", err, out)
			}
		}
		t.Logf("during 30 s of 30 stalled 7 MiB uploads to %s: peak RSS %.0f MiB, slowest review through the API server %s",
			target.Metadata.Name, peakRSS/(1<<20), slowest.Round(time.Millisecond))
		if peakRSS > 200<<20 {
			t.Errorf("peak RSS %.0f MiB: over the 200 MiB the in-flight limits are sized for", peakRSS/(1<<20))
		}
		if slowest > 5*time.Second {
			t.Errorf("a review took %s through the API server: over the webhook's 5 s timeout", slowest)
		}
		if restarts := mustKubectl(t, "-n", namespace, "get", "pod", target.Metadata.Name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}"); restarts != "0" {
			t.Errorf("%s restarted %s times", target.Metadata.Name, restarts)
		}
	})

	t.Run("a CA rotation during a rollout restart fails no admission", func(t *testing.T) {
		const ns = "e2e-rollout"
		mustKubectl(t, "create", "namespace", ns)
		secret := "secret/" + release + "-tls"
		caBundle := func() string {
			return mustKubectl(t, "-n", namespace, "get", secret, "-o", `jsonpath={.data.ca\.crt}`)
		}
		before := caBundle()
		stop := make(chan struct{})
		results := make(chan error, 1)
		go func() { results <- steadyCreates(t, ns, stop) }()
		time.Sleep(3 * time.Second)
		// The README's forced rotation: remove the CA's key.
		mustKubectl(t, "-n", namespace, "patch", secret, "--type=json", "-p", `[{"op":"remove","path":"/data/ca.key"}]`)
		mustKubectl(t, "-n", namespace, "rollout", "restart", "deployment/"+release)
		mustKubectl(t, "-n", namespace, "rollout", "status", "deployment/"+release, "--timeout=180s")
		// The old replicas sleep in preStop, then shut down; the new leader
		// finishes the rotation.
		var rotated *x509.Certificate
		waitFor(t, 3*time.Minute, "two replicas, and the new CA alone in the Secret, the webhook configuration and every replica's certificate", func() bool {
			pods := stateguardPods(t)
			bundle := caBundle()
			cas, err := parsePEMBase64(bundle)
			if len(pods) != 2 || bundle == before || err != nil || len(cas) != 1 {
				return false
			}
			injected := mustKubectl(t, "get", "validatingwebhookconfiguration", release, "-o", "jsonpath={.webhooks[*].clientConfig.caBundle}")
			for _, b := range strings.Fields(injected) {
				if b != bundle {
					return false
				}
			}
			for _, p := range pods {
				if served := servedCertificate(p.Status.PodIP); served == nil || served.CheckSignatureFrom(cas[0]) != nil {
					return false
				}
			}
			rotated = cas[0]
			return true
		})
		time.Sleep(5 * time.Second) // creates against the new CA alone
		close(stop)
		if err := <-results; err != nil {
			t.Error(err)
		}
		t.Logf("rotated to the CA of serial %x", rotated.SerialNumber)
	})

	t.Run("a default set with helm upgrade registers the defaulting webhook", func(t *testing.T) {
		mutating := func() string {
			return mustKubectl(t, "get", "mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+release, "-o", "name")
		}
		if out := mutating(); out != "" {
			t.Errorf("registered with no default configured: %s", out)
		}
		if out, err := helm("upgrade", release, chart, "--namespace", namespace, "--reuse-values", "--set", "defaults.podManagementPolicy=Parallel", "--wait", "--timeout", "3m"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		if out := mutating(); out != "mutatingwebhookconfiguration.admissionregistration.k8s.io/"+release {
			t.Errorf("after setting a default, the mutating webhook configurations: %q", out)
		}
		// The new argument rolled the replicas out: the old ones leave after preStop.
		waitFor(t, 60*time.Second, "the old replicas to be gone", func() bool { return len(stateguardPods(t)) == 2 })
		const ns = "e2e-rollout"
		mustKubectlStdin(t, `apiVersion: v1
kind: Service
metadata: {name: defaulted}
spec:
  clusterIP: None
  selector: {app: defaulted}
  ports: [{name: db, port: 5432}]
`, "-n", ns, "apply", "-f", "-")
		statefulSet := `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: defaulted}
spec:
  serviceName: defaulted
  selector: {matchLabels: {app: defaulted}}
  template:
    metadata: {labels: {app: defaulted}}
    spec:
      containers: [{name: db, image: localhost/busybox:1.35.0-debian, volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
`
		// The API server trusts the CA stateguard injects into the new configuration.
		waitFor(t, 60*time.Second, "the default on a StatefulSet whose manifest omits it", func() bool {
			out, err := kubectlStdin(statefulSet, "-n", ns, "apply", "--dry-run=server", "-o", "jsonpath={.spec.podManagementPolicy}", "-f", "-")
			return err == nil && strings.Contains(out, "Parallel")
		})
	})

	t.Run("the API server out of reach for 60 s: both replicas keep serving", func(t *testing.T) {
		pidFile := filepath.Join(filepath.Dir(kubeconfig), "pids", "kube-apiserver")
		data, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("%s: %v", pidFile, err)
		}
		before := stateguardPods(t)
		// Stopped, not killed: it answers nothing, as when the network to it is down.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
		defer resume()
		time.Sleep(60 * time.Second)
		resume()
		waitFor(t, 60*time.Second, "the API server to answer again", func() bool {
			_, err := kubectl("get", "--raw", "/readyz")
			return err == nil
		})
		// The node's heartbeats stopped with the API server: the node
		// controller may mark it NotReady, and its Pods unready, a few
		// seconds after the API server is back, until the kubelet reports.
		// Wait until the node, both replicas and the webhook hold for 20 s.
		waitSteady(t, 2*time.Minute, 20*time.Second, "the node, both replicas and the webhook to be steady", func() bool {
			node, _ := kubectl("get", "nodes", "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}`)
			ready := 0
			for _, p := range stateguardPods(t) {
				if p.ready() {
					ready++
				}
			}
			out, err := kubectlStdin(webhookProbe(t, "default"), "apply", "--dry-run=server", "-f", "-")
			return node == "True" && ready == 2 && err != nil && strings.Contains(out, "denied the request")
		})
		lost := false
		for _, p := range before {
			logs, _ := kubectl("-n", namespace, "logs", p.Metadata.Name, "-c", "stateguard")
			lost = lost || strings.Contains(logs, "lost the Lease")
		}
		if !lost {
			t.Error(`no replica logged "lost the Lease": the outage was too short to test what it should`)
		}
		for _, p := range before {
			restarts := mustKubectl(t, "-n", namespace, "get", "pod", p.Metadata.Name, "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
			if restarts != "0" {
				t.Errorf("%s restarted %s times: losing the Lease must stop the leader's work, not the server", p.Metadata.Name, restarts)
			}
		}
		waitFor(t, 60*time.Second, "a replica to hold the Lease again", func() bool {
			holder, _ := kubectl("-n", namespace, "get", "lease", "stateguard.io", "-o", "jsonpath={.spec.holderIdentity}")
			name, _, _ := strings.Cut(holder, "_")
			return name == before[0].Metadata.Name || name == before[1].Metadata.Name
		})
		if out, err := kubectlStdin(webhookProbe(t, "default"), "apply", "-f", "-"); err == nil || !strings.Contains(out, "denied the request") {
			t.Errorf("after the API server came back: err=%v, want stateguard's denial:\n%s", err, out)
		}
	})

	t.Run("with every replica gone, only what stateguard guards is refused", func(t *testing.T) {
		const ns = "e2e-outage"
		mustKubectl(t, "create", "namespace", ns)
		// Before the outage: a claimless Deployment whose HPA keeps at least 2 replicas.
		mustKubectlStdin(t, claimlessDeployment("autoscaled", 2), "-n", ns, "apply", "-f", "-")
		mustKubectlStdin(t, `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: autoscaled}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: autoscaled}
  minReplicas: 2
  maxReplicas: 3
`, "-n", ns, "apply", "-f", "-")

		mustKubectl(t, "-n", namespace, "scale", "deployment/"+release, "--replicas=0")
		waitFor(t, 90*time.Second, "every stateguard Pod to be gone", func() bool { return len(stateguardPods(t)) == 0 })
		defer func() {
			mustKubectl(t, "-n", namespace, "scale", "deployment/"+release, "--replicas=2")
			mustKubectl(t, "-n", namespace, "rollout", "status", "deployment/"+release, "--timeout=180s")
			awaitWebhook(t)
		}()

		// Never sent: a Deployment without claims, its scale and rollout, the HPA controller.
		mustKubectlStdin(t, claimlessDeployment("web", 1), "-n", ns, "apply", "-f", "-")
		mustKubectl(t, "-n", ns, "scale", "deployment/web", "--replicas=3")
		mustKubectl(t, "-n", ns, "rollout", "restart", "deployment/web")
		mustKubectl(t, "-n", ns, "rollout", "status", "deployment/web", "--timeout=120s")
		mustKubectl(t, "-n", ns, "scale", "deployment/autoscaled", "--replicas=1")
		waitFor(t, 90*time.Second, "the HPA controller to scale deployment/autoscaled back to 2", func() bool {
			out, _ := kubectl("-n", ns, "get", "deployment", "autoscaled", "-o", "jsonpath={.spec.replicas}")
			return out == "2"
		})

		// Guarded: refused with an error that names stateguard.
		out, err := kubectlStdin(webhookProbe(t, ns), "apply", "-f", "-")
		if err == nil || !strings.Contains(out, `failed calling webhook "statefulsets.validate.stateguard.io"`) {
			t.Errorf("a StatefulSet during the outage: err=%v, want a refusal naming stateguard's webhook:\n%s", err, out)
		}

		// The README's recovery: remove the webhook configurations; a helm
		// upgrade of the release puts them back.
		mustKubectl(t, "delete", "validatingwebhookconfigurations,mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+release)
		if out, err := kubectlStdin(webhookProbe(t, ns), "apply", "-f", "-"); err != nil {
			t.Errorf("after the recovery command, a StatefulSet: %v\n%s", err, out)
		}
		if out, err := helm("upgrade", release, chart, "--namespace", namespace, "--reuse-values", "--wait", "--timeout", "3m"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		// What slipped through is reported once stateguard is back.
		waitFor(t, 60*time.Second, "the background audit's Event on the StatefulSet admitted during the outage", func() bool {
			out, _ := kubectl("-n", ns, "get", "events", "--field-selector", "reason=PolicyViolation,involvedObject.name=redis", "-o", "jsonpath={.items[*].message}")
			return strings.Contains(out, "statefulset-headless-service")
		})
	})

	t.Run("helm upgrade to dryrun admits the violations silently", func(t *testing.T) {
		if out, err := helm("upgrade", release, chart, "--namespace", namespace, "--reuse-values", "--set", "enforcement=dryrun", "--wait", "--timeout", "3m"); err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		waitFor(t, 90*time.Second, "the dryrun policy to be in force", func() bool {
			_, err := kubectl("apply", "--dry-run=server", "-f", examples+"/violations/headless-service-missing.yaml")
			return err == nil
		})
		if out, err := kubectl("apply", "-f", examples+"/violations/"); err != nil || strings.Contains(out, "Warning") {
			t.Errorf("after helm upgrade --set enforcement=dryrun, kubectl apply: %v\n%s", err, out)
		}
	})

	t.Run("helm uninstall leaves no webhook configuration", func(t *testing.T) {
		mustKubectl(t, "-n", "shop", "delete", "statefulset", "mysql", "--wait")
		if out, err := helm("uninstall", release, "--namespace", namespace, "--wait"); err != nil {
			t.Fatalf("helm uninstall: %v\n%s", err, out)
		}
		for _, kind := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} {
			if out := mustKubectl(t, "get", kind, "-o", "name"); strings.Contains(out, "stateguard") {
				t.Errorf("left behind: %s", out)
			}
		}
		// What stateguard denied is admitted.
		if out, err := kubectl("apply", "-f", examples+"/violations/emptydir-data.yaml"); err != nil || !strings.Contains(out, "statefulset.apps/mysql created") {
			t.Errorf("without stateguard, kubectl apply: %v\n%s", err, out)
		}
	})

	t.Run("an install whose image cannot be pulled refuses only what stateguard guards, and the recovery command restores the rest", func(t *testing.T) {
		const ns = "e2e-broken-install"
		mustKubectl(t, "create", "namespace", ns)
		if out, err := helm("install", release, chart, "--namespace", namespace, "--set", "image.tag=does-not-exist"); err != nil {
			t.Fatalf("helm install: %v\n%s", err, out)
		}
		defer func() { _, _ = helm("uninstall", release, "--namespace", namespace, "--wait") }()
		mustKubectlStdin(t, claimlessDeployment("web", 1), "-n", ns, "apply", "-f", "-")
		mustKubectl(t, "-n", ns, "scale", "deployment/web", "--replicas=2")
		waitFor(t, 60*time.Second, "the webhook configurations to refuse a StatefulSet", func() bool {
			out, err := kubectlStdin(webhookProbe(t, ns), "apply", "--dry-run=server", "-f", "-")
			return err != nil && strings.Contains(out, `failed calling webhook "statefulsets.validate.stateguard.io"`)
		})
		mustKubectl(t, "delete", "validatingwebhookconfigurations,mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+release)
		if out, err := kubectlStdin(webhookProbe(t, ns), "apply", "--dry-run=server", "-f", "-"); err != nil {
			t.Errorf("after the recovery command, a StatefulSet: %v\n%s", err, out)
		}
	})
}

// awaitWebhook waits until the API server reaches the webhook through its
// Service. helm --wait returns when the Pods are Ready, which can be a
// moment before kube-proxy routes the Service to them.
func awaitWebhook(t *testing.T) {
	t.Helper()
	waitFor(t, time.Minute, "the API server to reach the webhook through its Service", func() bool {
		out, err := kubectlStdin(webhookProbe(t, "default"), "apply", "--dry-run=server", "-f", "-")
		return !strings.Contains(out, "failed calling webhook") && (err == nil || strings.Contains(out, "denied the request"))
	})
}

// steadyCreates creates StatefulSets through the API server, 5 a second,
// until stop, and reports every create stateguard did not judge: each must
// be denied by it (the probe has no Service), none may fail to reach it.
func steadyCreates(t *testing.T, ns string, stop <-chan struct{}) error {
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	config.QPS, config.Burst = 100, 100
	api, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	var probe appsv1.StatefulSet
	if err := yaml.Unmarshal([]byte(webhookProbe(t, ns)), &probe); err != nil {
		return err
	}
	const every = 100 * time.Millisecond // 10 creates a second
	tick := time.NewTicker(every)
	defer tick.Stop()
	var (
		mu           sync.Mutex
		sent, failed int
		first        string
		inFlight     sync.WaitGroup
	)
	started := time.Now()
	for running := true; running; {
		select {
		case <-stop:
			running = false
			continue
		case <-tick.C:
		}
		sent++
		inFlight.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := api.AppsV1().StatefulSets(ns).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), "denied the request") {
				mu.Lock()
				if failed++; failed == 1 {
					first = fmt.Sprint(err)
				}
				mu.Unlock()
			}
		})
	}
	inFlight.Wait()
	elapsed := time.Since(started)
	t.Logf("%d StatefulSet creates in %s (%.1f/s), %d not judged", sent, elapsed.Round(time.Second), float64(sent)/elapsed.Seconds(), failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d creates were not judged by stateguard; the first: %s", failed, sent, first)
	}
	return nil
}

// servedCertificate is the certificate a replica serves at podIP, or nil.
func servedCertificate(podIP string) *x509.Certificate {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(podIP, "9443"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// parsePEMBase64 parses the certificates of a base64-encoded PEM bundle.
func parsePEMBase64(b64 string) ([]*x509.Certificate, error) {
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// stallUploads posts 7 MiB review bodies to addr until stop, sending all
// but the last byte of each and then waiting until the server gives up on
// it: the attack that pinned memory when bodies were read without bounds.
func stallUploads(addr string, stop <-chan struct{}) {
	const size = 7 << 20
	chunk := bytes.Repeat([]byte("a"), 64<<10)
	for {
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			continue
		}
		closed := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }()
		fmt.Fprintf(conn, "POST /validate-apps-v1-statefulset HTTP/1.1\r\nHost: stateguard\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
		for sent := 0; sent < size-1; sent += len(chunk) {
			if _, err := conn.Write(chunk[:min(len(chunk), size-1-sent)]); err != nil {
				break
			}
		}
		select {
		case <-stop:
		case <-closed:
		}
		conn.Close()
	}
}

// residentBytes is the resident memory a stateguard Pod reports.
func residentBytes(t *testing.T, podIP string) float64 {
	t.Helper()
	status, body := scrape(t, podIP, metricsToken(t))
	if status != http.StatusOK {
		t.Fatalf("/metrics of %s: HTTP %d\n%s", podIP, status, body)
	}
	for line := range strings.Lines(body) {
		if value, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no process_resident_memory_bytes in the metrics of %s", podIP)
	return 0
}

// scrape gets a replica's /metrics over HTTPS (its certificate is
// self-signed) with a bearer token, none when token is "".
func scrape(t *testing.T, podIP, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+net.JoinHostPort(podIP, "8080")+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// metricsToken is a token of the ServiceAccount the chart's
// metrics.readers lets read the metrics.
func metricsToken(t *testing.T) string {
	return mustKubectl(t, "-n", namespace, "create", "token", "metrics-reader")
}

// webhookProbe is the example StatefulSet without its headless Service,
// in namespace ns: every write of it is sent to stateguard, which denies it.
func webhookProbe(t *testing.T, ns string) string {
	return strings.ReplaceAll(readFile(t, examples+"/violations/headless-service-missing.yaml"), "namespace: shop", "namespace: "+ns)
}

func claimlessDeployment(name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65532}
      containers: [{name: main, image: localhost/busybox:1.35.0-debian, command: [sleep, "3600"]}]
`, name, replicas)
}

type pod struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		PodIP      string `json:"podIP"`
		Phase      string `json:"phase"`
		Conditions []struct {
			Type               string    `json:"type"`
			Status             string    `json:"status"`
			LastTransitionTime time.Time `json:"lastTransitionTime"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) ready() bool { return !p.readySince().IsZero() }

func (p pod) readySince() time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return c.LastTransitionTime
		}
	}
	return time.Time{}
}

func stateguardPods(t *testing.T) []pod {
	t.Helper()
	var list struct{ Items []pod }
	out := mustKubectl(t, "-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=stateguard", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// logTime returns the time of the first log line of the Pod's stateguard
// container whose msg is msg.
func logTime(t *testing.T, podName, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(mustKubectl(t, "-n", namespace, "logs", podName, "-c", "stateguard"), "\n") {
		var entry struct {
			TS  time.Time `json:"ts"`
			Msg string    `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil && strings.Contains(line, msg) {
			t.Fatalf("Pod %s: log line %q: %v", podName, line, err)
		}
		if entry.Msg == msg {
			return entry.TS
		}
	}
	t.Fatalf("Pod %s never logged %q", podName, msg)
	return time.Time{}
}

func kubectl(args ...string) (string, error) { return kubectlStdin("", args...) }

func kubectlStdin(stdin string, args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func mustKubectlStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlStdin(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func helm(args ...string) (string, error) {
	out, err := exec.Command(helmBin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitSteady waits until cond has held for hold without a break.
func waitSteady(t *testing.T, timeout, hold time.Duration, what string, cond func() bool) {
	t.Helper()
	var since time.Time
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		switch {
		case !cond():
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= hold:
			return
		}
	}
	t.Fatalf("waited %s for %s", timeout, what)
}

func waitFor(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		if done() {
			return
		}
	}
	t.Fatalf("waited %s for %s", timeout, what)
}
