package check

import (
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
// `stateguard check` (split, decode, index, judge, print): no input may
// panic, and every document ends up an object or a named error.
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
	eng := engine.New(config.Default().Settings())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &reader{}
		r.add("fuzz", data, nil)
		in := r.decode("default")
		rep, _, err := batch.Judge(context.Background(), eng, in.Objects)
		if err != nil {
			t.Fatalf("judging with in-memory lookups failed: %v", err)
		}
		for _, e := range in.Errors {
			if e.Source == "" || e.Err == nil {
				t.Fatalf("an error that names no source: %#v", e)
			}
		}
		for _, format := range []string{"json", "table"} {
			if err := rep.Write(io.Discard, format); err != nil {
				t.Fatal(err)
			}
		}
		if code := rep.ExitCode(); code != report.ExitOK && code != report.ExitDenied {
			t.Fatalf("exit status %d", code)
		}
	})
}
