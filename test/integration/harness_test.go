// Package integration runs the real stateguard binary as the admission
// webhook of a real kube-apiserver and etcd, registered with the webhook
// configurations the chart renders, and drives kubectl as a user would.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/internal/localcluster"
)

// The control plane and the webhook, shared by every test of the package.
var (
	kubeconfig    string // a cluster-admin kubeconfig for kubectl
	cluster       *localcluster.Cluster
	clientset     *kubernetes.Clientset
	restConfig    *rest.Config
	serverURL     string  // https://127.0.0.1:PORT of the stateguard binary
	metricsURL    string  // http://127.0.0.1:PORT/metrics of the stateguard binary
	certDir       string  // the --cert-dir of the stateguard binary
	configFile    string  // the --config of the stateguard binary
	ca            *testCA // the CA the webhook configurations trust
	kubectlBin    string
	stateguardBin string // the binary under test
	helmBin       string
	logFile       string
)

// The release namespace the chart is rendered for; the chart excludes it.
const releaseNamespace = "stateguard-system"

func TestMain(m *testing.M) {
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

	stateguardBin = filepath.Join(work, "stateguard")
	if out, err := exec.Command("go", "build", "-o", stateguardBin, "../../cmd/stateguard").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building stateguard: %v\n%s", err, out)
	}
	certDir = filepath.Join(work, "certs")
	if ca, err = newTestCA("stateguard-test-ca"); err != nil {
		return 0, err
	}
	if err := ca.writeServingCert(certDir, "stateguard"); err != nil {
		return 0, err
	}
	configFile = filepath.Join(work, "config", "stateguard.yaml")
	if err := os.MkdirAll(filepath.Dir(configFile), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(configFile, []byte(testConfig), 0o644); err != nil {
		return 0, err
	}

	ports, err := freePorts(3)
	if err != nil {
		return 0, err
	}
	serverURL = fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	metricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1])
	logFile = filepath.Join(work, "stateguard.log")
	log, err := os.Create(logFile)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	ctx, stop := context.WithCancel(context.Background())
	serve := exec.CommandContext(ctx, stateguardBin, "serve",
		"--kubeconfig", kubeconfig, "--config", configFile, "--cert-dir", certDir,
		"--port", fmt.Sprint(ports[0]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
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
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), 60*time.Second); err != nil {
		out, _ := os.ReadFile(logFile)
		return 0, fmt.Errorf("%w; stateguard's log:\n%s", err, out)
	}
	if err := registerChartWebhooks(ctx, helm); err != nil {
		return 0, err
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
	conn, err := tls.Dial("tcp", strings.TrimPrefix(serverURL, "https://"), &tls.Config{RootCAs: ca.pool()})
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

// registerChartWebhooks renders the chart's webhook configurations and
// registers them, pointed at the test's server by URL: the rules,
// selectors, policies and paths are exactly the chart's.
func registerChartWebhooks(ctx context.Context, helm string) error {
	out, err := exec.Command(helm, "template", "stateguard", "../../charts/stateguard", "--namespace", releaseNamespace, "--api-versions", "cert-manager.io/v1").CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm template: %v\n%s", err, out)
	}
	var found int
	for _, doc := range strings.Split(string(out), "\n---") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "ValidatingWebhookConfiguration":
			var c admissionregistrationv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
				return err
			}
			for i := range c.Webhooks {
				pointAtTestServer(&c.Webhooks[i].ClientConfig)
			}
			if _, err := clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &c, metav1.CreateOptions{}); err != nil {
				return err
			}
			found++
		case "MutatingWebhookConfiguration":
			var c admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
				return err
			}
			for i := range c.Webhooks {
				pointAtTestServer(&c.Webhooks[i].ClientConfig)
			}
			if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &c, metav1.CreateOptions{}); err != nil {
				return err
			}
			found++
		}
	}
	if found != 2 {
		return fmt.Errorf("the chart rendered %d webhook configurations, want 2", found)
	}
	return nil
}

func pointAtTestServer(c *admissionregistrationv1.WebhookClientConfig) {
	url := serverURL + *c.Service.Path
	c.Service = nil
	c.URL = &url
	c.CABundle = ca.pem
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

// testCA signs the webhook's serving certificates; the webhook
// configurations trust it.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(name string) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (ca *testCA) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// writeServingCert writes a new serving certificate for 127.0.0.1, named
// commonName, into dir (tls.crt, tls.key).
func (ca *testCA) writeServingCert(dir, commonName string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: commonName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Write to temporary names and rename: the server reloads on change and
	// must never read a half-written pair.
	for name, block := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
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
