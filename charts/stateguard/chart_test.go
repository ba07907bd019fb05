// Package chart_test renders charts/stateguard with helm over value
// combinations and checks the objects it produces.
package chart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/prometheus/model/histogram"
	promlabels "github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
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
	return renderChart(t, ".", args...)
}

// renderChart renders the chart in dir as release sg in namespace.
func renderChart(t *testing.T, dir string, args ...string) rendered {
	t.Helper()
	out, err := runChart(t, dir, args...)
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
	return runChart(t, ".", args...)
}

func runChart(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(helm(t), append([]string{"template", release, dir, "--namespace", namespace}, args...)...).CombinedOutput()
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
	if out, err := exec.Command(helm(t), "lint", ".", "--strict", "--set", "metrics.serviceMonitor.enabled=true", "--set", "grafanaDashboard.enabled=true",
		"--set", "prometheusRule.enabled=true", "--set", "hostNetwork=true").CombinedOutput(); err != nil {
		t.Fatalf("helm lint with the monitoring objects: %v\n%s", err, out)
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
		{name: "Grafana dashboard and PrometheusRule", args: []string{"--set", "grafanaDashboard.enabled=true", "--set", "prometheusRule.enabled=true"},
			extra: []string{"ConfigMap/sg-stateguard-dashboard", "PrometheusRule/sg-stateguard", "Secret/sg-stateguard-tls"}},
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
	var sm serviceMonitor
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
// webhook's: it lists the workloads, and watches none.
var auditRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
	{APIGroups: []string{"apps"}, Resources: []string{"statefulsets", "deployments"}, Verbs: []string{"list"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
	{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, Verbs: []string{"list", "create"}},
	{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, ResourceNames: []string{"stateguard"}, Verbs: []string{"update"}},
}

// ledgerRules are the Role rules for the background audit's ConfigMap.
var ledgerRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"sg-stateguard-audit"}, Verbs: []string{"get", "update"}},
}

// webhookRules are those of auditRules' resources the webhook alone needs:
// it reads the one Deployment an HPA or a scale names.
var webhookRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
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
		// A Pod label the selector uses would leave the Deployment without its Pods.
		{"podLabels.app\\.kubernetes\\.io/name=other", "/podLabels"},
		{"podLabels.app\\.kubernetes\\.io/instance=other", "/podLabels"},
		{"hostNetwork=yes", "/hostNetwork"},
		{"webhook.port=0", "/webhook/port"},
		{"metrics.port=70000", "/metrics/port"},
		{"extraArgs[0]=", "/extraArgs/0"},
		{"extraEnv[0].value=x", "missing property 'name'"},
		{"service.annotation.a=b", "additional properties 'annotation' not allowed"},
		{"metrics.serviceMonitor.interval=5 minutes", "/metrics/serviceMonitor/interval"},
		{"grafanaDashboard.label.a=b", "additional properties 'label' not allowed"},
		{"prometheusRule.webhookErrorRatio=2", "/prometheusRule/webhookErrorRatio"},
		{"prometheusRule.certificateExpiryDays=0", "/prometheusRule/certificateExpiryDays"},
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
// and exactly the options it takes, and every rule ID an exemption may name.
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
	var exemptable struct {
		Properties struct {
			Exemptions struct {
				Items struct {
					Properties struct {
						Rules struct {
							Items struct {
								Enum []string `json:"enum"`
							} `json:"items"`
						} `json:"rules"`
					} `json:"properties"`
				} `json:"items"`
			} `json:"exemptions"`
		} `json:"properties"`
	}
	data, err := os.ReadFile("values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &exemptable); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(append([]string{"all"}, engine.RuleIDs()...), exemptable.Properties.Exemptions.Items.Properties.Rules.Items.Enum); diff != "" {
		t.Errorf("values.schema.json: the rules an exemption may name (-engine +schema):\n%s", diff)
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

// TestUmbrellaChart renders stateguard as the subchart of another chart:
// Helm passes it the umbrella's global values, which the schema must
// accept, and the values set under stateguard: must reach it.
func TestUmbrellaChart(t *testing.T) {
	var chart struct{ Version string }
	data, err := os.ReadFile("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	umbrella := t.TempDir()
	if err := os.CopyFS(filepath.Join(umbrella, "charts", "stateguard"), os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	for file, content := range map[string]string{
		"Chart.yaml": fmt.Sprintf("apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - {name: stateguard, version: %q}\n", chart.Version),
		// Umbrella charts commonly share settings through global.
		"values.yaml": "global: {clusterName: test, imageRegistry: registry.example.com}\nstateguard: {logLevel: debug}\n",
	} {
		if err := os.WriteFile(filepath.Join(umbrella, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := renderChart(t, umbrella, "--set", "stateguard.enforcement=warn")
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/sg-stateguard", &cm)
	cfg, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the rendered config does not parse: %v", err)
	}
	if cfg.Enforcement != engine.ActionWarn {
		t.Errorf("enforcement %q, want warn from --set stateguard.enforcement=warn", cfg.Enforcement)
	}
	var d appsv1.Deployment
	r.get(t, "Deployment/sg-stateguard", &d)
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--zap-log-level=debug") {
		t.Errorf("args %q: want the umbrella's values.yaml logLevel debug", args)
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	r.get(t, "ValidatingWebhookConfiguration/sg-stateguard", &v)
	if svc := v.Webhooks[0].ClientConfig.Service; svc == nil || svc.Name != "sg-stateguard" || svc.Namespace != namespace {
		t.Errorf("clientConfig.service %+v: want sg-stateguard in %s", svc, namespace)
	}
}

// TestNameOverrides: with fullnameOverride every object, and every name
// that refers to one, follows; nothing keeps the default prefix.
func TestNameOverrides(t *testing.T) {
	args := append([]string{"--set", "fullnameOverride=guard", "--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
		"--set", "metrics.readers[0].namespace=monitoring,metrics.readers[0].name=prometheus", "--set", "grafanaDashboard.enabled=true",
		"--set", "prometheusRule.enabled=true"}, append(withDefault, withCertManager...)...)
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	if strings.Contains(out, "sg-stateguard") {
		t.Errorf("the default prefix sg-stateguard is still rendered with fullnameOverride=guard:\n%s", out)
	}
	r := render(t, args...)
	for _, key := range r.keys() {
		if _, name, _ := strings.Cut(key, "/"); name != "guard" && !strings.HasPrefix(name, "guard-") {
			t.Errorf("%s is not named after fullnameOverride", key)
		}
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	var m admissionregistrationv1.MutatingWebhookConfiguration
	r.get(t, "ValidatingWebhookConfiguration/guard", &v)
	r.get(t, "MutatingWebhookConfiguration/guard", &m)
	services := []*admissionregistrationv1.ServiceReference{m.Webhooks[0].ClientConfig.Service}
	for _, w := range v.Webhooks {
		services = append(services, w.ClientConfig.Service)
	}
	for _, svc := range services {
		if svc == nil || svc.Name != "guard" {
			t.Errorf("clientConfig.service %+v, want Service guard", svc)
		}
	}
	if got := v.Annotations["cert-manager.io/inject-ca-from"]; got != namespace+"/guard" {
		t.Errorf("inject-ca-from %q, want %s/guard", got, namespace)
	}
	var cert struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     struct {
			SecretName string   `json:"secretName"`
			DNSNames   []string `json:"dnsNames"`
			IssuerRef  struct{ Name string }
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(r["Certificate/guard"]), &cert); err != nil {
		t.Fatal(err)
	}
	if want := []string{"guard." + namespace + ".svc", "guard." + namespace + ".svc.cluster.local"}; !slices.Equal(cert.Spec.DNSNames, want) ||
		cert.Spec.SecretName != "guard-tls" || cert.Spec.IssuerRef.Name != "guard-selfsigned" {
		t.Errorf("Certificate spec %+v: want DNS names %q, Secret guard-tls, Issuer guard-selfsigned", cert.Spec, want)
	}
	for _, key := range []string{"ClusterRoleBinding/guard", "RoleBinding/guard"} {
		var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		r.get(t, key, &b)
		if b.RoleRef.Name != "guard" || len(b.Subjects) != 1 || b.Subjects[0].Name != "guard" || b.Subjects[0].Namespace != namespace {
			t.Errorf("%s: roleRef %+v, subjects %+v: want ServiceAccount guard bound to guard", key, b.RoleRef, b.Subjects)
		}
	}
	var d appsv1.Deployment
	r.get(t, "Deployment/guard", &d)
	if d.Spec.Template.Spec.ServiceAccountName != "guard" {
		t.Errorf("serviceAccountName %q, want guard", d.Spec.Template.Spec.ServiceAccountName)
	}

	// nameOverride replaces the chart's name, in names and in the name label.
	r = render(t, "--set", "nameOverride=guard")
	var named appsv1.Deployment
	r.get(t, "Deployment/sg-guard", &named)
	if got := named.Spec.Selector.MatchLabels["app.kubernetes.io/name"]; got != "guard" {
		t.Errorf("selector app.kubernetes.io/name %q, want guard", got)
	}
	var svc corev1.Service
	r.get(t, "Service/sg-guard", &svc)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(named.Spec.Template.Labels)) {
		t.Errorf("the Service's selector %v does not select the Pods %v", svc.Spec.Selector, named.Spec.Template.Labels)
	}
}

func TestPodValues(t *testing.T) {
	r := render(t, "--set", "podAnnotations.example\\.com/team=storage", "--set", "podLabels.team=storage",
		"--set", "extraArgs[0]=--kube-api-qps=100", "--set", "extraEnv[0].name=GODEBUG,extraEnv[0].value=http2client=0",
		"--set", "extraEnv[1].name=NODE,extraEnv[1].valueFrom.fieldRef.fieldPath=spec.nodeName",
		"--set", "revisionHistoryLimit=3", "--set", "service.annotations.example\\.com/owner=platform")
	var d appsv1.Deployment
	r.get(t, "Deployment/sg-stateguard", &d)
	pod := d.Spec.Template
	if pod.Annotations["example.com/team"] != "storage" || pod.Annotations["checksum/config"] == "" {
		t.Errorf("pod annotations %v: want example.com/team and checksum/config", pod.Annotations)
	}
	if pod.Labels["team"] != "storage" || pod.Labels["app.kubernetes.io/version"] == "" {
		t.Errorf("pod labels %v: want team beside the chart's", pod.Labels)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !selector.Matches(labels.Set(pod.Labels)) {
		t.Errorf("selector %v (err %v) does not select the Pod labels %v", d.Spec.Selector, err, pod.Labels)
	}
	c := pod.Spec.Containers[0]
	// Appended, so that a repeated flag overrides the chart's.
	if last := c.Args[len(c.Args)-1]; last != "--kube-api-qps=100" {
		t.Errorf("last arg %q, want --kube-api-qps=100", last)
	}
	wantEnv := []corev1.EnvVar{
		{Name: "GODEBUG", Value: "http2client=0"},
		{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
	}
	if len(c.Env) < 2 || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "MEMORY_LIMIT" }) {
		t.Errorf("env %+v: want the chart's MEMORY_LIMIT kept", c.Env)
	} else if diff := cmp.Diff(wantEnv, c.Env[len(c.Env)-2:]); diff != "" {
		t.Errorf("extraEnv (-want +got):\n%s", diff)
	}
	if d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit != 3 {
		t.Errorf("revisionHistoryLimit %v, want 3", d.Spec.RevisionHistoryLimit)
	}
	var svc corev1.Service
	r.get(t, "Service/sg-stateguard", &svc)
	if svc.Annotations["example.com/owner"] != "platform" {
		t.Errorf("webhook Service annotations %v, want example.com/owner", svc.Annotations)
	}

	// The defaults add nothing.
	var plain appsv1.Deployment
	render(t).get(t, "Deployment/sg-stateguard", &plain)
	if len(plain.Spec.Template.Annotations) != 1 || *plain.Spec.RevisionHistoryLimit != 10 || len(plain.Spec.Template.Spec.Containers[0].Env) != 2 {
		t.Errorf("defaults: annotations %v, revisionHistoryLimit %d, env %+v", plain.Spec.Template.Annotations, *plain.Spec.RevisionHistoryLimit, plain.Spec.Template.Spec.Containers[0].Env)
	}
}

// TestHostNetwork: on the node's network the ports are the node's, so they
// are configurable, and the Service still reaches the webhook's.
func TestHostNetwork(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		args                    []string
		host                    bool
		webhook, metrics, probe int32
	}{
		{name: "default", webhook: 9443, metrics: 8080, probe: 8081},
		{name: "host network", args: []string{"--set", "hostNetwork=true", "--set", "webhook.port=10260", "--set", "metrics.port=10261", "--set", "healthPort=10262"},
			host: true, webhook: 10260, metrics: 10261, probe: 10262},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := render(t, tt.args...)
			var d appsv1.Deployment
			r.get(t, "Deployment/sg-stateguard", &d)
			pod := d.Spec.Template.Spec
			if pod.HostNetwork != tt.host || (pod.DNSPolicy == corev1.DNSClusterFirstWithHostNet) != tt.host {
				t.Errorf("hostNetwork %v, dnsPolicy %q: want hostNetwork %v with ClusterFirstWithHostNet", pod.HostNetwork, pod.DNSPolicy, tt.host)
			}
			c := pod.Containers[0]
			for _, want := range []string{fmt.Sprintf("--port=%d", tt.webhook), fmt.Sprintf("--metrics-bind-address=:%d", tt.metrics), fmt.Sprintf("--health-probe-bind-address=:%d", tt.probe)} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if want := map[string]int32{"webhook": tt.webhook, "metrics": tt.metrics, "health": tt.probe}; !maps.Equal(ports, want) {
				t.Errorf("container ports %v, want %v", ports, want)
			}
			for _, key := range []string{"Service/sg-stateguard", "Service/sg-stateguard-metrics"} {
				var svc corev1.Service
				r.get(t, key, &svc)
				target := svc.Spec.Ports[0].TargetPort
				if _, named := ports[target.StrVal]; target.Type != intstr.String || !named {
					t.Errorf("%s targets %s, want a named port of the container", key, target.String())
				}
			}
			// A surge Pod on the host's network needs a node with free ports.
			if u := d.Spec.Strategy.RollingUpdate; tt.host && (u.MaxSurge.IntValue() != 0 || u.MaxUnavailable.IntValue() != 1) {
				t.Errorf("rollout %+v: want maxSurge 0 and maxUnavailable 1 on the host's network", u)
			}
		})
	}
}

// serviceMonitor is the shape of the Prometheus Operator's ServiceMonitor
// that the chart uses.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port, Path, Scheme, BearerTokenFile, Interval, ScrapeTimeout string
			HonorLabels                                                  bool
			TLSConfig                                                    struct{ InsecureSkipVerify bool } `json:"tlsConfig"`
			Relabelings, MetricRelabelings                               []map[string]any
		} `json:"endpoints"`
	} `json:"spec"`
}

func TestServiceMonitorValues(t *testing.T) {
	r := render(t, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kps",
		"--set", "metrics.serviceMonitor.interval=15s", "--set", "metrics.serviceMonitor.scrapeTimeout=10s",
		"--set", "metrics.serviceMonitor.relabelings[0].targetLabel=cluster,metrics.serviceMonitor.relabelings[0].replacement=prod",
		"--set", "metrics.serviceMonitor.metricRelabelings[0].action=drop,metrics.serviceMonitor.metricRelabelings[0].regex=go_gc_.*",
		"--set", "metrics.serviceMonitor.metricRelabelings[0].sourceLabels[0]=__name__")
	var sm serviceMonitor
	r.get(t, "ServiceMonitor/sg-stateguard", &sm)
	// kube-prometheus-stack's Prometheus selects ServiceMonitors by release.
	if sm.Metadata.Labels["release"] != "kps" || sm.Metadata.Labels["app.kubernetes.io/instance"] != release {
		t.Errorf("labels %v: want release=kps beside the chart's", sm.Metadata.Labels)
	}
	e := sm.Spec.Endpoints[0]
	if e.Interval != "15s" || e.ScrapeTimeout != "10s" || !e.HonorLabels {
		t.Errorf("endpoint %+v: want interval 15s, scrapeTimeout 10s, honorLabels", e)
	}
	wantRelabel := []map[string]any{{"targetLabel": "cluster", "replacement": "prod"}}
	wantMetric := []map[string]any{{"action": "drop", "regex": "go_gc_.*", "sourceLabels": []any{"__name__"}}}
	if diff := cmp.Diff(wantRelabel, e.Relabelings); diff != "" {
		t.Errorf("relabelings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantMetric, e.MetricRelabelings); diff != "" {
		t.Errorf("metricRelabelings (-want +got):\n%s", diff)
	}
	var svc corev1.Service
	r.get(t, "Service/sg-stateguard-metrics", &svc)
	if !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
		t.Errorf("the ServiceMonitor's selector %v does not select the metrics Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
	}

	// Unset, they leave Prometheus's defaults.
	var plain serviceMonitor
	render(t, "--set", "metrics.serviceMonitor.enabled=true").get(t, "ServiceMonitor/sg-stateguard", &plain)
	if e := plain.Spec.Endpoints[0]; e.Interval != "" || e.ScrapeTimeout != "" || e.Relabelings != nil || e.MetricRelabelings != nil {
		t.Errorf("endpoint %+v: want no interval, timeout or relabelings by default", e)
	}
}

// dashboardPanel is what the tests read of a Grafana panel; rows hold panels.
type dashboardPanel struct {
	Type, Title string
	Datasource  *struct{ Type, UID string }
	Targets     []struct{ Expr string }
	Panels      []dashboardPanel
}

func readDashboard(t *testing.T, data []byte) (panels []dashboardPanel) {
	t.Helper()
	var dash struct {
		SchemaVersion int
		UID, Title    string
		Panels        []dashboardPanel
		Templating    struct {
			List []struct{ Name, Type, Query any }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if dash.SchemaVersion < 39 || dash.UID == "" || dash.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", dash.SchemaVersion, dash.UID, dash.Title)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type, Query any }) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("templating %+v: want a datasource variable of Prometheus data sources", dash.Templating.List)
	}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				panels = append(panels, p)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	return panels
}

func TestGrafanaDashboard(t *testing.T) {
	r := render(t, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.namespace=monitoring",
		"--set", "grafanaDashboard.annotations.grafana_folder=Stateguard")
	var cm corev1.ConfigMap
	r.get(t, "ConfigMap/sg-stateguard-dashboard", &cm)
	if cm.Namespace != "monitoring" || cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Stateguard" {
		t.Errorf("namespace %q, labels %v, annotations %v: want monitoring, grafana_dashboard=1, the folder", cm.Namespace, cm.Labels, cm.Annotations)
	}
	want, err := os.ReadFile(filepath.Join("dashboards", "stateguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["stateguard.json"]; got != strings.TrimSpace(string(want)) {
		t.Errorf("the ConfigMap's stateguard.json is not dashboards/stateguard.json")
	}
	panels := readDashboard(t, []byte(cm.Data["stateguard.json"]))
	if len(panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	for _, p := range panels {
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
	}

	// The sidecar's label is configurable, and the release namespace is the default.
	var relabelled corev1.ConfigMap
	render(t, "--set", "grafanaDashboard.enabled=true", "--set", "grafanaDashboard.labels.grafana_dashboard=null", "--set", "grafanaDashboard.labels.dashboards=stateguard").
		get(t, "ConfigMap/sg-stateguard-dashboard", &relabelled)
	if _, ok := relabelled.Labels["grafana_dashboard"]; ok || relabelled.Labels["dashboards"] != "stateguard" || relabelled.Namespace != namespace {
		t.Errorf("labels %v, namespace %q: want only dashboards=stateguard, in %s", relabelled.Labels, relabelled.Namespace, namespace)
	}
}

// prometheusRule is what the tests read of the PrometheusRule: its spec is
// a Prometheus rule file, which rulefmt parses.
type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

// alertRules renders the PrometheusRule and parses its groups with
// Prometheus's own rule parser, which checks each expression and the
// templates of labels and annotations.
func alertRules(t *testing.T, args ...string) (prometheusRule, map[string]rulefmt.Rule) {
	t.Helper()
	var pr prometheusRule
	render(t, append([]string{"--set", "prometheusRule.enabled=true"}, args...)...).get(t, "PrometheusRule/sg-stateguard", &pr)
	// JSON is YAML; rulefmt refuses unknown fields.
	groups, errs := rulefmt.Parse(pr.Spec, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("the PrometheusRule's groups: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	rules := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, rule := range g.Rules {
			rules[rule.Alert] = rule
		}
	}
	return pr, rules
}

func TestPrometheusRule(t *testing.T) {
	runbooks, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	pr, rules := alertRules(t, "--set", "prometheusRule.labels.release=kps", "--set", "prometheusRule.additionalLabels.team=storage",
		// --set reads 0.05 as a string.
		"--set-json", "prometheusRule.webhookErrorRatio=0.05", "--set", "prometheusRule.certificateExpiryDays=20", "--set", "audit.interval=1h")
	if pr.Metadata.Labels["release"] != "kps" || pr.Metadata.Namespace != namespace {
		t.Errorf("labels %v, namespace %q: want release=kps, in %s", pr.Metadata.Labels, pr.Metadata.Namespace, namespace)
	}
	wantAlerts := []string{"StateguardAuditNotRunning", "StateguardCertificateExpiring", "StateguardCertificateNotReady",
		"StateguardConfigReloadFailing", "StateguardNoReadyReplicas", "StateguardWebhookErrors"}
	if diff := cmp.Diff(wantAlerts, slices.Sorted(maps.Keys(rules))); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	for name, rule := range rules {
		if rule.Labels["team"] != "storage" || rule.Labels["severity"] == "" {
			t.Errorf("%s: labels %v, want a severity and team=storage", name, rule.Labels)
		}
		if rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
			t.Errorf("%s: annotations %v, want a summary and a description", name, rule.Annotations)
		}
		anchor := strings.ToLower(name)
		if got, want := rule.Annotations["runbook_url"], "https://github.com/stateguard/stateguard/blob/main/docs/alerts.md#"+anchor; got != want {
			t.Errorf("%s: runbook_url %q, want %q", name, got, want)
		}
		if !bytes.Contains(runbooks, []byte("\n## "+name+"\n")) {
			t.Errorf("%s: docs/alerts.md has no section ## %s (anchor #%s)", name, name, anchor)
		}
	}
	// The thresholds from values, and 3 audit intervals of an hour.
	for name, want := range map[string]string{
		"StateguardWebhookErrors":       "> 0.05",
		"StateguardCertificateExpiring": "< 20 * 86400",
		"StateguardAuditNotRunning":     "> 10800",
		"StateguardNoReadyReplicas":     `kube_deployment_status_replicas_available{namespace="` + namespace + `",deployment="sg-stateguard"}`,
		"StateguardConfigReloadFailing": `job="sg-stateguard-metrics",namespace="` + namespace + `"`,
	} {
		if !strings.Contains(rules[name].Expr, want) {
			t.Errorf("%s: expr %q lacks %q", name, rules[name].Expr, want)
		}
	}

	// Short audit intervals are held to 5 minutes, so that scrapes do not
	// make the alert fire; with the audit off it is not rendered.
	for _, tt := range []struct {
		interval, want string
	}{{"10s", "> 300"}, {"1m30s", "> 300"}, {"2.5m", "> 450"}, {"1h1m", "> 10980"}, {"0", ""}} {
		_, rules := alertRules(t, "--set-string", "audit.interval="+tt.interval)
		rule, ok := rules["StateguardAuditNotRunning"]
		if ok != (tt.want != "") || !strings.Contains(rule.Expr, tt.want) {
			t.Errorf("audit.interval=%s: StateguardAuditNotRunning rendered %v, expr %q, want %q", tt.interval, ok, rule.Expr, tt.want)
		}
	}
}

// exportedMetrics are the metrics that the alerts and the dashboard may
// query: what stateguard's /metrics serves (its own, controller-runtime's
// webhook metrics, the Go and process collectors), Prometheus's up, and
// kube-state-metrics' series of the Deployment, which are external: they
// exist only where kube-state-metrics runs. A name ending in * is a prefix.
var exportedMetrics = []string{
	"stateguard_admission_decisions_total",
	"stateguard_audit_violations",
	"stateguard_audit_last_run_timestamp_seconds",
	"stateguard_audit_last_run_duration_seconds",
	"stateguard_certificate_ready",
	"stateguard_certificate_expiry_timestamp_seconds",
	"stateguard_serving_certificate_expiry_timestamp_seconds",
	"stateguard_config_reload_errors_total",
	"controller_runtime_webhook_latency_seconds_bucket",
	"controller_runtime_webhook_latency_seconds_sum",
	"controller_runtime_webhook_latency_seconds_count",
	"controller_runtime_webhook_requests_total",
	"controller_runtime_webhook_requests_in_flight",
	"process_*",
	"go_*",
	"up",                // Prometheus's, per target
	"kube_deployment_*", // external: kube-state-metrics
}

func exported(name string) bool {
	return slices.ContainsFunc(exportedMetrics, func(m string) bool {
		prefix, isPrefix := strings.CutSuffix(m, "*")
		return name == m || isPrefix && strings.HasPrefix(name, prefix)
	})
}

// grafanaVariables are replaced by durations before a query is parsed: in a
// range they are not PromQL. $job needs nothing, being inside a string.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames parses expr and returns the metric names it selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: %q selects series without naming a metric", where, expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestQueriedMetricsAreExported: every metric that an alert or a dashboard
// panel queries is one stateguard exports (or listed as external), so that a
// renamed metric cannot leave an alert that never fires or an empty panel;
// and each of stateguard's own metrics is on the dashboard.
func TestQueriedMetricsAreExported(t *testing.T) {
	check := func(where, expr string) []string {
		names := metricNames(t, where, expr)
		for _, name := range names {
			if !exported(name) {
				t.Errorf("%s queries %s, which stateguard does not export (exportedMetrics)", where, name)
			}
		}
		return names
	}
	_, rules := alertRules(t, withCertManager...)
	for name, rule := range rules {
		check("alert "+name, rule.Expr)
	}
	data, err := os.ReadFile(filepath.Join("dashboards", "stateguard.json"))
	if err != nil {
		t.Fatal(err)
	}
	onDashboard := map[string]bool{}
	for _, p := range readDashboard(t, data) {
		for _, target := range p.Targets {
			for _, name := range check("dashboard panel "+p.Title, target.Expr) {
				onDashboard[name] = true
			}
		}
	}
	for _, m := range exportedMetrics {
		if strings.HasPrefix(m, "stateguard_") && !onDashboard[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

// TestExportedMetricsAreTheServers holds exportedMetrics to the server's
// code: every stateguard_ metric listed is declared there, and every one
// declared there is listed, so a renamed metric fails here before a
// dashboard or an alert goes blank.
func TestExportedMetricsAreTheServers(t *testing.T) {
	declared := regexp.MustCompile(`Name:\s+"(stateguard_[a-z_]+)"`)
	var inCode []string
	for _, dir := range []string{"../../webhook", "../../audit", "../../internal/server"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range declared.FindAllSubmatch(data, -1) {
				inCode = append(inCode, string(m[1]))
			}
		}
	}
	var listed []string
	for _, m := range exportedMetrics {
		if strings.HasPrefix(m, "stateguard_") {
			listed = append(listed, m)
		}
	}
	if diff := cmp.Diff(listed, inCode, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("stateguard_ metrics (-exportedMetrics +declared in the server's code):\n%s", diff)
	}
}

// audit.policyReports.passResults reaches the server's flag, on by default.
func TestPolicyReportPassResults(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "--policy-report-pass-results=true"},
		{[]string{"--set", "audit.policyReports.passResults=false"}, "--policy-report-pass-results=false"},
	} {
		var d appsv1.Deployment
		render(t, tt.args...).get(t, "Deployment/sg-stateguard", &d)
		if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, tt.want) {
			t.Errorf("%v: args %q, want %s", tt.args, args, tt.want)
		}
	}
}

// TestAlertsFire evaluates each alert's expression with Prometheus's own
// query engine on the series a healthy stateguard exports (no alert
// returns anything), and on the same series with one fault each (exactly
// that alert returns something).
func TestAlertsFire(t *testing.T) {
	_, rules := alertRules(t) // audit.interval 5m: the audit alert's threshold is 15 minutes
	at := func(name, labels string) string {
		return name + `{job="sg-stateguard-metrics",namespace="stateguard-system"` + labels + `}`
	}
	available := `kube_deployment_status_replicas_available{namespace="stateguard-system",deployment="sg-stateguard"}`
	// Each series: a sample a minute for 40 minutes, from a start value by a step.
	healthy := map[string]minuteSeries{
		"allowed":      {at("stateguard_admission_decisions_total", `,action="allow",mode="enforce"`), 0, 100},
		"errors":       {at("stateguard_admission_decisions_total", `,action="error",mode="enforce"`), 0, 0},
		"requests":     {at("controller_runtime_webhook_requests_total", `,code="200",webhook="/validate-apps-v1-statefulset"`), 0, 100},
		"available":    {available, 2, 0},
		"expiry":       {at("stateguard_serving_certificate_expiry_timestamp_seconds", ""), 1e7, 0}, // in 115 days
		"notServedYet": {at("stateguard_serving_certificate_expiry_timestamp_seconds", `,pod="starting"`), 0, 0},
		"ready":        {at("stateguard_certificate_ready", ""), 1, 0},
		"reloads":      {at("stateguard_config_reload_errors_total", ""), 0, 0},
		"lastAudit":    {at("stateguard_audit_last_run_timestamp_seconds", ""), 0, 60}, // a pass every minute
		"processStart": {at("process_start_time_seconds", ""), 0, 0},
	}
	faults := map[string]map[string]minuteSeries{
		"StateguardWebhookErrors":       {"errors": {at("stateguard_admission_decisions_total", `,action="error",mode="enforce"`), 0, 10}},
		"StateguardNoReadyReplicas":     {"available": {available, 0, 0}},
		"StateguardCertificateExpiring": {"expiry": {at("stateguard_serving_certificate_expiry_timestamp_seconds", ""), 30*60 + 5*86400, 0}},
		"StateguardCertificateNotReady": {"ready": {at("stateguard_certificate_ready", ""), 0, 0}},
		"StateguardConfigReloadFailing": {"reloads": {at("stateguard_config_reload_errors_total", ""), 0, 1}},
		"StateguardAuditNotRunning":     {"lastAudit": {at("stateguard_audit_last_run_timestamp_seconds", ""), 0, 0}}, // stuck since the first pass
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	evaluate := func(series map[string]minuteSeries) []string {
		t.Helper()
		store := seriesStore(t, series)
		var firing []string
		for name, rule := range rules {
			q, err := engine.NewInstantQuery(context.Background(), store, nil, rule.Expr, time.Unix(30*60, 0))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			v, err := q.Exec(context.Background()).Vector()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(v) > 0 {
				firing = append(firing, name)
			}
			q.Close()
		}
		slices.Sort(firing)
		return firing
	}
	if firing := evaluate(healthy); len(firing) > 0 {
		t.Errorf("healthy series fire %v", firing)
	}
	for alert, fault := range faults {
		series := maps.Clone(healthy)
		maps.Copy(series, fault)
		if diff := cmp.Diff([]string{alert}, evaluate(series)); diff != "" {
			t.Errorf("with the fault for %s, firing (-want +got):\n%s", alert, diff)
		}
	}
	// A leader that never finished a pass: no last run at all.
	series := maps.Clone(healthy)
	delete(series, "lastAudit")
	if diff := cmp.Diff([]string{"StateguardAuditNotRunning"}, evaluate(series)); diff != "" {
		t.Errorf("with no audit pass ever, firing (-want +got):\n%s", diff)
	}
	if len(faults) != len(rules) {
		t.Errorf("%d faults for %d alerts: every alert needs one", len(faults), len(rules))
	}
}

// minuteSeries is a series with a sample a minute for 40 minutes.
type minuteSeries struct {
	metric      string // as PromQL writes it: name{label="value"}
	start, step float64
}

// seriesStore holds series in memory for Prometheus's query engine.
func seriesStore(t *testing.T, series map[string]minuteSeries) storage.Queryable {
	t.Helper()
	var all []storage.Series
	for _, s := range series {
		lset, err := parser.NewParser(parser.Options{}).ParseMetric(s.metric)
		if err != nil {
			t.Fatalf("%s: %v", s.metric, err)
		}
		var samples []chunks.Sample
		for m := range 41 {
			samples = append(samples, floatSample{t: int64(m) * 60000, f: s.start + float64(m)*s.step})
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, matchers ...*promlabels.Matcher) storage.SeriesSet {
			var matched []storage.Series
			for _, s := range all {
				if !slices.ContainsFunc(matchers, func(m *promlabels.Matcher) bool { return !m.Matches(s.Labels().Get(m.Name)) }) {
					matched = append(matched, s)
				}
			}
			return &listSeriesSet{series: matched, next: -1}
		},
	}}
}

type listSeriesSet struct {
	series []storage.Series
	next   int
}

func (s *listSeriesSet) Next() bool                        { s.next++; return s.next < len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.next] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
