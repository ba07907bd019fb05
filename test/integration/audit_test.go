package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// stateguard runs the binary under test with the admin kubeconfig and
// returns stdout, stderr and the exit status.
func stateguard(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(stateguardBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// auditJSON is the `-o json` output of check and audit.
type auditJSON struct {
	Results []map[string]string `json:"results"`
}

func parseAudit(t testing.TB, out string) auditJSON {
	t.Helper()
	var a auditJSON
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, out)
	}
	return a
}

// inNamespace keeps the results of one namespace as "kind name rule action source" lines.
func (a auditJSON) inNamespace(ns string) []string {
	var lines []string
	for _, r := range a.Results {
		if r["namespace"] == ns {
			lines = append(lines, strings.Join([]string{r["kind"], r["name"], r["rule"], r["action"], r["source"]}, " "))
		}
	}
	return lines
}

const exemptStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache, annotations: {stateguard.io/exempt: all}}
spec:
  serviceName: cache
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: main, image: busybox:1.36}]}
`

// TestDryRunThenAudit rolls a policy out the way the README says: in
// dryrun, violating workloads are admitted without a word to the user
// while each decision is logged and counted; `stateguard audit` then lists
// them as the enforced policy would judge them.
func TestDryRunThenAudit(t *testing.T) {
	setMainPolicy(t, "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n")
	dirty := namespace(t, nil, nil)
	clean := namespace(t, nil, nil)
	ignored := namespace(t, map[string]string{"stateguard.io/ignore": "true"}, nil)
	// Counted with the action it would have had.
	counted := `stateguard_admission_decisions_total{action="deny",kind="StatefulSet",mode="dryrun",operation="CREATE",rule="statefulset-headless-service"}`
	enforced := `stateguard_admission_decisions_total{action="deny",kind="StatefulSet",mode="enforce",operation="CREATE",rule="statefulset-headless-service"}`
	before, beforeEnforced := metricSum(t, counted), metricSum(t, enforced)

	workloads := statefulSetWithoutService("orders") + "---\n" + rwoClaim + "---\n" + deployment(3, "RollingUpdate") + "---\n" + exemptStatefulSet
	_, stderr, err := kubectlIn(workloads, "apply", "-n", dirty, "-f", "-")
	if err != nil || stderr != "" {
		t.Fatalf("kubectl apply in dryrun: err=%v, stderr=%q: want it admitted silently", err, stderr)
	}
	mustApply(t, clean, headlessService("db")+"---\n"+statefulSet("db", ""))
	mustApply(t, ignored, statefulSetWithoutService("hidden"))

	// orders, and cache: the built-in policy ignores its annotation.
	if got := metricSum(t, counted) - before; got != 2 {
		t.Errorf("%s rose by %v, want 2", counted, got)
	}
	if got := metricSum(t, enforced) - beforeEnforced; got != 0 {
		t.Errorf("%s rose by %v in dryrun, want 0: nothing was refused", enforced, got)
	}
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	for l := range strings.Lines(string(logged)) {
		if strings.Contains(l, `"dryrun violation"`) && strings.Contains(l, `"namespace":"`+dirty+`"`) && strings.Contains(l, `"name":"orders"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["rule"] != "statefulset-headless-service" || line["intendedAction"] != "deny" || !strings.Contains(fmt.Sprint(line["message"]), `Service "orders" not found`) {
		t.Errorf("the dryrun decision on orders was not logged with its rule, intended action and message: %v", line)
	}

	// The audit judges with its own policy: the built-in one, which denies.
	out, stderr, code := stateguard(t, "audit", "-A", "-o", "json")
	if code != 1 {
		t.Fatalf("audit -A: exit %d, want 1\n%s", code, stderr)
	}
	// The namespaces the chart's webhook configuration excludes, read from
	// it; the annotation the built-in policy ignores, with the policy
	// exemption that would keep it.
	contains(t, stderr, "note: skipping the namespaces ValidatingWebhookConfiguration stateguard never sends: kube-system, kube-node-lease, "+releaseNamespace+"\n",
		"warning: /apis/apps/v1/namespaces/"+dirty+"/statefulsets/cache: StatefulSet "+dirty+"/cache: annotation stateguard.io/exempt is ignored: object exemptions are off; "+
			"the platform team grants exemptions in stateguard's policy, as: exemptions: [{name: statefulset-"+dirty+"-cache, namespaces: ["+dirty+"], kinds: [StatefulSet], names: [cache], rules: [statefulset-headless-service], reason: ...}]\n")
	got := parseAudit(t, out)
	want := []string{
		"StatefulSet cache statefulset-headless-service deny /apis/apps/v1/namespaces/" + dirty + "/statefulsets/cache",
		"StatefulSet orders statefulset-headless-service deny /apis/apps/v1/namespaces/" + dirty + "/statefulsets/orders",
		"Deployment web deployment-shared-rwo-pvc deny /apis/apps/v1/namespaces/" + dirty + "/deployments/web",
	}
	if diff := cmpLines(want, got.inNamespace(dirty)); diff != "" {
		t.Errorf("audit -A results in %s: %s", dirty, diff)
	}
	if lines := got.inNamespace(ignored); len(lines) > 0 {
		t.Errorf("audit -A judged the namespace labelled stateguard.io/ignore: %q", lines)
	}
	for _, r := range got.Results {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := []string{"action", "field", "kind", "message", "name", "namespace", "rule", "source"}; !slices.Equal(keys, want) {
			t.Fatalf("a result has the keys %q, want the check shape %q", keys, want)
		}
	}

	out, stderr, code = stateguard(t, "audit", "-n", clean)
	if code != 0 || out != "no violations in 1 objects\n" {
		t.Errorf("audit -n %s (clean): exit %d, stdout %q, stderr %q: want 0 and no violations", clean, code, out, stderr)
	}
	out, _, code = stateguard(t, "audit", "-n", dirty)
	if code != 1 || !strings.Contains(out, "SOURCE") || !strings.Contains(out, "3 objects: 3 deny, 0 warn, 0 dryrun, 0 exempt") {
		t.Errorf("audit -n %s (table): exit %d, want 1 and a table\n%s", dirty, code, out)
	}
}

// cmpLines compares two sets of lines, order aside.
func cmpLines(want, got []string) string {
	w, g := slices.Clone(want), slices.Clone(got)
	slices.Sort(w)
	slices.Sort(g)
	if slices.Equal(w, g) {
		return ""
	}
	return fmt.Sprintf("\ngot:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
}

// chartClusterRole renders the chart's ClusterRole.
func chartClusterRole(t *testing.T, values ...string) string {
	t.Helper()
	args := append([]string{"template", "stateguard", "../../charts/stateguard", "--namespace", releaseNamespace, "--api-versions", "cert-manager.io/v1", "--show-only", "templates/rbac.yaml"}, values...)
	out, err := exec.Command(helmBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	for _, doc := range strings.Split(string(out), "\n---") {
		if strings.Contains(doc, "\nkind: ClusterRole\n") {
			return doc
		}
	}
	t.Fatalf("the chart renders no ClusterRole:\n%s", out)
	return ""
}

// bindServiceAccount creates a ServiceAccount bound to the ClusterRole in
// manifest, renamed, and returns the user name to impersonate.
func bindServiceAccount(t *testing.T, ns, name, clusterRole string) string {
	t.Helper()
	role := strings.Replace(clusterRole, "\n  name: stateguard\n", "\n  name: "+name+"\n", 1)
	if role == clusterRole {
		t.Fatalf("the ClusterRole is not named stateguard:\n%s", clusterRole)
	}
	if _, err := kubectl(role, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("", "create", "serviceaccount", name, "-n", ns); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("", "create", "clusterrolebinding", name, "--clusterrole", name, "--serviceaccount", ns+":"+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = kubectl("", "delete", "clusterrolebinding,clusterrole", name) })
	return "system:serviceaccount:" + ns + ":" + name
}

// TestAuditWithTheChartsClusterRole runs the audit as the chart's
// ServiceAccount would, and with a role that lacks one permission.
func TestAuditWithTheChartsClusterRole(t *testing.T) {
	ns := namespace(t, nil, nil)
	role := chartClusterRole(t)
	user := bindServiceAccount(t, ns, "audit-chart-role", role)
	out, stderr, code := stateguard(t, "audit", "-A", "--as", user, "-o", "json")
	if code == 2 || strings.Contains(stderr, "stateguard audit:") {
		t.Fatalf("audit as %s: exit %d\n%s", user, code, stderr)
	}
	parseAudit(t, out)

	// Without statefulsets: the error names the permission.
	var cr rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(role), &cr); err != nil {
		t.Fatal(err)
	}
	granted := false
	for i, rule := range cr.Rules {
		if slices.Contains(rule.Resources, "statefulsets") {
			cr.Rules[i].Resources, granted = slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == "statefulsets" }), true
		}
	}
	if !granted {
		t.Fatalf("the chart's ClusterRole grants nothing on statefulsets:\n%s", role)
	}
	short, err := yaml.Marshal(cr)
	if err != nil {
		t.Fatal(err)
	}
	user = bindServiceAccount(t, ns, "audit-short-role", string(short))
	_, stderr, code = stateguard(t, "audit", "-A", "--as", user)
	wantErr := `cannot list statefulsets.apps in all namespaces: statefulsets.apps is forbidden: User "` + user + `" cannot list resource "statefulsets" in API group "apps" at the cluster scope` +
		"\nstateguard audit needs \"list\" on statefulsets.apps in all namespaces"
	if code != 2 || !strings.Contains(stderr, wantErr) {
		t.Errorf("audit without statefulsets: exit %d, stderr:\n%s\nwant exit 2 and %q", code, stderr, wantErr)
	}
}

// extraServer is a second stateguard server beside the harness's.
type extraServer struct {
	port       int
	metricsURL string
	log        string
	pid        int
	stop       func()
}

// startAuditServer starts a server that audits every interval, electing
// its leader with a Lease in leaseNamespace, as the user of kubeconfig.
func startAuditServer(t testing.TB, kubeconfig, leaseNamespace, interval string) *extraServer {
	t.Helper()
	return startServer(t, kubeconfig, "--leader-elect", "--namespace", leaseNamespace, "--audit-interval", interval, "--zap-log-level", "debug")
}

// startServer starts a server on the harness's serving certificate, as
// the user of kubeconfig, with flags besides its ports.
func startServer(t testing.TB, kubeconfig string, flags ...string) *extraServer {
	t.Helper()
	return startServerBinary(t, serverBin, kubeconfig, flags...)
}

// startServerBinary is startServer with another stateguard binary.
func startServerBinary(t testing.TB, binary, kubeconfig string, flags ...string) *extraServer {
	t.Helper()
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	s := &extraServer{
		port:       ports[0],
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[1]),
		log:        filepath.Join(t.TempDir(), "server.log"),
	}
	log, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve",
		"--kubeconfig", kubeconfig, "--cert-dir", certDir,
		"--port", fmt.Sprint(ports[0]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2])}, flags...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	// Stopped by the test, or at its end whatever made it fail.
	s.stop = sync.OnceFunc(func() {
		cancel()
		_ = cmd.Wait()
		log.Close()
	})
	t.Cleanup(s.stop)
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), 60*time.Second); err != nil {
		s.stop()
		out, _ := os.ReadFile(s.log)
		t.Fatalf("%v; log:\n%s", err, lastLines(out, 40))
	}
	return s
}

// waitFirstPass waits until the server's first audit pass has ended.
func (s *extraServer) waitFirstPass(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for metricSumAt(t, s.metricsURL, "stateguard_audit_last_run_timestamp_seconds") == 0 {
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(s.log)
			t.Fatalf("no audit pass within 60s; log:\n%s", lastLines(out, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPasses waits until n more audit passes have ended.
func (s *extraServer) waitPasses(t testing.TB, n int) {
	t.Helper()
	last := metricSumAt(t, s.metricsURL, "stateguard_audit_last_run_timestamp_seconds")
	for seen := 0; seen < n; {
		deadline := time.Now().Add(30 * time.Second)
		for {
			now := metricSumAt(t, s.metricsURL, "stateguard_audit_last_run_timestamp_seconds")
			if now > last {
				last = now
				seen++
				break
			}
			if time.Now().After(deadline) {
				out, _ := os.ReadFile(s.log)
				t.Fatalf("no audit pass within 30s; log:\n%s", lastLines(out, 40))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// violationEvents lists the PolicyViolation Events in ns, on the object
// named name, or on any object for "".
func violationEvents(t testing.TB, ns, name string) []corev1.Event {
	t.Helper()
	selector := fields.Set{"reason": "PolicyViolation"}
	if name != "" {
		selector["involvedObject.name"] = name
	}
	list, err := clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: selector.String()})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// policyReport is the part of a wgpolicyk8s.io/v1alpha2 PolicyReport the test reads.
type policyReport struct {
	Summary map[string]int `json:"summary"`
	Results []struct {
		Policy    string `json:"policy"`
		Rule      string `json:"rule"`
		Result    string `json:"result"`
		Resources []struct {
			Kind, Name string
		} `json:"resources"`
	} `json:"results"`
}

func getPolicyReport(t *testing.T, ns string) policyReport {
	t.Helper()
	out, err := kubectl("", "get", "policyreports.wgpolicyk8s.io", "stateguard", "-n", ns, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r policyReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// asChartServiceAccount installs the chart's RBAC and ServiceAccount into
// ns, as a release there would, and returns a kubeconfig that impersonates
// that ServiceAccount.
func asChartServiceAccount(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command(helmBin, "template", "stateguard", "../../charts/stateguard", "--namespace", ns, "--api-versions", "cert-manager.io/v1",
		"--show-only", "templates/rbac.yaml", "--show-only", "templates/serviceaccount.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	if _, err := kubectl(string(out), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = kubectl("", "delete", "clusterrolebinding,clusterrole", "stateguard") })
	config, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range config.AuthInfos {
		user.Impersonate = "system:serviceaccount:" + ns + ":stateguard"
	}
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*config, file); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestBackgroundAudit runs a second server with the background audit every
// 2s and the PolicyReport CRD installed from the chart's copy, as the
// chart's ServiceAccount: its RBAC is all the audit gets.
func TestBackgroundAudit(t *testing.T) {
	if _, err := kubectl("", "apply", "--server-side", "-f", "../../charts/stateguard/files/wgpolicyk8s.io_policyreports.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("", "wait", "--for", "condition=Established", "crd/policyreports.wgpolicyk8s.io", "--timeout", "30s"); err != nil {
		t.Fatal(err)
	}
	// The namespace runs in dryrun, so the violating StatefulSet is admitted;
	// the report calls it what enforcing would: a failure.
	ns := namespace(t, nil, map[string]string{"stateguard.io/enforcement": "dryrun"})
	mustApply(t, ns, statefulSetWithoutService("ledger"))

	serviceAccount := asChartServiceAccount(t, ns)
	server := startAuditServer(t, serviceAccount, ns, "2s")
	server.waitPasses(t, 1)
	events := violationEvents(t, ns, "ledger")
	if len(events) != 1 {
		t.Fatalf("after one pass: %d PolicyViolation Events on ledger, want 1", len(events))
	}
	ev := events[0]
	if ev.Type != corev1.EventTypeWarning || ev.InvolvedObject.Kind != "StatefulSet" || ev.Source.Component != "stateguard" ||
		!strings.HasPrefix(ev.Message, `statefulset-headless-service (dryrun): spec.serviceName: Service "ledger" not found`) {
		t.Errorf("the Event: type %s, object %s, source %s, message %q", ev.Type, ev.InvolvedObject.Kind, ev.Source.Component, ev.Message)
	}
	gauge := `stateguard_audit_violations{action="dryrun",namespace="` + ns + `",rule="statefulset-headless-service"}`
	if got := metricSumAt(t, server.metricsURL, gauge); got != 1 {
		t.Errorf("%s = %v, want 1", gauge, got)
	}
	// As Policy Reporter reads it: policy stateguard, rule set, a fail, and
	// a pass for each of the StatefulSet's other three rules.
	report := getPolicyReport(t, ns)
	var results []string
	for _, r := range report.Results {
		if r.Policy != "stateguard" || len(r.Resources) != 1 || r.Resources[0].Name != "ledger" {
			t.Errorf("a result of policy %q on %+v, want stateguard on ledger", r.Policy, r.Resources)
		}
		results = append(results, r.Rule+" "+r.Result)
	}
	want := []string{"statefulset-headless-service fail", "data-directory-unmounted pass", "statefulset-emptydir-data pass", "statefulset-shared-rwo-pvc pass"}
	if diff := cmp.Diff(want, results); diff != "" || report.Summary["fail"] != 1 || report.Summary["pass"] != 3 {
		t.Errorf("the PolicyReport's summary %v, results (-want +got):\n%s", report.Summary, diff)
	}

	// Two more intervals, then a restart: still one Event.
	server.waitPasses(t, 2)
	server.stop()
	server = startAuditServer(t, serviceAccount, ns, "2s")
	server.waitPasses(t, 1)
	if events := violationEvents(t, ns, "ledger"); len(events) != 1 || events[0].Name != ev.Name || events[0].Count != 1 {
		t.Errorf("after three passes and a restart: %d Events, want the first one only, unchanged", len(events))
	}

	// The API server drops Events after its --event-ttl; the ledger
	// ConfigMap remembers, across another restart.
	if err := clientset.CoreV1().Events(ns).Delete(context.Background(), ev.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	server.stop()
	server = startAuditServer(t, serviceAccount, ns, "2s")
	defer server.stop()
	server.waitPasses(t, 1)
	if events := violationEvents(t, ns, "ledger"); len(events) != 0 {
		t.Errorf("after the Event expired and a restart: %d Events, want none recorded again", len(events))
	}

	// Fixed: the next pass clears the result and the gauge.
	mustApply(t, ns, headlessService("ledger"))
	server.waitPasses(t, 2)
	if got := metricSumAt(t, server.metricsURL, gauge); got != 0 {
		t.Errorf("after the fix, %s = %v, want no series", gauge, got)
	}
	if report := getPolicyReport(t, ns); len(report.Results) != 4 || report.Summary["fail"] != 0 || report.Summary["pass"] != 4 {
		t.Errorf("after the fix, the PolicyReport has %+v, want 4 passes", report)
	}
}
