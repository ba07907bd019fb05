package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// TestChartAppliesCleanly server-side applies (as a server dry run, so the
// webhook configurations never go live) every object the chart renders,
// in both TLS modes, into a namespace that enforces and warns on the
// restricted Pod Security level, with cert-manager's CRDs installed from
// the cert-manager module. The API server must accept every object
// without a single warning.
func TestChartAppliesCleanly(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager").Output()
	if err != nil {
		t.Fatalf("locating the cert-manager module: %v", err)
	}
	if _, err := envtest.InstallCRDs(restConfig, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("installing cert-manager's CRDs: %v", err)
	}
	ns := namespace(t, map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}, nil)
	for _, mode := range [][]string{
		{"--api-versions", "cert-manager.io/v1", "--set", "networkPolicy.enabled=true"},
		{"--set", "certManager.enabled=false", "--set", "logLevel=debug"},
		// Only the API server talks to the webhook: the NetworkPolicy's
		// peers, the client CA, Prometheus's access to the metrics.
		{"--set", "certManager.enabled=false", "--set", "networkPolicy.enabled=true",
			"--set", "networkPolicy.from[0].ipBlock.cidr=10.0.0.0/8", "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
			"--set", "webhook.clientCA.configMap=apiserver-client-ca", "--set", "metrics.readers[0].namespace=monitoring,metrics.readers[0].name=prometheus"},
	} {
		rendered, err := exec.Command(helmBin, append([]string{"template", "sg", "../../charts/stateguard", "--namespace", ns}, mode...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template %v: %v\n%s", mode, err, rendered)
		}
		checkCertificate(t, string(rendered))
		stdout, stderr, err := kubectlIn(string(rendered), "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-n", ns, "-f", "-")
		if err != nil {
			t.Fatalf("%v: server-side apply: %v\n%s", mode, err, stderr)
		}
		if strings.Contains(stderr, "Warning") {
			t.Errorf("%v: the API server warned:\n%s", mode, stderr)
		}
		for _, kind := range []string{"deployment.apps/sg-stateguard", "validatingwebhookconfiguration.admissionregistration.k8s.io/sg-stateguard", "role.rbac.authorization.k8s.io/sg-stateguard"} {
			contains(t, stdout, kind+" serverside-applied (server dry run)")
		}
	}
}

// checkCertificate decodes a rendered Certificate, if any, strictly into
// cert-manager's own type.
func checkCertificate(t *testing.T, rendered string) {
	t.Helper()
	for _, doc := range strings.Split(rendered, "\n---") {
		if !strings.Contains(doc, "kind: Certificate\n") {
			continue
		}
		var c cmapi.Certificate
		if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
			t.Fatalf("the rendered Certificate: %v", err)
		}
		if c.Spec.SecretName != "sg-stateguard-tls" || len(c.Spec.DNSNames) == 0 || !strings.HasSuffix(c.Spec.DNSNames[0], ".svc") {
			t.Errorf("Certificate %+v: want Secret sg-stateguard-tls for the Service's DNS name", c.Spec)
		}
	}
}
