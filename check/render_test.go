package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// TestRenderChartAsHelmTemplate renders charts in process and with the helm
// binary (`helm template`), and compares what each template renders,
// document by document: check judges what helm would install.
func TestRenderChartAsHelmTemplate(t *testing.T) {
	helm := os.Getenv("STATEGUARD_HELM")
	if helm == "" {
		t.Fatal("STATEGUARD_HELM is not set: run make unit, which builds helm")
	}
	withHook := t.TempDir()
	for name, content := range map[string]string{
		"Chart.yaml":                          "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies: [{name: cache, version: 0.1.0, condition: cache.enabled}]\n",
		"values.yaml":                         "replicas: 2\ncache: {enabled: true}\n",
		"templates/statefulset.yaml":          "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: {{ .Release.Name }}, namespace: {{ .Release.Namespace }}}\nspec: {replicas: {{ .Values.replicas }}, serviceName: {{ .Release.Name }}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-config}\ndata: {kube: {{ .Capabilities.KubeVersion.Version | quote }}}\n",
		"templates/hook.yaml":                 "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {{ .Release.Name }}-migrate\n  annotations: {helm.sh/hook: pre-install}\n",
		"templates/NOTES.txt":                 "installed\n",
		"charts/cache/Chart.yaml":             "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
		"charts/cache/templates/service.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}-cache}\nspec: {clusterIP: None}\n",
	} {
		p := filepath.Join(withHook, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, dir string
		opts      ChartOptions
	}{
		{"a chart with a subchart, a hook and notes", withHook, ChartOptions{}},
		{"a subchart's condition off", withHook, ChartOptions{Set: []string{"cache.enabled=false", "replicas=3"}}},
		{"stateguard's chart", "../charts/stateguard", ChartOptions{}},
		{"stateguard's chart with values", "../charts/stateguard", ChartOptions{Set: []string{"defaults.podManagementPolicy=Parallel", "replicaCount=3"}, SetString: []string{"audit.interval=10m"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.ReleaseName, tt.opts.KubeVersion = "rel", "1.36.3"
			args := []string{"template", "rel", tt.dir, "--namespace", "shop", "--kube-version", "1.36.3"}
			for _, s := range tt.opts.Set {
				args = append(args, "--set", s)
			}
			for _, s := range tt.opts.SetString {
				args = append(args, "--set-string", s)
			}
			out, err := exec.Command(helm, args...).Output()
			if err != nil {
				t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
			}
			want := map[string][]any{}
			for _, part := range strings.Split(string(out), "\n---\n# Source: ") {
				source, text, _ := strings.Cut(strings.TrimPrefix(part, "---\n# Source: "), "\n")
				_, rest, _ := strings.Cut(source, "/")
				want[rest] = append(want[rest], parseYAML(t, text))
			}
			rendered, err := renderChart(context.Background(), tt.dir, tt.opts, "shop")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]any{}
			for _, r := range rendered {
				rel, err := filepath.Rel(tt.dir, r.path)
				if err != nil {
					t.Fatal(err)
				}
				for _, doc := range strings.Split(r.text, "---\n") {
					got[filepath.ToSlash(rel)] = append(got[filepath.ToSlash(rel)], parseYAML(t, doc))
				}
			}
			if len(want) < 2 {
				t.Fatalf("helm rendered %d templates", len(want))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("per template (-helm template +check):\n%s", diff)
			}
		})
	}
}

func parseYAML(t *testing.T, text string) any {
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatalf("%v:\n%s", err, text)
	}
	return v
}
