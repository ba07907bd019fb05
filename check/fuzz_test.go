package check

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// FuzzCheckInput feeds arbitrary bytes through the whole input path of
// `stateguard check` (split, decode, index, judge, print) three ways: as a
// manifest stream, as a Helm chart's template and values, and as a
// kustomization with its resource. No input may panic, and every document
// ends up an object, a note or a named error.
func FuzzCheckInput(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/*/*.yaml")
	more, _ := filepath.Glob("../examples/*/*/*.yaml")
	for _, s := range append(seeds, more...) {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("---\n--- {a: 1}\n---\nkind: List\napiVersion: v1\nitems: [{kind: Service}]\n"))
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":3}}`))
	f.Add([]byte("resources: [resource.yaml]\nnamespace: shop\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: {{ .Release.Name }}}\n{{ if .Values.x }}spec: {}{{ end }}\n"))
	eng := engine.New(config.Default().Settings())
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		write := func(name string, data []byte) {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("chart/Chart.yaml", []byte("apiVersion: v2\nname: fuzz\nversion: 0.1.0\n"))
		write("chart/templates/fuzz.yaml", data)
		write("values/values.yaml", data)
		write("kustomize/kustomization.yaml", data)
		write("kustomize/resource.yaml", data)

		r := newReader(context.Background(), ReadOptions{Namespace: "default", Chart: ChartOptions{ReleaseName: "fuzz"}})
		r.stream("fuzz", bytes.NewReader(data))
		r.chart(filepath.Join(dir, "chart"))
		r.opts.Chart.ValuesFiles = []string{filepath.Join(dir, "values", "values.yaml")}
		write("chart/templates/fuzz.yaml", []byte("{{ toYaml .Values }}\n"))
		r.chart(filepath.Join(dir, "chart"))
		r.kustomization(filepath.Join(dir, "kustomize"))
		in := r.finish()
		rep, _, err := batch.Judge(context.Background(), eng, in.Objects)
		if err != nil {
			t.Fatalf("judging with in-memory lookups failed: %v", err)
		}
		for _, e := range in.Errors {
			if e.Source == "" || e.Err == nil {
				t.Fatalf("an error that names no source: %#v", e)
			}
		}
		for _, o := range in.Objects {
			if o.Source == "" || o.Line < 0 {
				t.Fatalf("an object without its source: %#v", o)
			}
		}
		for _, format := range report.Formats {
			if err := rep.Write(io.Discard, format, report.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if code := rep.ExitCode(); code != report.ExitOK && code != report.ExitDenied {
			t.Fatalf("exit status %d", code)
		}
	})
}
