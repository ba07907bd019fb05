// Package chart_test renders charts/stateguard with helm over value
// combinations and checks the objects it produces.
package chart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
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

var withCertManager = []string{"--set", "certManager.enabled=true", "--api-versions", "cert-manager.io/v1"}

// withDefault sets a StatefulSet default, which registers the mutating webhook.
var withDefault = []string{"--set", "defaults.podManagementPolicy=Parallel"}

func TestLint(t *testing.T) {
	if out, err := exec.Command(helm(t), "lint", ".", "--strict", "--set", "certManager.enabled=false", "--set", "audit.policyReports.installCRD=true").CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

func TestObjectsPerMode(t *testing.T) {
	common := []string{
		"ClusterRole/sg-stateguard", "ClusterRole/sg-stateguard-metrics-reader", "ClusterRoleBinding/sg-stateguard", "ConfigMap/sg-stateguard", "Deployment/sg-stateguard",
		"PodDisruptionBudget/sg-stateguard", "Role/sg-stateguard", "RoleBinding/sg-stateguard",
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
		{name: "a default registers the mutating webhook", args: withDefault,
			extra: []string{"MutatingWebhookConfiguration/sg-stateguard", "Secret/sg-stateguard-tls"}},
		{name: "Prometheus may read the metrics", args: []string{"--set", "metrics.readers[0].namespace=monitoring,metrics.readers[0].name=prometheus"},
			extra: []string{"ClusterRoleBinding/sg-stateguard-metrics-reader", "Secret/sg-stateguard-tls"}},
		{name: "plain HTTP metrics", args: []string{"--set", "metrics.secure=false"},
			extra: []string{"Secret/sg-stateguard-tls"}, drop: []string{"ClusterRole/sg-stateguard-metrics-reader"}},
		{name: "the PolicyReport CRD", args: []string{"--set", "certManager.enabled=false", "--set", "audit.policyReports.installCRD=true"},
			extra: []string{"CustomResourceDefinition/policyreports.wgpolicyk8s.io", "Secret/sg-stateguard-tls"}},
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

// TestDefaultsWorkWithoutCertManager: the default install renders on a
// cluster without the cert-manager API, with self-managed TLS.
func TestDefaultsWorkWithoutCertManager(t *testing.T) {
	r := render(t)
	var d appsv1.Deployment
	r.get(t, "Deployment/sg-stateguard", &d)
	if args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " "); !strings.Contains(args, "--cert-secret=sg-stateguard-tls") {
		t.Errorf("the default install does not manage its own certificate: %s", args)
	}
}

func TestCertManagerAPIRequired(t *testing.T) {
	out, err := run(t, "--set", "certManager.enabled=true")
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
			r := render(t, append(tt.args, withDefault...)...)
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
				// A Scale carries no Pod template, so every kubectl scale is
				// sent; failing them all while stateguard is down would stop
				// scaling cluster-wide.
				want := admissionregistrationv1.Fail
				if w.Name == "deployment-scales.validate.stateguard.io" || w.Name == "deployments-data.validate.stateguard.io" {
					want = admissionregistrationv1.Ignore
				}
				check(w.Name, *w.FailurePolicy, want, w.SideEffects, w.TimeoutSeconds, w.NamespaceSelector, w.ClientConfig.Service)
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
			if diff := cmp.Diff([]string{"deployments", "deployments", "deployments/scale", "horizontalpodautoscalers", "statefulsets"}, resources); diff != "" {
				t.Errorf("validated resources (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMutatingWebhookOnlyWithADefault: the API server calls the defaulting
// webhook only when a default is configured, and self-managed TLS injects
// the CA into, and may update, only the configurations that exist.
func TestMutatingWebhookOnlyWithADefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want bool
	}{
		{"no default", nil, false},
		{"podManagementPolicy", []string{"--set", "defaults.podManagementPolicy=OrderedReady"}, true},
		{"whenDeleted", []string{"--set", "defaults.persistentVolumeClaimRetentionPolicy.whenDeleted=Retain"}, true},
		{"whenScaled", []string{"--set", "defaults.persistentVolumeClaimRetentionPolicy.whenScaled=Delete"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.args...)
			if got := slices.Contains(r.keys(), "MutatingWebhookConfiguration/sg-stateguard"); got != tt.want {
				t.Errorf("MutatingWebhookConfiguration rendered: %v, want %v", got, tt.want)
			}
			var d appsv1.Deployment
			r.get(t, "Deployment/sg-stateguard", &d)
			if got := slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--mutating-webhook-configuration=sg-stateguard"); got != tt.want {
				t.Errorf("--mutating-webhook-configuration passed: %v, want %v", got, tt.want)
			}
			var cr rbacv1.ClusterRole
			r.get(t, "ClusterRole/sg-stateguard", &cr)
			granted := slices.ContainsFunc(cr.Rules, func(rule rbacv1.PolicyRule) bool {
				return slices.Contains(rule.Resources, "mutatingwebhookconfigurations")
			})
			if granted != tt.want {
				t.Errorf("access to mutatingwebhookconfigurations: %v, want %v", granted, tt.want)
			}
		})
	}
}

// TestOnlyTheAPIServerTalksToTheWebhook: the metrics need a token that may
// get /metrics, the ServiceMonitor presents Prometheus's, the webhook
// verifies the API server's client certificate when given its CA, and the
// NetworkPolicy admits the configured peers only.
func TestOnlyTheAPIServerTalksToTheWebhook(t *testing.T) {
	r := render(t, append([]string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
		"--set", "networkPolicy.from[0].ipBlock.cidr=10.0.0.0/8", "--set", "webhook.clientCA.configMap=apiserver-ca",
		"--set", "metrics.readers[0].namespace=monitoring,metrics.readers[0].name=prometheus",
		"--api-versions", "monitoring.coreos.com/v1"}, withCertManager...)...)
	var d appsv1.Deployment
	r.get(t, "Deployment/sg-stateguard", &d)
	pod := d.Spec.Template.Spec
	args := pod.Containers[0].Args
	for _, want := range []string{"--metrics-secure=true", "--client-ca-file=/etc/stateguard/client-ca/ca.crt"} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.ConfigMap != nil && v.ConfigMap.Name == "apiserver-ca" && v.ConfigMap.Items[0].Path == "ca.crt"
	}) {
		t.Errorf("volumes %+v: want the client CA's ConfigMap", pod.Volumes)
	}
	// The shape of the Prometheus Operator's ServiceMonitor that the chart uses.
	var sm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port, Path, Scheme, BearerTokenFile string
				TLSConfig                           struct{ InsecureSkipVerify bool } `json:"tlsConfig"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	r.get(t, "ServiceMonitor/sg-stateguard", &sm)
	if e := sm.Spec.Endpoints[0]; e.Port != "https-metrics" || e.Scheme != "https" || e.BearerTokenFile == "" || !e.TLSConfig.InsecureSkipVerify {
		t.Errorf("ServiceMonitor endpoint %+v: want https with Prometheus's token", e)
	}
	var reader rbacv1.ClusterRole
	var binding rbacv1.ClusterRoleBinding
	r.get(t, "ClusterRole/sg-stateguard-metrics-reader", &reader)
	r.get(t, "ClusterRoleBinding/sg-stateguard-metrics-reader", &binding)
	if len(reader.Rules) != 1 || !slices.Equal(reader.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(reader.Rules[0].Verbs, []string{"get"}) {
		t.Errorf("metrics-reader rules %+v", reader.Rules)
	}
	if s := binding.Subjects; len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Namespace != "monitoring" || s[0].Name != "prometheus" {
		t.Errorf("metrics-reader subjects %+v", s)
	}
	var np networkingv1.NetworkPolicy
	r.get(t, "NetworkPolicy/sg-stateguard", &np)
	webhook := np.Spec.Ingress[0]
	if webhook.Ports[0].Port.String() != "webhook" || len(webhook.From) != 1 || webhook.From[0].IPBlock.CIDR != "10.0.0.0/8" {
		t.Errorf("the webhook port's ingress %+v: want it from 10.0.0.0/8 only", webhook)
	}
	if metrics := np.Spec.Ingress[1]; len(metrics.From) != 0 {
		t.Errorf("the metrics port's ingress %+v: want it open when metricsFrom is empty", metrics)
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
		if u := d.Spec.Strategy.RollingUpdate; u == nil || u.MaxUnavailable == nil || u.MaxUnavailable.IntValue() != 0 {
			t.Errorf("rollout %+v: want maxUnavailable 0, so that a new replica is Ready before an old one goes", d.Spec.Strategy)
		}
		if l := c.Lifecycle; l == nil || l.PreStop == nil || l.PreStop.Sleep == nil || l.PreStop.Sleep.Seconds != 5 {
			t.Errorf("lifecycle %+v: want a preStop sleep of 5 s, so that endpoints go before the listener", l)
		}
		memoryLimit := false
		for _, e := range c.Env {
			memoryLimit = memoryLimit || (e.Name == "MEMORY_LIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory")
		}
		if !memoryLimit {
			t.Errorf("env %+v: want MEMORY_LIMIT from the container's limits.memory", c.Env)
		}
		var tls corev1.Volume
		for _, v := range pod.Volumes {
			if v.Name == "tls" {
				tls = v
			}
		}
		switch selfManaged := slices.Contains(mode, "certManager.enabled=false"); {
		case !selfManaged && (tls.Secret == nil || tls.Secret.SecretName != "sg-stateguard-tls"):
			t.Errorf("with cert-manager, the serving certificate volume is %+v, want Secret sg-stateguard-tls", tls.VolumeSource)
		case selfManaged && (tls.EmptyDir == nil || tls.EmptyDir.Medium != corev1.StorageMediumMemory):
			// The server writes the certificate there from the Secret.
			t.Errorf("self-managed, the serving certificate volume is %+v, want an emptyDir in memory", tls.VolumeSource)
		}
	}
}

func TestRBACIsLeastPrivilege(t *testing.T) {
	for _, mode := range [][]string{withCertManager, {"--set", "certManager.enabled=false"}, withDefault} {
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

// auditRules are the ClusterRole rules the background audit needs beyond the
// webhook's: StatefulSets reach it through a cache alone (list, watch).
var auditRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, Verbs: []string{"list", "create"}},
	{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, ResourceNames: []string{"stateguard"}, Verbs: []string{"update"}},
}

// ledgerRules are the Role rules for the background audit's ConfigMap.
var ledgerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"sg-stateguard-audit"}, Verbs: []string{"get", "update"}},
}

// webhookRules are those of auditRules' resources the webhook alone needs.
var webhookRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}},
}

func TestAuditArgsAndRBAC(t *testing.T) {
	for _, tt := range []struct {
		name         string
		args         []string
		wantInterval string
		wantRules    []rbacv1.PolicyRule
	}{
		{name: "default", wantInterval: "5m", wantRules: auditRules},
		{name: "another interval", args: []string{"--set", "audit.interval=1h30m"}, wantInterval: "1h30m", wantRules: auditRules},
		{name: "disabled", args: []string{"--set", "audit.interval=0"}, wantInterval: "0", wantRules: webhookRules},
		{name: "disabled, with a unit", args: []string{"--set-string", "audit.interval=0s"}, wantInterval: "0s", wantRules: webhookRules},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, append(tt.args, withCertManager...)...)
			var d appsv1.Deployment
			r.get(t, "Deployment/sg-stateguard", &d)
			args := d.Spec.Template.Spec.Containers[0].Args
			// The namespaces the webhook configurations exclude, so that the
			// audit reports only what admission would judge.
			for _, want := range []string{"--audit-interval=" + tt.wantInterval, "--exclude-namespaces=kube-system,kube-node-lease," + namespace} {
				if !slices.Contains(args, want) {
					t.Errorf("args %q lack %q", args, want)
				}
			}
			var cr rbacv1.ClusterRole
			r.get(t, "ClusterRole/sg-stateguard", &cr)
			got := slices.DeleteFunc(slices.Clone(cr.Rules), func(rule rbacv1.PolicyRule) bool {
				return !slices.ContainsFunc(rule.Resources, func(res string) bool {
					return res == "deployments" || res == "statefulsets" || res == "events" || res == "policyreports"
				})
			})
			if diff := cmp.Diff(tt.wantRules, got); diff != "" {
				t.Errorf("ClusterRole rules for the audit (-want +got):\n%s", diff)
			}
			// The ledger ConfigMap, in the release namespace only.
			var role rbacv1.Role
			r.get(t, "Role/sg-stateguard", &role)
			gotLedger := slices.DeleteFunc(slices.Clone(role.Rules), func(rule rbacv1.PolicyRule) bool {
				return !slices.Contains(rule.Resources, "configmaps")
			})
			var wantLedger []rbacv1.PolicyRule
			if audited := len(tt.wantRules) > len(webhookRules); audited {
				wantLedger = ledgerRules
				if !slices.Contains(args, "--audit-ledger=sg-stateguard-audit") {
					t.Errorf("args %q lack --audit-ledger=sg-stateguard-audit", args)
				}
			}
			if diff := cmp.Diff(wantLedger, gotLedger, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Role rules for the ledger (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyReportCRD(t *testing.T) {
	const key = "CustomResourceDefinition/policyreports.wgpolicyk8s.io"
	if _, ok := render(t, withCertManager...)[key]; ok {
		t.Errorf("%s is rendered by default", key)
	}
	doc, ok := render(t, append([]string{"--set", "audit.policyReports.installCRD=true"}, withCertManager...)...)[key]
	if !ok {
		t.Fatalf("%s not rendered with audit.policyReports.installCRD=true", key)
	}
	// Not strict, and not the apiextensions types (that module is not a
	// direct dependency): TestLint checks the rest of the rendered CRD.
	var crd struct {
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Group    string
			Versions []struct{ Name string }
		}
	}
	if err := yaml.Unmarshal([]byte(doc), &crd); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	// Uninstalling must not delete the CRD, and with it every report.
	if got := crd.Annotations["helm.sh/resource-policy"]; got != "keep" {
		t.Errorf("helm.sh/resource-policy = %q, want keep", got)
	}
	if crd.Spec.Group != "wgpolicyk8s.io" || len(crd.Spec.Versions) == 0 || crd.Spec.Versions[0].Name != "v1alpha2" {
		t.Errorf("group %q, versions %+v: want wgpolicyk8s.io/v1alpha2", crd.Spec.Group, crd.Spec.Versions)
	}
}

// TestPolicyReportCRDIsTheModules checks that the chart's copy of the CRD is
// the one of the kyverno module in go.mod, whose types the server writes.
func TestPolicyReportCRDIsTheModules(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/kyverno/kyverno").Output()
	if err != nil || len(bytes.TrimSpace(dir)) == 0 {
		t.Fatalf("go list -m github.com/kyverno/kyverno: %v (%q): run `go mod download`", err, dir)
	}
	const file = "wgpolicyk8s.io_policyreports.yaml"
	want, err := os.ReadFile(filepath.Join(string(bytes.TrimSpace(dir)), "config", "crds", "policyreport", file))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("files", file))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("files/%s is not the kyverno module's (err=%v): run `make chart-crds`", file, err)
	}
}

func TestConfigMapIsAValidConfig(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	// An unquoted off reads as false in Helm; the config must say "off".
	if err := os.WriteFile(values, []byte(`enforcement: dryrun
allowObjectExemptions: true
objectExemptionGrantors: {groups: [platform], serviceAccounts: [argocd/argocd-application-controller]}
exemptions:
  - {name: search, namespaces: [search], names: ["*-coordinating"], rules: [statefulset-emptydir-data], reason: no data, expires: 2027-06-30}
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
	got := fmt.Sprintf("%s %v %s %s %v %s %s", cfg.Enforcement, *cfg.AllowObjectExemptions, cfg.Action(engine.RuleHeadlessService), cfg.Action(engine.RuleEmptyDirData),
		cfg.Rules[engine.RuleEmptyDirData].ScratchPaths, cfg.Defaults.PodManagementPolicy, cfg.Defaults.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	if want := "dryrun true off warn [/cache] Parallel Delete"; got != want {
		t.Errorf("config: %q, want %q", got, want)
	}
	if len(cfg.Exemptions) != 1 || cfg.Exemptions[0].Expires != "2027-06-30" || cfg.ObjectExemptionGrantors.ServiceAccounts[0] != "argocd/argocd-application-controller" {
		t.Errorf("exemptions %+v, grantors %+v", cfg.Exemptions, cfg.ObjectExemptionGrantors)
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
		{"audit.interval=5 minutes", "/audit/interval"},
		{"audit.interval=5", "/audit/interval"},
		{"exemptions[0].name=x,exemptions[0].rules[0]=all,exemptions[0].reason=r", "missing property 'namespaces'"},
		{"exemptions[0].name=x,exemptions[0].rules[0]=statefulset-headless,exemptions[0].reason=r,exemptions[0].names[0]=db", "/exemptions/0/rules/0"},
		{"objectExemptionGrantors.serviceAccounts[0]=argocd-application-controller", "/objectExemptionGrantors/serviceAccounts/0"},
		{"audit.policyReport.installCRD=true", "additional properties 'policyReport' not allowed"},
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
		"Background audit: every 5m, on the elected leader; results: kubectl get events -A --field-selector reason=PolicyViolation, and kubectl get policyreports -A when the PolicyReport CRD is installed",
		"kubectl -n default apply --dry-run=server -f -",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
}

// TestValuesFollowTheRules holds the values schema and values.yaml to
// engine.Rules: one entry per rule, with its action, its default action
// and exactly the options it takes.
func TestValuesFollowTheRules(t *testing.T) {
	type properties struct {
		Properties map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	var schema struct {
		Properties struct {
			Rules properties `json:"rules"`
		} `json:"properties"`
	}
	var values struct {
		Rules map[string]map[string]any `json:"rules"`
	}
	for file, into := range map[string]any{"values.schema.json": &schema, "values.yaml": &values} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	inSchema := schema.Properties.Rules.Properties
	if len(inSchema) != len(engine.Rules) || len(values.Rules) != len(engine.Rules) {
		t.Errorf("values.schema.json has %d rules and values.yaml %d, engine.Rules %d", len(inSchema), len(values.Rules), len(engine.Rules))
	}
	for _, r := range engine.Rules {
		var got []string
		for option := range inSchema[r.ID].Properties {
			got = append(got, option)
		}
		want := append([]string{"action"}, r.Options...)
		if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("values.schema.json: options of rules.%s (-engine +schema):\n%s", r.ID, diff)
		}
		if action := values.Rules[r.ID]["action"]; action != string(r.DefaultAction) {
			t.Errorf("values.yaml: rules.%s.action is %v, the rule's default is %s", r.ID, action, r.DefaultAction)
		}
	}
}
