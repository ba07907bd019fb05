package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// buildTags are the build tags of make build: without kustomize's plugin
// support, which would link Go's plugin package.
const buildTags = "kustomize_disable_go_plugin_support"

// binary is the stateguard binary built once for these tests: they run it
// the way a CI pipeline does.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stateguard-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "stateguard")
	build := exec.Command("go", "build", "-tags", buildTags, "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building stateguard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs the binary in dir with stdin and returns stdout, stderr and the exit status.
func runCLI(t *testing.T, dir, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

// files writes name → content under a new temporary directory and returns it.
func files(t *testing.T, tree map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range tree {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type result struct {
	Rule, Action, Kind, Namespace, Name, Field, Message, Source string
	Line                                                        int
}

// results decodes -o json output, checking that every result has exactly
// the spec's keys and its line, and an exempt one the exemption besides.
func results(t *testing.T, stdout string) []result {
	t.Helper()
	var raw struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if raw.Results == nil {
		t.Fatalf(`"results" is missing or null: %s`, stdout)
	}
	keys := []string{"action", "field", "kind", "line", "message", "name", "namespace", "rule", "source"}
	out := []result{}
	for _, r := range raw.Results {
		var got []string
		for k := range r {
			got = append(got, k)
		}
		want := keys
		if r["action"] == "exempt" {
			want = append(slices.Clone(keys), "exemption")
		}
		if diff := cmp.Diff(want, got, cmpSorted); diff != "" {
			t.Errorf("result keys (-want +got):\n%s", diff)
		}
		line, _ := r["line"].(float64)
		if line < 1 || line != float64(int(line)) {
			t.Errorf("line %v: want a positive integer", r["line"])
		}
		str := func(k string) string { s, _ := r[k].(string); return s }
		out = append(out, result{str("rule"), str("action"), str("kind"), str("namespace"), str("name"), str("field"), str("message"), str("source"), int(line)})
	}
	return out
}

var cmpSorted = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// brief drops messages so rows can be compared on what identifies them.
func brief(rs []result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.Join([]string{r.Source, r.Kind, r.Namespace + "/" + r.Name, r.Rule, r.Action, r.Field}, " "))
	}
	return out
}

const (
	headless = `apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {clusterIP: None, selector: {app: db}}
`
	statefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres, volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]}]}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]
`
	namespacelessStatefulSet = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres, volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]}]}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]
`
	rwoClaim = `apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: uploads, namespace: shop}
spec: {accessModes: [ReadWriteOnce]}
`
	oneReplicaRolling = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers: [{name: web, image: nginx, volumeMounts: [{name: u, mountPath: /u}]}]
      volumes: [{name: u, persistentVolumeClaim: {claimName: uploads}}]
`
	threeReplicas = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  strategy: {type: Recreate}
  template:
    spec:
      containers: [{name: web, image: nginx, volumeMounts: [{name: u, mountPath: /u}]}]
      volumes: [{name: u, persistentVolumeClaim: {claimName: uploads}}]
`
	configHead = "apiVersion: stateguard.io/v1alpha1\nkind: Config\n"
)

func TestExitStatus(t *testing.T) {
	dir := files(t, map[string]string{
		"compliant.yaml":  headless + "---\n" + statefulSet,
		"denied.yaml":     statefulSet,
		"warned.yaml":     rwoClaim + "---\n" + oneReplicaRolling,
		"bad-config.yaml": configHead + "rules:\n  deployment-shared-rwo-pvc: {acton: warn}\n",
	})
	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantStderr string // a substring
	}{
		{name: "compliant", args: []string{"check", "-f", "compliant.yaml"}, wantExit: 0},
		{name: "something at deny", args: []string{"check", "-f", "denied.yaml"}, wantExit: 1},
		{name: "only warnings", args: []string{"check", "-f", "warned.yaml"}, wantExit: 0},
		{name: "no input", args: []string{"check"}, wantExit: 2, wantStderr: "no input"},
		{name: "bad output format", args: []string{"check", "-f", "compliant.yaml", "-o", "yaml"}, wantExit: 2, wantStderr: `-o "yaml": must be one of table, json, sarif, junit, github`},
		{name: "a positional argument", args: []string{"check", "compliant.yaml"}, wantExit: 2, wantStderr: `unexpected argument "compliant.yaml": name inputs with -f`},
		{name: "an unknown flag", args: []string{"check", "--recursive", "-f", "compliant.yaml"}, wantExit: 2, wantStderr: "flag provided but not defined: -recursive"},
		{name: "an unknown command", args: []string{"lint"}, wantExit: 2, wantStderr: `unknown command "lint"`},
		{name: "no command", args: nil, wantExit: 2, wantStderr: "Usage:"},
		{name: "a missing file", args: []string{"check", "-f", "missing.yaml"}, wantExit: 2, wantStderr: "error: missing.yaml: no such file or directory"},
		{name: "a bad config names the file and the field", args: []string{"check", "-f", "compliant.yaml", "--config", "bad-config.yaml"}, wantExit: 2,
			wantStderr: `config bad-config.yaml: unknown field "rules.deployment-shared-rwo-pvc.acton"`},
		{name: "self-managed TLS needs all its names", args: []string{"serve", "--cert-secret", "sg-tls"}, wantExit: 2,
			wantStderr: "self-managed TLS needs --cert-secret, --webhook-service, --webhook-configuration and --namespace"},
		{name: "audit: -n and -A together", args: []string{"audit", "-n", "shop", "-A"}, wantExit: 2, wantStderr: "stateguard audit: -n and -A exclude each other"},
		{name: "audit: a bad output format", args: []string{"audit", "-A", "-o", "yaml"}, wantExit: 2, wantStderr: `stateguard audit: -o "yaml": must be table or json`},
		{name: "audit: a kubeconfig that does not exist", args: []string{"audit", "-A", "--kubeconfig", "missing.kubeconfig"}, wantExit: 2, wantStderr: "missing.kubeconfig"},
		{name: "audit: a bad config", args: []string{"audit", "-A", "--config", "missing.yaml"}, wantExit: 2, wantStderr: "stateguard audit: "},
		{name: "serve: an audit without a namespace for its ledger", args: []string{"serve", "--audit-interval", "5m", "--namespace", ""}, wantExit: 2, wantStderr: "--audit-interval needs --namespace"},
		{name: "serve: a negative audit interval", args: []string{"serve", "--audit-interval", "-5m"}, wantExit: 2, wantStderr: "--audit-interval -5m0s: must be positive"},
		{name: "help", args: []string{"check", "-h"}, wantExit: 0, wantStderr: "Exit status: 0 when nothing is at deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, exit := runCLI(t, dir, "", tt.args...)
			if exit != tt.wantExit {
				t.Errorf("exit status %d, want %d; stderr:\n%s", exit, tt.wantExit, stderr)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	stdout, _, exit := runCLI(t, "", "", "version")
	if exit != 0 || !regexp.MustCompile(`^stateguard \S+ go1\.\d+\S* \w+/\w+\n$`).MatchString(stdout) {
		t.Errorf("version printed %q (exit %d)", stdout, exit)
	}
}

func TestJSONShape(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": rwoClaim + "---\n" + threeReplicas + "---\n" + statefulSet})
	stdout, _, exit := runCLI(t, dir, "", "check", "-f", "in.yaml", "-o", "json")
	if exit != 1 {
		t.Errorf("exit status %d, want 1", exit)
	}
	want := []result{
		{
			Rule: "deployment-shared-rwo-pvc", Action: "deny", Kind: "Deployment", Namespace: "shop", Name: "web",
			Field: "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
			Message: `PersistentVolumeClaim "uploads" is ReadWriteOnce, but spec.replicas is 3 and every replica of Deployment "web" mounts it: ` +
				`Pods on other nodes fail with Multi-Attach errors, and Pods on one node share one writer's data: ` +
				`run 1 replica, use a ReadWriteMany claim, or run the workload as a StatefulSet with volumeClaimTemplates`,
			Source: "in.yaml#1", Line: 6,
		},
		{
			Rule: "statefulset-headless-service", Action: "deny", Kind: "StatefulSet", Namespace: "shop", Name: "db",
			Field: "spec.serviceName",
			Message: `Service "db" not found in namespace "shop", so the Pods get no stable DNS names: ` +
				`create a headless Service (clusterIP: None) named "db" whose selector matches spec.template.metadata.labels, ` +
				`or set spec.serviceName to an existing one; if the Pods need no stable DNS names, ask the platform team for an exemption from statefulset-headless-service in stateguard's policy`,
			Source: "in.yaml#2", Line: 17,
		},
	}
	if diff := cmp.Diff(want, results(t, stdout)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	dir = files(t, map[string]string{"ok.yaml": headless + "---\n" + statefulSet})
	stdout, _, exit = runCLI(t, dir, "", "check", "-f", "ok.yaml", "-o", "json")
	if exit != 0 || strings.TrimSpace(stdout) != "{\n  \"results\": []\n}" {
		t.Errorf("no violations printed %q (exit %d), want an empty results list", stdout, exit)
	}
}

func TestSources(t *testing.T) {
	list := `apiVersion: v1
kind: List
items:
- ` + strings.ReplaceAll(strings.TrimSpace(statefulSet), "\n", "\n  ") + `
- apiVersion: apps/v1
  kind: StatefulSet
  metadata: {name: cache, namespace: shop}
  spec: {serviceName: cache, template: {spec: {containers: [{name: c, image: redis}]}}}
`
	dir := files(t, map[string]string{
		"multi.yaml": "---\n# the first document\n" + rwoClaim + "---\n# only a comment\n---\n" + threeReplicas + "--- # a separator with a comment\n" + statefulSet,
		"list.yaml":  list,
		"sts.json":   `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db","namespace":"json"},"spec":{"serviceName":"db"}}`,
	})
	stdout, stderr, _ := runCLI(t, dir, "", "check", "-f", "multi.yaml", "-f", "list.yaml", "-f", "sts.json", "-o", "json")
	want := []string{
		"multi.yaml#1 Deployment shop/web deployment-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
		"multi.yaml#2 StatefulSet shop/db statefulset-headless-service deny spec.serviceName",
		"list.yaml#0 StatefulSet shop/db statefulset-headless-service deny spec.serviceName",
		"list.yaml#0 StatefulSet shop/cache statefulset-headless-service deny spec.serviceName",
		// A Redis without a volume at /data.
		"list.yaml#0 StatefulSet shop/cache data-directory-unmounted warn spec.template.spec.containers[0]",
		"sts.json#0 StatefulSet json/db statefulset-headless-service deny spec.serviceName",
	}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" {
		t.Errorf("(-want +got):\n%s\nstderr: %s", diff, stderr)
	}
}

func TestStdin(t *testing.T) {
	stdout, _, exit := runCLI(t, "", rwoClaim+"---\n"+threeReplicas, "check", "-f", "-", "-o", "json")
	want := []string{"stdin#1 Deployment shop/web deployment-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" || exit != 1 {
		t.Errorf("exit %d (-want +got):\n%s", exit, diff)
	}
}

func TestDirectories(t *testing.T) {
	dir := files(t, map[string]string{
		"manifests/b/statefulset.yml":   statefulSet,
		"manifests/a/service.yaml":      headless,
		"manifests/a/claim.json":        `{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"uploads","namespace":"shop"},"spec":{"accessModes":["ReadWriteOnce"]}}`,
		"manifests/c/web.YAML":          threeReplicas,
		"manifests/README.md":           "not a manifest: ---\nkind: [",
		"manifests/notes.txt":           "kind: [",
		"manifests/.git/config.yaml":    "kind: [",
		"manifests/c/zz-broken-ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, annotations: {stateguard.io/enforcement: warn}}\n",
	})
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", "manifests", "-o", "json")
	// The Service in a/ satisfies the StatefulSet in b/; the claim in a/ is
	// found for the Deployment in c/, whose denial the namespace in c/ caps to warn.
	want := []string{"manifests/c/web.YAML#0 Deployment shop/web deployment-shared-rwo-pvc warn spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" {
		t.Errorf("(-want +got):\n%s\nstderr: %s", diff, stderr)
	}
	if exit != 0 || stderr != "" {
		t.Errorf("exit %d, stderr %q: README.md, notes.txt and .git must be skipped", exit, stderr)
	}

	_, stderr, exit = runCLI(t, files(t, map[string]string{"docs/README.md": "# no manifests"}), "", "check", "-f", "docs")
	if exit != 2 || !strings.Contains(stderr, "docs: directory holds no *.yaml, *.yml or *.json files") {
		t.Errorf("an empty directory: exit %d, stderr %q", exit, stderr)
	}
}

func TestNamespaceFlag(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": headless + "---\n" + namespacelessStatefulSet})
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{args: nil, want: []string{"in.yaml#1 StatefulSet default/db statefulset-headless-service deny spec.serviceName"}},
		{args: []string{"-n", "shop"}, want: nil},
		{args: []string{"--namespace", "other"}, want: []string{"in.yaml#1 StatefulSet other/db statefulset-headless-service deny spec.serviceName"}},
	} {
		stdout, _, _ := runCLI(t, dir, "", append([]string{"check", "-f", "in.yaml", "-o", "json"}, tt.args...)...)
		if diff := cmp.Diff(tt.want, brief(results(t, stdout))); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tt.args, diff)
		}
	}
}

func TestConfigAndExemptions(t *testing.T) {
	exempt := strings.Replace(statefulSet, "namespace: shop}", "namespace: shop, annotations: {stateguard.io/exempt: statefulset-headless-service}}", 1)
	dir := files(t, map[string]string{
		"warned.yaml":  rwoClaim + "---\n" + oneReplicaRolling,
		"denied.yaml":  statefulSet,
		"exempt.yaml":  exempt,
		"rolling.yaml": configHead + "rules:\n  deployment-rwo-rolling-update: {action: deny}\n",
		"warn.yaml":    configHead + "enforcement: warn\n",
		"dryrun.yaml":  configHead + "enforcement: dryrun\n",
		"off.yaml":     configHead + "rules:\n  statefulset-headless-service: {action: off}\n",
		"granted.yaml": configHead + "allowObjectExemptions: true\nobjectExemptionGrantors: {groups: [platform]}\n",
		"policy.yaml":  configHead + "exemptions: [{name: db, namespaces: [shop], names: [db], rules: [statefulset-headless-service], reason: no DNS needed}]\n",
	})
	tests := []struct {
		name       string
		args       []string
		wantAction []string
		wantExit   int
		wantStderr string
	}{
		{name: "a warn rule raised to deny", args: []string{"-f", "warned.yaml", "--config", "rolling.yaml"}, wantAction: []string{"deny"}, wantExit: 1},
		{name: "enforcement warn", args: []string{"-f", "denied.yaml", "--config", "warn.yaml"}, wantAction: []string{"warn"}, wantExit: 0},
		{name: "enforcement dryrun", args: []string{"-f", "denied.yaml", "--config", "dryrun.yaml"}, wantAction: []string{"dryrun"}, wantExit: 0},
		{name: "an unquoted off", args: []string{"-f", "denied.yaml", "--config", "off.yaml"}, wantAction: nil, wantExit: 0},
		{name: "the annotation, off by default", args: []string{"-f", "exempt.yaml"}, wantAction: []string{"deny"}, wantExit: 1,
			wantStderr: "warning: exempt.yaml#0: StatefulSet shop/db: annotation stateguard.io/exempt is ignored: object exemptions are off; " +
				"the platform team grants exemptions in stateguard's policy, as: exemptions: [{name: statefulset-shop-db, namespaces: [shop], kinds: [StatefulSet], names: [db], rules: [statefulset-headless-service], reason: ...}]\n"},
		{name: "the annotation, when grantors may set it", args: []string{"-f", "exempt.yaml", "--config", "granted.yaml"}, wantAction: []string{"exempt"}, wantExit: 0},
		{name: "a policy exemption", args: []string{"-f", "denied.yaml", "--config", "policy.yaml"}, wantAction: []string{"exempt"}, wantExit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, exit := runCLI(t, dir, "", append([]string{"check", "-o", "json"}, tt.args...)...)
			var got []string
			for _, r := range results(t, stdout) {
				got = append(got, r.Action)
			}
			if diff := cmp.Diff(tt.wantAction, got); diff != "" || exit != tt.wantExit {
				t.Errorf("exit %d, want %d; actions (-want +got):\n%s\nstderr: %s", exit, tt.wantExit, diff, stderr)
			}
			if tt.wantStderr != "" && stderr != tt.wantStderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, tt.wantStderr)
			}
		})
	}
}

func TestBrokenDocumentAmongGoodOnes(t *testing.T) {
	dir := files(t, map[string]string{
		"in.yaml": rwoClaim + "---\nkind: Deployment\nmetadata: [oops\n---\n" + threeReplicas +
			"---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: x}\nspec: {replicas: three}\n",
	})
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", "in.yaml", "-o", "json")
	if exit != 2 {
		t.Errorf("exit status %d, want 2", exit)
	}
	wantErrs := "error: in.yaml#1: yaml: line 7: did not find expected ',' or ']'\n" +
		"error: in.yaml#3: document at line 20: decoding StatefulSet: json: cannot unmarshal string into Go struct field StatefulSetSpec.spec.replicas of type int32\n"
	if diff := cmp.Diff(wantErrs, stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	want := []string{"in.yaml#2 Deployment shop/web deployment-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" {
		t.Errorf("the good documents must still be judged (-want +got):\n%s", diff)
	}
}

func TestTable(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": rwoClaim + "---\n" + oneReplicaRolling + "---\n" + statefulSet, "ok.yaml": headless})
	stdout, _, exit := runCLI(t, dir, "", "check", "-f", "in.yaml")
	if exit != 1 {
		t.Errorf("exit status %d, want 1", exit)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header, two rows, a blank line and a summary; got:\n%s", stdout)
	}
	columns := regexp.MustCompile(`\s{2,}`)
	if diff := cmp.Diff([]string{"SOURCE", "OBJECT", "RULE", "ACTION", "MESSAGE"}, columns.Split(lines[0], -1)); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	row := columns.Split(lines[2], 5)
	if diff := cmp.Diff([]string{"in.yaml#2", "StatefulSet shop/db", "statefulset-headless-service", "deny"}, row[:4]); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(row[4], `spec.serviceName: Service "db" not found in namespace "shop"`) {
		t.Errorf("message column %q does not start with the field", row[4])
	}
	if lines[4] != "3 objects: 1 deny, 1 warn, 0 dryrun, 0 exempt" {
		t.Errorf("summary %q", lines[4])
	}

	stdout, _, exit = runCLI(t, dir, "", "check", "-f", "ok.yaml")
	if exit != 0 || stdout != "no violations in 1 objects\n" {
		t.Errorf("no violations: exit %d, stdout %q", exit, stdout)
	}
}

// On a terminal the table marks actions in colour, aligned as without;
// NO_COLOR, a pipe or a file turn colours off.
func TestTableColors(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": rwoClaim + "---\n" + oneReplicaRolling + "---\n" + statefulSet})
	onTerminal := func(env ...string) string {
		// script(1) runs the command on a pseudo-terminal.
		cmd := exec.Command("script", "-qec", binary+" check -f in.yaml", "/dev/null")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"TERM=xterm", "NO_COLOR="}, env...)...)
		out, _ := cmd.Output()
		return strings.ReplaceAll(string(out), "\r\n", "\n")
	}
	colored := onTerminal()
	if !strings.Contains(colored, "\x1b[31mdeny\x1b[0m") || !strings.Contains(colored, "\x1b[33mwarn\x1b[0m") {
		t.Fatalf("no colours on a terminal:\n%q", colored)
	}
	plain, _, _ := runCLI(t, dir, "", "check", "-f", "in.yaml")
	if strings.Contains(plain, "\x1b") {
		t.Errorf("colours in a pipe:\n%q", plain)
	}
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	if got := ansi.ReplaceAllString(colored, ""); got != plain {
		// Equal once stripped: the colours do not move a column.
		t.Errorf("the coloured table is not the plain one once its colours are removed:\n%s\nwant:\n%s", got, plain)
	}
	if noColor := onTerminal("NO_COLOR=1"); strings.Contains(noColor, "\x1b") {
		t.Errorf("colours with NO_COLOR set:\n%q", noColor)
	}
}
