package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestOnlyTheAPIServerTalksToTheWebhook runs a server as the chart does
// with webhook.clientCA and secure metrics, as the chart's ServiceAccount:
// a webhook client without a certificate of the CA gets no connection,
// one with it gets answers; /metrics answers only a token whose
// ServiceAccount the chart's metrics-reader RBAC lets read it.
func TestOnlyTheAPIServerTalksToTheWebhook(t *testing.T) {
	ns := namespace(t, nil, nil)
	ca, caKey := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(serverBin, "serve", "--kubeconfig", asChartServiceAccount(t, ns), "--cert-dir", certDir, "--port", fmt.Sprint(ports[0]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--client-ca-file", caFile)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), 60*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}

	webhook := fmt.Sprintf("https://127.0.0.1:%d/validate-apps-v1-statefulset", ports[0])
	post := func(certs ...tls.Certificate) (*http.Response, error) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs},
		}}
		return client.Post(webhook, "application/json", strings.NewReader("{}"))
	}
	if resp, err := post(); err == nil {
		resp.Body.Close()
		t.Errorf("a client without a certificate got HTTP %d, want no connection", resp.StatusCode)
	}
	if resp, err := post(newClientCert(t, "intruder", nil, nil)); err == nil {
		resp.Body.Close()
		t.Errorf("a client with a certificate of another CA got HTTP %d, want no connection", resp.StatusCode)
	}
	resp, err := post(newClientCert(t, "kube-apiserver", ca, caKey))
	if err != nil {
		t.Fatalf("the API server's certificate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the API server's certificate: HTTP %d, want the server's answer to an empty review (400)", resp.StatusCode)
	}

	// TLS 1.2 with AEAD ciphers only; TLS 1.1 not at all.
	apiserver := newClientCert(t, "kube-apiserver", ca, caKey)
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	for _, tt := range []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"TLS 1.2, AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, true},
		{"TLS 1.2, CBC", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}}, false},
		{"TLS 1.1", &tls.Config{MaxVersion: tls.VersionTLS11}, false},
	} {
		tt.tls.InsecureSkipVerify, tt.tls.Certificates = true, []tls.Certificate{apiserver}
		conn, err := tls.Dial("tcp", addr, tt.tls)
		if err == nil {
			err = conn.Handshake()
			conn.Close()
		}
		if (err == nil) != tt.ok {
			t.Errorf("%s: handshake error %v, want success %v", tt.name, err, tt.ok)
		}
	}

	// The chart's metrics-reader ClusterRole, bound to a ServiceAccount by
	// the chart's metrics.readers.
	rbac, err := exec.Command(helmBin, "template", "stateguard", "../../charts/stateguard", "--namespace", releaseNamespace,
		"--show-only", "templates/rbac.yaml", "--set", "metrics.readers[0].namespace="+ns+",metrics.readers[0].name=prometheus").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rbac)
	}
	var reader []string
	for _, doc := range strings.Split(string(rbac), "\n---") {
		if strings.Contains(doc, "name: stateguard-metrics-reader") {
			reader = append(reader, doc)
		}
	}
	if len(reader) != 2 {
		t.Fatalf("want the metrics-reader ClusterRole and its binding, got %d objects:\n%s", len(reader), rbac)
	}
	if _, err := kubectl(strings.Join(reader, "\n---"), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = kubectl(strings.Join(reader, "\n---"), "delete", "-f", "-") })
	// The metrics listener starts beside the webhook, after generating its
	// self-signed certificate: wait for it.
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		conn, err := net.DialTimeout("tcp", metricsAddr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metrics endpoint does not listen: %v\n%s", err, log.String())
		}
	}
	metrics := func(token string) int {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", ports[1]), nil)
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
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"not-a-token", http.StatusUnauthorized},
		{serviceAccountToken(t, ns, "someone"), http.StatusForbidden},
		{serviceAccountToken(t, ns, "prometheus"), http.StatusOK},
	} {
		if got := metrics(tt.token); got != tt.want {
			t.Errorf("/metrics with token %.12q: HTTP %d, want %d", tt.token, got, tt.want)
		}
	}
}

func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func newTestCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "apiserver-client-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// newClientCert is a client certificate signed by ca, or self-signed when
// ca is nil.
func newClientCert(t *testing.T, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent, signer := template, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCraftedReviewsReadNothing posts to the running webhook reviews that
// name another namespace's StatefulSet and Deployment, as anyone who can
// reach the port could: refused as malformed, and the answers say nothing
// of the Service or Deployment that namespace holds.
func TestCraftedReviewsReadNothing(t *testing.T) {
	private := namespace(t, nil, nil)
	mustApply(t, private, headlessService("secret-db")+"---\n"+deployment(1, "Recreate"))
	statefulSet := fmt.Sprintf(`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"probe","namespace":%q},`+
		`"spec":{"serviceName":"secret-db","selector":{"matchLabels":{"app":"secret-db"}},"template":{"metadata":{"labels":{"app":"secret-db"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`, private)
	scale := fmt.Sprintf(`{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","namespace":%q},"spec":{"replicas":5}}`, private)
	review := func(kind, group, version, resource, subresource, name, object string) string {
		return fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":%q,"version":%q,"kind":%q},`+
			`"resource":{"group":"apps","version":"v1","resource":%q},"subResource":%q,"name":%q,"namespace":"attacker","operation":"UPDATE",`+
			`"userInfo":{"username":"intruder"},"object":%s,"oldObject":%s}}`, group, version, kind, resource, subresource, name, object, object)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, tt := range []struct{ path, body string }{
		{"/validate-apps-v1-statefulset", review("StatefulSet", "apps", "v1", "statefulsets", "", "probe", statefulSet)},
		{"/mutate-apps-v1-statefulset", review("StatefulSet", "apps", "v1", "statefulsets", "", "probe", statefulSet)},
		{"/validate-apps-v1-deployment-scale", review("Scale", "autoscaling", "v1", "deployments", "scale", "web", scale)},
	} {
		resp, err := client.Post(serverURL+tt.path, "application/json", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		var answer struct {
			Response struct {
				Allowed bool
				Status  struct {
					Code    int
					Message string
				} `json:"status"`
				Warnings []string
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := answer.Response
		if r.Allowed || r.Status.Code != http.StatusBadRequest || len(r.Warnings) > 0 ||
			!strings.HasSuffix(r.Status.Message, fmt.Sprintf(`the object's namespace %q is not the request's "attacker"`, private)) {
			t.Errorf("%s: %+v, want a 400 that names only the namespaces", tt.path, r)
		}
	}
}
