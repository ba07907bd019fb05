package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"
)

// chartFiles is a chart whose StatefulSet names a Service only when
// headless=true renders it, and a hook that is a StatefulSet too.
var chartFiles = map[string]string{
	"db/Chart.yaml":  "apiVersion: v2\nname: db\nversion: 0.1.0\n",
	"db/values.yaml": "headless: false\nreplicas: 1\n",
	"db/templates/statefulset.yaml": `# the database
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .Release.Name }}-db
  namespace: {{ .Release.Namespace }}
spec:
  serviceName: {{ .Release.Name }}-db
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres, volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]}]}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]
`,
	"db/templates/service.yaml": `{{- if .Values.headless }}
apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}-db}
spec: {clusterIP: None, selector: {app: db}}
{{- end }}
`,
	"db/templates/NOTES.txt": "installed {{ .Release.Name }}\n",
}

// kustomizeFiles is a base and an overlay whose patch alone would look
// like a StatefulSet without its Service.
var kustomizeFiles = map[string]string{
	"kustomize/base/kustomization.yaml": "resources: [service.yaml, statefulset.yaml]\n",
	"kustomize/base/service.yaml":       "apiVersion: v1\nkind: Service\nmetadata: {name: cache}\nspec: {clusterIP: None, selector: {app: cache}}\n",
	"kustomize/base/statefulset.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: cache-config}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache}
spec:
  serviceName: cache-headless
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: c, image: example.com/cache}]}
`,
	"kustomize/overlays/prod/kustomization.yaml": "resources: [../../base]\nnamespace: prod\npatches: [{path: replicas.yaml}]\n",
	"kustomize/overlays/prod/replicas.yaml":      "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: cache}\nspec: {replicas: 3}\n",
}

// mixedTree is a repository as CI checks it out: manifests, a chart, a
// kustomization, and YAML files that are not Kubernetes objects.
func mixedTree(t *testing.T) string {
	tree := map[string]string{
		"manifests/claim.yaml":          rwoClaim,
		"manifests/web.yaml":            "# the storefront\n---\n" + threeReplicas,
		"docker-compose.yml":            "services:\n  web: {image: nginx}\n",
		"ci/values-prod.yaml":           "replicas: 3\n",
		"ci/renovate.json":              `{"extends": ["config:base"]}`,
		"ci/.hidden/broken.yaml":        "kind: [",
		"kustomize/overlays/README.md":  "# overlays",
		"manifests/not-a-manifest.yaml": "just: text\n",
	}
	for _, more := range []map[string]string{chartFiles, kustomizeFiles} {
		for k, v := range more {
			tree[k] = v
		}
	}
	return files(t, tree)
}

// The mixed repository: each object is named by the file it came from and
// its line; what is not Kubernetes is named on stderr and passes.
func TestMixedDirectory(t *testing.T) {
	dir := mixedTree(t)
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", ".", "-o", "json")
	var got []string
	for _, r := range results(t, stdout) {
		got = append(got, fmt.Sprintf("%s:%d %s %s/%s %s %s", r.Source, r.Line, r.Kind, r.Namespace, r.Name, r.Rule, r.Action))
	}
	want := []string{
		// The chart, rendered as helm template would (release-name, -n default).
		"db/templates/statefulset.yaml#0:2 StatefulSet default/release-name-db statefulset-headless-service deny",
		// The base and the overlay, each pointing at the resource file's document.
		"kustomize/base/statefulset.yaml#1:5 StatefulSet default/cache statefulset-headless-service deny",
		"kustomize/base/statefulset.yaml#1:5 StatefulSet prod/cache statefulset-headless-service deny",
		"manifests/web.yaml#0:3 Deployment shop/web deployment-shared-rwo-pvc deny",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s\nstderr:\n%s", diff, stderr)
	}
	if exit != 1 {
		t.Errorf("exit status %d, want 1", exit)
	}
	wantNotes := []string{
		"note: ci/renovate.json: skipped: no Kubernetes objects (no document has apiVersion and kind)",
		"note: ci/values-prod.yaml: skipped: no Kubernetes objects (no document has apiVersion and kind)",
		"note: docker-compose.yml: skipped: a docker-compose.yml file, not Kubernetes manifests",
		"note: manifests/not-a-manifest.yaml: skipped: no Kubernetes objects (no document has apiVersion and kind)",
	}
	if diff := cmp.Diff(wantNotes, strings.Split(strings.TrimSpace(stderr), "\n")); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}

	// --strict: the files that are no manifests are errors.
	_, stderr, exit = runCLI(t, dir, "", "check", "-f", ".", "--strict", "-o", "json")
	if exit != 2 || !strings.Contains(stderr, "error: ci/values-prod.yaml#0: document at line 1: not a Kubernetes object: kind is missing") ||
		!strings.Contains(stderr, "error: docker-compose.yml: a docker-compose.yml file, not Kubernetes manifests") {
		t.Errorf("--strict: exit %d, stderr:\n%s", exit, stderr)
	}
}

func TestChartFlags(t *testing.T) {
	dir := files(t, chartFiles)
	values := filepath.Join(dir, "headless.yaml")
	if err := os.WriteFile(values, []byte("headless: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{name: "defaults", args: nil, want: []string{"db/templates/statefulset.yaml#0 StatefulSet default/release-name-db statefulset-headless-service deny spec.serviceName"}},
		{name: "release name and namespace", args: []string{"--release-name", "orders", "-n", "shop"},
			want: []string{"db/templates/statefulset.yaml#0 StatefulSet shop/orders-db statefulset-headless-service deny spec.serviceName"}},
		{name: "a values file renders the Service", args: []string{"--values", values}, want: nil},
		{name: "--set renders the Service", args: []string{"--set", "headless=true"}, want: nil},
		// "false" as a string is not empty, so if renders the Service.
		{name: "--set-string sets a string", args: []string{"--set-string", "headless=false"}, want: nil},
		{name: "--set sets a bool", args: []string{"--set", "headless=false"},
			want: []string{"db/templates/statefulset.yaml#0 StatefulSet default/release-name-db statefulset-headless-service deny spec.serviceName"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, _ := runCLI(t, dir, "", append([]string{"check", "-f", "db", "-o", "json"}, tt.args...)...)
			if diff := cmp.Diff(tt.want, brief(results(t, stdout))); diff != "" {
				t.Errorf("(-want +got):\n%s\nstderr: %s", diff, stderr)
			}
		})
	}

	// A packaged chart (helm package) renders as its directory does.
	archive := filepath.Join(dir, "db-0.1.0.tgz")
	writeChartArchive(t, archive, chartFiles)
	stdout, stderr, _ := runCLI(t, dir, "", "check", "-f", archive, "-o", "json")
	want := []string{archive + "/templates/statefulset.yaml#0 StatefulSet default/release-name-db statefulset-headless-service deny spec.serviceName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" {
		t.Errorf("a packaged chart (-want +got):\n%s\nstderr: %s", diff, stderr)
	}

	// A library chart renders nothing on its own: a note, not an error.
	library := files(t, map[string]string{"lib/Chart.yaml": "apiVersion: v2\nname: lib\ntype: library\nversion: 0.1.0\n", "lib/templates/_helpers.tpl": "{{- define \"lib.name\" }}x{{ end }}\n", "web.yaml": threeReplicas})
	_, stderr, exit := runCLI(t, library, "", "check", "-f", ".")
	if exit != 0 || !strings.Contains(stderr, "note: lib: skipped: a library chart, which renders nothing on its own") {
		t.Errorf("a library chart: exit %d, stderr %q", exit, stderr)
	}

	// A chart that cannot be rendered is named, with helm's reason.
	broken := files(t, map[string]string{"bad/Chart.yaml": "apiVersion: v2\nname: bad\nversion: 0.1.0\n", "bad/templates/x.yaml": "{{ .Values.missing.field }}\n"})
	_, stderr, exit = runCLI(t, broken, "", "check", "-f", "bad")
	if exit != 2 || !strings.Contains(stderr, "error: bad: rendering the Helm chart: ") || !strings.Contains(stderr, "nil pointer evaluating interface {}.field") {
		t.Errorf("a broken chart: exit %d, stderr %q", exit, stderr)
	}
}

func TestKustomizeFlag(t *testing.T) {
	dir := files(t, kustomizeFiles)
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-k", "kustomize/overlays/prod", "-o", "json")
	want := []string{"kustomize/base/statefulset.yaml#1 StatefulSet prod/cache statefulset-headless-service deny spec.serviceName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" || exit != 1 {
		t.Errorf("exit %d (-want +got):\n%s\nstderr: %s", exit, diff, stderr)
	}
	_, stderr, exit = runCLI(t, dir, "", "check", "-k", "kustomize/overlays")
	if exit != 2 || !strings.Contains(stderr, "error: kustomize/overlays: no kustomization.yaml, kustomization.yml or Kustomization in the directory") {
		t.Errorf("-k without a kustomization: exit %d, stderr %q", exit, stderr)
	}
}

// schemaDir holds the published schemas the outputs are validated
// against; `make schemas` fetches them (make unit does).
func schemaDir(t *testing.T) string {
	dir := os.Getenv("STATEGUARD_SCHEMAS")
	if dir == "" {
		t.Fatal("STATEGUARD_SCHEMAS is not set: run make schemas (make unit and make test do)")
	}
	return dir
}

func TestSARIFOutput(t *testing.T) {
	f, err := os.Open(filepath.Join(schemaDir(t), "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif-schema-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := mixedTree(t)
	if err := os.WriteFile(filepath.Join(dir, "manifests", "broken.yaml"), []byte("apiVersion: v1\nkind: Service\nmetadata: {name: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", ".", "-o", "sarif")
	if exit != 2 {
		t.Errorf("exit %d, want 2 (a broken file); stderr:\n%s", exit, stderr)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("the SARIF log does not match the SARIF 2.1.0 schema: %v\n%s", err, stdout)
	}
	var log struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID   string `json:"id"`
						Help struct{ Text string }
					}
				}
			}
			Invocations []struct {
				ExecutionSuccessful        bool
				ToolExecutionNotifications []struct{ Message struct{ Text string } }
			}
			Results []struct {
				RuleID    string
				RuleIndex int
				Level     string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if len(run.Tool.Driver.Rules) != 7 {
		t.Errorf("%d rules, want one per rule ID (7)", len(run.Tool.Driver.Rules))
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.Help.Text == "" {
			t.Errorf("rule %s has no help text", r.ID)
		}
	}
	var got []string
	for _, r := range run.Results {
		loc := r.Locations[0].PhysicalLocation
		got = append(got, fmt.Sprintf("%s:%d %s %s", loc.ArtifactLocation.URI, loc.Region.StartLine, r.RuleID, r.Level))
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result of %s points at rule %d", r.RuleID, r.RuleIndex)
		}
	}
	want := []string{
		"db/templates/statefulset.yaml:2 statefulset-headless-service error",
		"kustomize/base/statefulset.yaml:5 statefulset-headless-service error",
		"kustomize/base/statefulset.yaml:5 statefulset-headless-service error",
		"manifests/web.yaml:3 deployment-shared-rwo-pvc error",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	inv := run.Invocations[0]
	if inv.ExecutionSuccessful || len(inv.ToolExecutionNotifications) != 1 || !strings.Contains(inv.ToolExecutionNotifications[0].Message.Text, "line 3") {
		t.Errorf("the unreadable file is not the invocation's notification: %+v", inv)
	}
}

func TestJUnitOutput(t *testing.T) {
	xsd := filepath.Join(schemaDir(t), "junit-4.xsd")
	dir := mixedTree(t)
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", ".", "-o", "junit", "--fail-on", "warn")
	if exit != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", exit, stderr)
	}
	report := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(report, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("xmllint", "--noout", "--nonet", "--schema", xsd, report).CombinedOutput(); err != nil {
		t.Fatalf("xmllint: the JUnit report does not match junit-4.xsd: %v\n%s\n%s", err, out, stdout)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suite    []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failures  []struct {
					Type string `xml:"type,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(stdout), &suites); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range suites.Suite[0].Cases {
		line := c.Classname + " " + c.Name
		for _, f := range c.Failures {
			line += " " + f.Type
		}
		got = append(got, line)
	}
	// Every judged object is a test case; a compliant one passes.
	want := []string{
		"db/templates/statefulset.yaml StatefulSet default/release-name-db deny",
		"kustomize/base/statefulset.yaml StatefulSet default/cache deny",
		"kustomize/base/statefulset.yaml StatefulSet prod/cache deny",
		"manifests/web.yaml Deployment shop/web deny",
	}
	if diff := cmp.Diff(want, got); diff != "" || suites.Tests != 4 || suites.Failures != 4 {
		t.Errorf("tests %d, failures %d; cases (-want +got):\n%s", suites.Tests, suites.Failures, diff)
	}
}

func TestGitHubOutput(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": rwoClaim + "---\n" + oneReplicaRolling + "---\n" + statefulSet})
	stdout, _, exit := runCLI(t, dir, "", "check", "-f", "in.yaml", "-o", "github")
	command := regexp.MustCompile(`^::(error|warning|notice) file=([^,]+),line=(\d+),title=([^:]+)::(.+)$`)
	var got []string
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, l := range lines[:len(lines)-1] {
		m := command.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a workflow command: %q", l)
		}
		got = append(got, strings.Join(m[1:5], " "))
	}
	want := []string{
		"warning in.yaml 6 stateguard deployment-rwo-rolling-update (warn)",
		"error in.yaml 15 stateguard statefulset-headless-service (deny)",
	}
	if diff := cmp.Diff(want, got); diff != "" || exit != 1 {
		t.Errorf("exit %d (-want +got):\n%s\n%s", exit, diff, stdout)
	}
	if last := lines[len(lines)-1]; last != "stateguard: 3 objects: 1 deny, 1 warn, 0 dryrun, 0 exempt; 0 unreadable inputs" {
		t.Errorf("summary %q", last)
	}
}

func TestRuleSelectionAndFailOn(t *testing.T) {
	dir := files(t, map[string]string{"in.yaml": rwoClaim + "---\n" + oneReplicaRolling + "---\n" + statefulSet})
	for _, tt := range []struct {
		args     []string
		want     []string
		wantExit int
	}{
		{args: nil, wantExit: 1, want: []string{"deployment-rwo-rolling-update warn", "statefulset-headless-service deny"}},
		{args: []string{"--skip-rules", "statefulset-headless-service"}, wantExit: 0, want: []string{"deployment-rwo-rolling-update warn"}},
		{args: []string{"--skip-rules", "statefulset-headless-service", "--fail-on", "warn"}, wantExit: 1, want: []string{"deployment-rwo-rolling-update warn"}},
		{args: []string{"--rules", "statefulset-headless-service,deployment-shared-rwo-pvc"}, wantExit: 1, want: []string{"statefulset-headless-service deny"}},
		{args: []string{"--rules", "deployment-shared-rwo-pvc"}, wantExit: 0, want: nil},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, exit := runCLI(t, dir, "", append([]string{"check", "-f", "in.yaml", "-o", "json"}, tt.args...)...)
			var got []string
			for _, r := range results(t, stdout) {
				got = append(got, r.Rule+" "+r.Action)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || exit != tt.wantExit {
				t.Errorf("exit %d, want %d (-want +got):\n%s\nstderr: %s", exit, tt.wantExit, diff, stderr)
			}
		})
	}
	for _, tt := range []struct{ args []string }{
		{[]string{"--rules", "no-such-rule"}},
		{[]string{"--skip-rules", "statefulset-headless-service,typo"}},
		{[]string{"--fail-on", "dryrun"}},
		{[]string{"--max-file-size", "lots"}},
	} {
		_, stderr, exit := runCLI(t, dir, "", append([]string{"check", "-f", "in.yaml"}, tt.args...)...)
		if exit != 2 || !strings.Contains(stderr, "Usage: stateguard check") {
			t.Errorf("%v: exit %d, want 2 with the usage; stderr %q", tt.args, exit, stderr)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	for _, args := range [][]string{{"version", "-o", "json"}, {"--version", "-o", "json"}} {
		stdout, _, exit := runCLI(t, "", "", args...)
		var v map[string]string
		if err := json.Unmarshal([]byte(stdout), &v); err != nil || exit != 0 || v["version"] == "" || !strings.HasPrefix(v["goVersion"], "go") || v["catalogue"] == "" {
			t.Errorf("%v printed %q (exit %d)", args, stdout, exit)
		}
	}
}

func TestEmptyAndMissingInput(t *testing.T) {
	dir := files(t, map[string]string{"empty.yaml": "# nothing yet\n", "values.yaml": "a: 1\n"})
	for _, tt := range []struct {
		args       []string
		wantStdout string
		wantStderr string
	}{
		{[]string{"-f", "empty.yaml"}, "", "error: no Kubernetes objects in the input: nothing was judged"},
		{[]string{"-f", "values.yaml"}, "", "error: no Kubernetes objects in the input"},
		{[]string{"-f", "-"}, "", "error: no Kubernetes objects in the input"},
		{[]string{"-f", "missing.yaml"}, "1 input could not be read (see the errors above); no violations in the 0 objects read\n", "error: missing.yaml: no such file or directory"},
	} {
		stdout, stderr, exit := runCLI(t, dir, "", append([]string{"check"}, tt.args...)...)
		if exit != 2 || stdout != tt.wantStdout || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tt.args, exit, stdout, stderr)
		}
	}
}

// Inputs that would hang or exhaust a naive reader: each is named, and the
// rest of the directory is still judged.
func TestBoundedInput(t *testing.T) {
	dir := files(t, map[string]string{"manifests/web.yaml": threeReplicas, "manifests/claim.yaml": rwoClaim})
	if err := syscall.Mkfifo(filepath.Join(dir, "manifests", "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "manifests", "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, exit := runCLI(t, dir, "", "check", "-f", "manifests", "-o", "json")
	want := []string{"manifests/web.yaml#0 Deployment shop/web deployment-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}
	if diff := cmp.Diff(want, brief(results(t, stdout))); diff != "" || exit != 1 {
		t.Errorf("exit %d (-want +got):\n%s\nstderr: %s", exit, diff, stderr)
	}
	for _, note := range []string{"note: manifests/fifo.yaml: skipped: a FIFO, not a regular file", "note: manifests/zero.yaml: skipped: a device, not a regular file"} {
		if !strings.Contains(stderr, note) {
			t.Errorf("stderr %q does not contain %q", stderr, note)
		}
	}
	// Named on the command line, a device is an error.
	_, stderr, exit = runCLI(t, dir, "", "check", "-f", "manifests/zero.yaml")
	if exit != 2 || !strings.Contains(stderr, "error: manifests/zero.yaml: a device, not a regular file") {
		t.Errorf("-f /dev/zero: exit %d, stderr %q", exit, stderr)
	}
	// Over the size limit: refused by name; standard input is cut at the limit.
	_, stderr, exit = runCLI(t, dir, "", "check", "-f", "manifests/web.yaml", "--max-file-size", "100")
	if exit != 2 || !strings.Contains(stderr, "error: manifests/web.yaml: 307 bytes, larger than 100 bytes (--max-file-size)") {
		t.Errorf("a file over the limit: exit %d, stderr %q", exit, stderr)
	}
	_, stderr, exit = runCLI(t, dir, threeReplicas, "check", "-f", "-", "--max-file-size", "100", "-o", "json")
	if exit != 2 || !strings.Contains(stderr, "error: stdin: larger than 100 bytes (--max-file-size): not judged") {
		t.Errorf("stdin over the limit: exit %d, stderr %q", exit, stderr)
	}
}

// An unreadable directory is named and the rest is judged. Root reads
// everything, so the binary runs as nobody.
func TestUnreadableDirectory(t *testing.T) {
	dir := files(t, map[string]string{"manifests/a/web.yaml": threeReplicas, "manifests/b/secret/claim.yaml": rwoClaim})
	for _, p := range []string{filepath.Dir(dir), dir, filepath.Dir(binary)} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "manifests", "b", "secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "check", "-f", "manifests", "-o", "json")
	cmd.Dir = dir
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// The claim went unread, so the Deployment's claim is missing: a warning.
	want := []string{"manifests/a/web.yaml#0 Deployment shop/web deployment-shared-rwo-pvc warn spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}
	if diff := cmp.Diff(want, brief(results(t, stdout.String()))); diff != "" {
		t.Errorf("(-want +got):\n%s\nstderr: %s", diff, stderr.String())
	}
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(stderr.String(), "error: manifests/b/secret: permission denied") {
		t.Errorf("exit %v, stderr %q", err, stderr.String())
	}
}

// SIGINT and SIGTERM end a check at once, with the shell's exit statuses,
// even while it waits on a pipe no one writes.
func TestSignals(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "stream.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		cmd := exec.Command(binary, "check", "-f", fifo)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the binary is blocked opening the FIFO
		sent := time.Now()
		if err := cmd.Process.Signal(tt.sig); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != tt.want || time.Since(sent) > 5*time.Second {
			t.Errorf("%v: exit %d after %v, want %d at once; stderr %q", tt.sig, code, time.Since(sent), tt.want, stderr.String())
		}
	}
}

// A 100 MB input (large ConfigMaps and the workloads among them) is read
// document by document: peak memory stays far below the input's size.
func TestLargeInputMemory(t *testing.T) {
	const inputSize, bound = 100 << 20, 150 << 20
	path := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	blob := strings.Repeat("    "+strings.Repeat("x", 96)+"\n", 500)
	written := 0
	for i := 0; written < inputSize; i++ {
		n, err := fmt.Fprintf(f, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: blob-%d}\ndata:\n  blob: |\n%s---\n", i, blob)
		if err != nil {
			t.Fatal(err)
		}
		written += n
	}
	fmt.Fprint(f, rwoClaim+"---\n"+threeReplicas)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "check", "-f", path, "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 || len(results(t, stdout.String())) != 1 {
		t.Fatalf("exit %d, want 1 for the Deployment; stderr %q", code, stderr.String())
	}
	peak := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KiB on Linux
	t.Logf("%d MiB of input, peak RSS %d MiB", written>>20, peak>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB, want at most %d MiB", peak>>20, bound>>20)
	}
}

// The pre-commit hook and the example workflow run commands that work:
// each is run here on a tree with a violation, as the hook or the step would.
func TestCIDefinitions(t *testing.T) {
	dir := files(t, map[string]string{"deploy/web.yaml": rwoClaim + "---\n" + threeReplicas, "deploy/values.yaml": "replicas: 3\n"})

	var hooks []struct {
		ID, Entry, Language string
		Args                []string
		PassFilenames       *bool `json:"pass_filenames"`
	}
	readYAML(t, "../../.pre-commit-hooks.yaml", &hooks)
	if len(hooks) != 1 || hooks[0].PassFilenames == nil || *hooks[0].PassFilenames {
		t.Fatalf("want one hook that checks the whole tree (pass_filenames: false): %+v", hooks)
	}
	args := append(strings.Fields(hooks[0].Entry)[1:], hooks[0].Args...)
	if _, stderr, exit := runCLI(t, dir, "", args...); exit != 1 || !strings.Contains(stderr, "note: deploy/values.yaml: skipped") {
		t.Errorf("the hook %v: exit %d, want 1; stderr %q", args, exit, stderr)
	}

	var workflow struct {
		Jobs map[string]struct {
			Steps []struct{ Run string }
		}
	}
	readYAML(t, "../../examples/ci/github-actions.yaml", &workflow)
	var ran int
	for _, step := range workflow.Jobs["check"].Steps {
		for _, line := range strings.Split(step.Run, "\n") {
			if !strings.HasPrefix(line, "stateguard check") {
				continue
			}
			// The command itself, without the shell's redirection and status handling.
			command, _, _ := strings.Cut(line, " >")
			command, _, _ = strings.Cut(command, " ||")
			stdout, stderr, exit := runCLI(t, dir, "", strings.Fields(command)[1:]...)
			if exit != 1 || stdout == "" {
				t.Errorf("%q: exit %d, want 1 with a report; stderr %q", command, exit, stderr)
			}
			ran++
		}
	}
	if ran != 2 {
		t.Errorf("ran %d stateguard commands of the workflow, want 2", ran)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// Go's plugin package makes the linker keep every exported symbol (a
// binary twice the size): no dependency may link it with make build's tags.
func TestNoPluginPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", buildTags, "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(strings.Fields(string(out)), "plugin") {
		t.Errorf("stateguard links Go's plugin package with -tags %s", buildTags)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(makefile), "BUILD_TAGS := "+buildTags) {
		t.Errorf("make build does not use the tags %s", buildTags)
	}
}

// writeChartArchive packs files as helm package does: a gzipped tar of the
// chart's directory.
func writeChartArchive(t *testing.T, path string, files map[string]string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, gz, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
