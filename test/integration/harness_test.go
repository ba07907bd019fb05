// Package integration runs the real stateguard binary as the admission
// webhook of a real kube-apiserver and etcd, registered with the webhook
// configurations the chart renders, and drives kubectl as a user would.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/stateguard/stateguard/internal/localcluster"
)

// The control plane and the webhook, shared by every test of the package.
var (
	kubeconfig string // a cluster-admin kubeconfig for kubectl
	cluster    *localcluster.Cluster
	clientset  *kubernetes.Clientset
	restConfig *rest.Config
	serverURL  string // https://127.0.0.1:PORT of the stateguard binary
	metricsURL string // http://127.0.0.1:PORT/metrics of the stateguard binary
	certDir    string // the --cert-dir of the stateguard binary
	configFile string // the --config of the stateguard binary
	// webhooks are the chart's webhook configurations as installed: pointed
	// at the binary by URL, trusting the CA envtest generated.
	webhooks      *envtest.WebhookInstallOptions
	kubectlBin    string
	stateguardBin string // the binary under test, as make build builds it
	serverBin     string // the same without check, as the image holds it
	helmBin       string
	logFile       string
)

// The release namespace the chart is rendered for; the chart excludes it.
const releaseNamespace = "stateguard-system"

func TestMain(m *testing.M) {
	if dir := os.Getenv(bareWebhookEnv); dir != "" {
		fmt.Fprintln(os.Stderr, "the bare webhook:", runBareWebhook(dir))
		os.Exit(1)
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	helm := os.Getenv("STATEGUARD_HELM")
	for _, bin := range []string{filepath.Join(assets, "kube-apiserver"), filepath.Join(assets, "etcd"), filepath.Join(assets, "kubectl"), helm} {
		if _, err := os.Stat(bin); assets == "" || helm == "" || err != nil {
			return 0, fmt.Errorf("missing %q: run the tests with `make test`, which builds kube-apiserver, etcd, kubectl and helm (KUBEBUILDER_ASSETS=%q, STATEGUARD_HELM=%q)", bin, assets, helm)
		}
	}
	kubectlBin, helmBin = filepath.Join(assets, "kubectl"), helm
	work, err := os.MkdirTemp("", "stateguard-integration")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)

	kubeconfig = filepath.Join(work, "kubeconfig")
	controlPlane, err := localcluster.Start(assets, kubeconfig)
	if err != nil {
		return 0, err
	}
	defer controlPlane.Stop()
	cluster = controlPlane
	clientset, restConfig = controlPlane.Clientset, controlPlane.Config

	// Built as make build and make image build them, so that the memory
	// the benchmarks measure is the shipped binaries'.
	stateguardBin, serverBin = filepath.Join(work, "stateguard"), filepath.Join(work, "stateguard-server")
	for bin, tags := range map[string]string{stateguardBin: "kustomize_disable_go_plugin_support", serverBin: "kustomize_disable_go_plugin_support,nocheck"} {
		build := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w", "-o", bin, "../../cmd/stateguard")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("building %s: %v\n%s", bin, err, out)
		}
	}
	// envtest generates the CA and serving certificate and a port, points
	// the chart's webhook configurations at them, and installs them once
	// the binary serves.
	chartWebhooks := filepath.Join(work, "webhooks.yaml")
	if err := renderChartWebhooks(helm, chartWebhooks); err != nil {
		return 0, err
	}
	webhooks = &envtest.WebhookInstallOptions{Paths: []string{chartWebhooks}, LocalServingHost: "127.0.0.1"}
	if err := webhooks.PrepWithoutInstalling(); err != nil {
		return 0, err
	}
	defer webhooks.Cleanup()
	certDir = webhooks.LocalServingCertDir
	configFile = filepath.Join(work, "config", "stateguard.yaml")
	if err := os.MkdirAll(filepath.Dir(configFile), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(configFile, []byte(testConfig), 0o644); err != nil {
		return 0, err
	}

	ports, err := freePorts(2)
	if err != nil {
		return 0, err
	}
	serverURL = fmt.Sprintf("https://127.0.0.1:%d", webhooks.LocalServingPort)
	metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0])
	logFile = filepath.Join(work, "stateguard.log")
	log, err := os.Create(logFile)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	ctx, stop := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, serverBin, "serve",
		"--kubeconfig", kubeconfig, "--config", configFile, "--cert-dir", certDir,
		"--port", fmt.Sprint(webhooks.LocalServingPort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--mutating-webhook-configuration", "stateguard",
		"--zap-log-level", "debug")
	serve.Stdout, serve.Stderr = log, log
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		stop()
		return 0, err
	}
	// Stop the server before the control plane: SIGINT, then wait.
	defer func() {
		stop()
		_ = serve.Wait()
	}()
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]), 60*time.Second); err != nil {
		out, _ := os.ReadFile(logFile)
		return 0, fmt.Errorf("%w; stateguard's log:\n%s", err, out)
	}
	if err := webhooks.Install(restConfig); err != nil {
		return 0, fmt.Errorf("installing the chart's webhook configurations: %w", err)
	}
	if err := waitEnforcing(ctx); err != nil {
		return 0, err
	}
	code := m.Run()
	if err := checkGracefulStop(serve, stop); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: stopping stateguard:", err)
		code = 1
	}
	if code != 0 {
		out, _ := os.ReadFile(logFile)
		fmt.Fprintf(os.Stderr, "stateguard's log:\n%s\n", lastLines(out, 60))
	}
	return code, nil
}

// checkGracefulStop holds an idle keep-alive connection to the webhook,
// stops the server with SIGINT (handled as SIGTERM is) and checks that it
// closes the connection and exits with status 0.
func checkGracefulStop(serve *exec.Cmd, stop context.CancelFunc) error {
	// Whichever certificate it serves now: what is tested is the connection.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(serverURL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST /validate-apps-v1-statefulset HTTP/1.1\r\nHost: stateguard\r\nContent-Length: 0\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	stop()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("the idle keep-alive connection was not closed on shutdown: read %d bytes, %v", n, err)
	}
	// Wait reports the cancelled context even after a clean exit.
	if err := serve.Wait(); serve.ProcessState == nil || serve.ProcessState.ExitCode() != 0 {
		return fmt.Errorf("stateguard serve did not exit cleanly: %v", err)
	}
	return nil
}

// testConfig sets defaults so the defaulting webhook has work to do.
const testConfig = `apiVersion: stateguard.io/v1alpha1
kind: Config
defaults:
  podManagementPolicy: Parallel
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}
`

// renderChartWebhooks writes the chart's webhook configurations to file:
// their rules, selectors, policies and paths are exactly the chart's. The
// defaults of testConfig register the mutating one.
func renderChartWebhooks(helm, file string) error {
	out, err := exec.Command(helm, "template", "stateguard", "../../charts/stateguard", "--namespace", releaseNamespace,
		"--api-versions", "cert-manager.io/v1", "--show-only", "templates/webhooks.yaml",
		"--set", "defaults.podManagementPolicy=Parallel", "--set", "defaults.persistentVolumeClaimRetentionPolicy.whenDeleted=Delete").CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm template: %v\n%s", err, out)
	}
	return os.WriteFile(file, out, 0o600)
}

// waitEnforcing waits until the API server calls the webhook: its webhook
// configurations reach it through an informer.
func waitEnforcing(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, stderr, _ := kubectlIn(statefulSetWithoutService("probe"), "apply", "--dry-run=server", "-n", "default", "-f", "-")
		if strings.Contains(stderr, "statefulset-headless-service") {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the API server did not call the webhook within 30s")
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, timeout)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// servedCertificate returns the certificate the webhook presents now.
func servedCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(serverURL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// kubectl runs kubectl with the admin kubeconfig and returns stdout and stderr.
func kubectl(stdin string, args ...string) (string, error) {
	stdout, stderr, err := kubectlIn(stdin, args...)
	if err != nil {
		return stdout, fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout, nil
}

func kubectlIn(stdin string, args ...string) (string, string, error) {
	cmd := exec.Command(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// namespace creates a namespace for one test, with labels and annotations.
func namespace(t testing.TB, labels, annotations map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-", Labels: labels, Annotations: annotations}}
	ns, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// metricSum scrapes the webhook's metrics and sums the samples of the
// series whose name and labels start with prefix.
func metricSum(tb testing.TB, prefix string) float64 {
	tb.Helper()
	return metricSumAt(tb, metricsURL, prefix)
}

// metricSumAt is metricSum for the server whose metrics are at url.
func metricSumAt(tb testing.TB, url, prefix string) float64 {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return sumMetric(tb, body, prefix)
}

// sumMetric sums the samples in a Prometheus text exposition of the
// series whose name and labels start with prefix.
func sumMetric(tb testing.TB, body []byte, prefix string) float64 {
	tb.Helper()
	var sum float64
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setMainPolicy swaps the package server's policy for the rest of the
// test and waits until it is in force.
func setMainPolicy(t *testing.T, policy string) {
	t.Helper()
	original, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(configFile, original, 0o644)
		time.Sleep(time.Second) // the reload is asynchronous
	})
	time.Sleep(time.Second)
}

// TestServerVersion: the suite runs against the kube-apiserver it was
// asked for (make test-oldest runs it against the oldest supported).
func TestServerVersion(t *testing.T) {
	v, err := clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s", v.GitVersion)
	if want := os.Getenv("STATEGUARD_KUBE_VERSION"); want != "" && v.GitVersion != want {
		t.Errorf("kube-apiserver %s, want %s", v.GitVersion, want)
	}
}
