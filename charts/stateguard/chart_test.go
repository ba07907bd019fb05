// Package chart_test renders charts/stateguard with helm over value
// combinations and checks the objects it produces.
package chart_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/config"
)

const release, namespace = "sg", "stateguard-system"

func helm(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("STATEGUARD_HELM")
	if _, err := os.Stat(bin); bin == "" || err != nil {
		t.Fatalf("helm not found at STATEGUARD_HELM=%q: run the tests with `make test`, which builds it", bin)
	}
	return bin
}

// rendered is the chart's output, by "Kind/name".
type rendered map[string]string

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	objs := rendered{}
	for _, doc := range strings.Split(out, "\n---") {
		var meta struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("a rendered document does not parse: %v\n%s", err, doc)
		}
		if meta.Kind != "" {
			objs[meta.Kind+"/"+meta.Name] = doc
		}
	}
	return objs
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(helm(t), append([]string{"template", release, ".", "--namespace", namespace}, args...)...).CombinedOutput()
	return string(out), err
}

func (r rendered) get(t *testing.T, key string, into any) {
	t.Helper()
	doc, ok := r[key]
	if !ok {
		t.Fatalf("%s not rendered; rendered: %v", key, r.keys())
	}
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
}

func (r rendered) keys() []string {
	var keys []string
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var withCertManager = []string{"--api-versions", "cert-manager.io/v1"}

func TestLint(t *testing.T) {
	if out, err := exec.Command(helm(t), "lint", ".", "--strict", "--set", "certManager.enabled=false").CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestObjectsPerMode(t *testing.T) {
	common := []string{
		"ClusterRole/sg-stateguard", "ClusterRoleBinding/sg-stateguard", "ConfigMap/sg-stateguard", "Deployment/sg-stateguard",
		"MutatingWebhookConfiguration/sg-stateguard", "PodDisruptionBudget/sg-stateguard", "Role/sg-stateguard", "RoleBinding/sg-stateguard",
		"Service/sg-stateguard", "Service/sg-stateguard-metrics", "ServiceAccount/sg-stateguard", "ValidatingWebhookConfiguration/sg-stateguard",
	}
	for _, tt := range []struct {
		name  string
		args  []string
		extra []string
		drop  []string
	}{
		{name: "cert-manager with its own Issuer", args: withCertManager, extra: []string{"Certificate/sg-stateguard", "Issuer/sg-stateguard-selfsigned"}},
		{name: "cert-manager with the user's issuer", args: append([]string{"--set", "certManager.issuerRef.name=corp-ca", "--set", "certManager.issuerRef.kind=ClusterIssuer"}, withCertManager...),
			extra: []string{"Certificate/sg-stateguard"}},
		{name: "self-managed TLS", args: []string{"--set", "certManager.enabled=false"}, extra: []string{"Secret/sg-stateguard-tls"}},
		{name: "one replica has no PodDisruptionBudget", args: []string{"--set", "certManager.enabled=false", "--set", "replicaCount=1"},
			extra: []string{"Secret/sg-stateguard-tls"}, drop: []string{"PodDisruptionBudget/sg-stateguard"}},
		{name: "ServiceMonitor and NetworkPolicy", args: append([]string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true"}, withCertManager...),
			extra: []string{"Certificate/sg-stateguard", "Issuer/sg-stateguard-selfsigned", "NetworkPolicy/sg-stateguard", "ServiceMonitor/sg-stateguard"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.DeleteFunc(append(slices.Clone(common), tt.extra...), func(k string) bool { return slices.Contains(tt.drop, k) })
			slices.Sort(want)
			if diff := cmp.Diff(want, render(t, tt.args...).keys()); diff != "" {
				t.Errorf("rendered objects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCertManagerAPIRequired(t *testing.T) {
	out, err := run(t)
	if err == nil || !strings.Contains(out, "the cert-manager.io/v1 API is not installed") || !strings.Contains(out, "certManager.enabled=false") {
		t.Errorf("rendering without cert-manager: err=%v\n%s", err, out)
	}
}

func TestWebhookConfigurations(t *testing.T) {
	for _, tt := range []struct {
		name       string
		args       []string
		wantInject string
	}{
		{name: "cert-manager", args: withCertManager, wantInject: namespace + "/sg-stateguard"},
		{name: "self-managed", args: []string{"--set", "certManager.enabled=false"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.args...)
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			var m admissionregistrationv1.MutatingWebhookConfiguration
			r.get(t, "ValidatingWebhookConfiguration/sg-stateguard", &v)
			r.get(t, "MutatingWebhookConfiguration/sg-stateguard", &m)
			if got := v.Annotations["cert-manager.io/inject-ca-from"]; got != tt.wantInject {
				t.Errorf("validating inject-ca-from = %q, want %q", got, tt.wantInject)
			}
			if got := m.Annotations["cert-manager.io/inject-ca-from"]; got != tt.wantInject {
				t.Errorf("mutating inject-ca-from = %q, want %q", got, tt.wantInject)
			}
			var resources []string
			wantSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "kube-node-lease", namespace}},
				{Key: "stateguard.io/ignore", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}},
			}}
			check := func(name string, failure admissionregistrationv1.FailurePolicyType, want admissionregistrationv1.FailurePolicyType, side *admissionregistrationv1.SideEffectClass, timeout *int32, sel *metav1.LabelSelector, svc *admissionregistrationv1.ServiceReference) {
				if failure != want {
					t.Errorf("%s: failurePolicy %s, want %s", name, failure, want)
				}
				if side == nil || *side != admissionregistrationv1.SideEffectClassNone {
					t.Errorf("%s: sideEffects %v, want None", name, side)
				}
				if timeout == nil || *timeout > 5 {
					t.Errorf("%s: timeoutSeconds %v, want at most 5", name, timeout)
				}
				if diff := cmp.Diff(wantSelector, sel); diff != "" {
					t.Errorf("%s: namespaceSelector (-want +got):\n%s", name, diff)
				}
				if svc == nil || svc.Name != "sg-stateguard" || svc.Namespace != namespace || svc.Port == nil || *svc.Port != 443 {
					t.Errorf("%s: clientConfig.service %+v", name, svc)
				}
			}
			for _, w := range v.Webhooks {
				check(w.Name, *w.FailurePolicy, admissionregistrationv1.Fail, w.SideEffects, w.TimeoutSeconds, w.NamespaceSelector, w.ClientConfig.Service)
				for _, rule := range w.Rules {
					resources = append(resources, rule.Resources...)
				}
			}
			for _, w := range m.Webhooks {
				check(w.Name, *w.FailurePolicy, admissionregistrationv1.Ignore, w.SideEffects, w.TimeoutSeconds, w.NamespaceSelector, w.ClientConfig.Service)
				if w.ReinvocationPolicy == nil || *w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
					t.Errorf("%s: reinvocationPolicy %v, want IfNeeded", w.Name, w.ReinvocationPolicy)
				}
			}
			slices.Sort(resources)
			if diff := cmp.Diff([]string{"deployments", "deployments/scale", "horizontalpodautoscalers", "statefulsets"}, resources); diff != "" {
				t.Errorf("validated resources (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeploymentSecurity(t *testing.T) {
	for _, mode := range [][]string{withCertManager, {"--set", "certManager.enabled=false"}} {
		r := render(t, mode...)
		var d appsv1.Deployment
		r.get(t, "Deployment/sg-stateguard", &d)
		pod := d.Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("pod securityContext %+v", sc)
		}
		c := pod.Containers[0]
		if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("container securityContext %+v", sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v: want requests and a memory limit", c.Resources)
		}
		if c.Image != "ghcr.io/stateguard/stateguard:0.1.0" {
			t.Errorf("image %q, want the chart's appVersion", c.Image)
		}
		if *d.Spec.Replicas != 2 || len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" {
			t.Errorf("replicas %d, spread %+v: want 2 replicas spread across nodes", *d.Spec.Replicas, pod.TopologySpreadConstraints)
		}
		var tlsSecret string
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				tlsSecret = v.Secret.SecretName
			}
		}
		if tlsSecret != "sg-stateguard-tls" {
			t.Errorf("the serving certificate comes from Secret %q, want sg-stateguard-tls", tlsSecret)
		}
	}
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	for _, mode := range [][]string{withCertManager, {"--set", "certManager.enabled=false"}} {
		r := render(t, mode...)
		var cr rbacv1.ClusterRole
		var role rbacv1.Role
		r.get(t, "ClusterRole/sg-stateguard", &cr)
		r.get(t, "Role/sg-stateguard", &role)
		for _, rule := range append(slices.Clone(cr.Rules), role.Rules...) {
			for _, field := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames} {
				if slices.Contains(field, "*") {
					t.Errorf("wildcard in %+v", rule)
				}
			}
			if slices.ContainsFunc(rule.Verbs, func(v string) bool { return v == "update" || v == "patch" }) && len(rule.ResourceNames) == 0 &&
				!slices.Contains(rule.Resources, "leases") && !slices.Contains(rule.Resources, "events") {
				t.Errorf("writes without resourceNames: %+v", rule)
			}
		}
		for _, rule := range cr.Rules {
			if slices.Contains(rule.Resources, "secrets") {
				t.Errorf("cluster-wide Secret access: %+v", rule)
			}
		}
	}
}

func TestConfigMapIsAValidConfig(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	// An unquoted off reads as false in Helm; the config must say "off".
	if err := os.WriteFile(values, []byte(`enforcement: dryrun
allowObjectExemptions: false
rules:
  statefulset-headless-service: {action: off}
  statefulset-emptydir-data: {action: warn, scratchPaths: [/cache]}
defaults:
  podManagementPolicy: Parallel
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := render(t, append([]string{"-f", values}, withCertManager...)...)
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/sg-stateguard", &cm)
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the rendered config does not parse: %v\n%s", err, cm.Data["config.yaml"])
	}
	got := fmt.Sprintf("%s %v %s %s %v %s %s", cfg.Enforcement, *cfg.AllowObjectExemptions, cfg.Rules.HeadlessService.Action, cfg.Rules.EmptyDirData.Action,
		cfg.Rules.EmptyDirData.ScratchPaths, cfg.Defaults.PodManagementPolicy, cfg.Defaults.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	if want := "dryrun false off warn [/cache] Parallel Delete"; got != want {
		t.Errorf("config: %q, want %q", got, want)
	}
}

func TestSchemaRefusesBadValues(t *testing.T) {
	for _, tt := range []struct {
		set, want string
	}{
		{"enforcement=sometimes", "/enforcement"},
		{"replicas=3", "additional properties 'replicas' not allowed"},
		{"rules.deployment-shared-rwo-pvc.acton=deny", "additional properties 'acton' not allowed"},
		{"webhook.timeoutSeconds=10", "/webhook/timeoutSeconds"},
		{"defaults.podManagementPolicy=parallel", "/defaults/podManagementPolicy"},
		{"image.pullPolicy=Sometimes", "/image/pullPolicy"},
	} {
		out, err := run(t, append([]string{"--set", tt.set}, withCertManager...)...)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("--set %s: err=%v, want an error naming %q:\n%s", tt.set, err, tt.want, out)
		}
	}
}

func TestNotes(t *testing.T) {
	out, err := exec.Command(helm(t), "install", release, ".", "--namespace", namespace, "--dry-run=client",
		"--set", "certManager.enabled=false", "--set", "enforcement=warn").CombinedOutput()
	if err != nil {
		t.Fatalf("helm install --dry-run=client: %v\n%s", err, out)
	}
	_, notes, found := strings.Cut(string(out), "NOTES:\n")
	if !found {
		t.Fatalf("no NOTES in:\n%s", out)
	}
	for _, want := range []string{
		"is installed in namespace " + namespace,
		"Enforcement: warn (nothing is refused; violations come back as kubectl warnings)",
		"TLS: self-managed, in Secret " + namespace + "/sg-stateguard-tls",
		"never sent: kube-system, kube-node-lease, " + namespace,
		"kubectl -n default apply --dry-run=server -f -",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
}
