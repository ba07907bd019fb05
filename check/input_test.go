package check

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readString reads one input named in.yaml and summarises it as
// "SOURCE:LINE KIND NAMESPACE/NAME" lines, "SOURCE: error" lines and notes.
func readString(data string, strict bool) (objects, errs, notes []string) {
	r := newReader(context.Background(), ReadOptions{Namespace: "default", Strict: strict})
	r.stream("in.yaml", strings.NewReader(data))
	in := r.finish()
	for _, o := range in.Objects {
		id := o.Source + ":" + strconv.Itoa(o.Line) + " " + o.Kind
		typed, err := o.Decode()
		if err != nil {
			panic(err)
		}
		if typed != nil {
			id += " " + typed.GetNamespace() + "/" + typed.GetName()
		}
		objects = append(objects, id)
	}
	for _, e := range in.Errors {
		errs = append(errs, e.Error())
	}
	return objects, errs, in.Notes
}

func TestReadDocuments(t *testing.T) {
	const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\n"
	tests := []struct {
		name        string
		in          string
		wantObjects []string
		wantErrors  []string
		wantNotes   []string
		strict      bool
	}{
		{
			name:        "CRLF line endings",
			in:          strings.ReplaceAll(svc+"---\n"+svc, "\n", "\r\n"),
			wantObjects: []string{"in.yaml#0:1 Service default/db", "in.yaml#1:5 Service default/db"},
		},
		{
			name:        "separators with comments, blank and comment-only chunks take no index",
			in:          "# header\n---\n\n--- # first\n" + svc + "---\n# nothing here\n---   \n" + svc,
			wantObjects: []string{"in.yaml#0:5 Service default/db", "in.yaml#1:11 Service default/db"},
		},
		{
			name:        "a document on the separator line",
			in:          "--- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n--- {apiVersion: v1, kind: Service, metadata: {name: db, namespace: shop}}\n",
			wantObjects: []string{"in.yaml#0:1 Namespace /shop", "in.yaml#1:2 Service shop/db"},
		},
		{
			name:        "a line that only starts with dashes is content",
			in:          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  banner: |\n    ---- hello\n",
			wantObjects: []string{"in.yaml#0:1 ConfigMap"},
		},
		{
			name:        "kinds stateguard does not read are kept untyped",
			in:          "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: d}\n---\napiVersion: example.com/v1\nkind: StatefulSet\nmetadata: {name: s}\n",
			wantObjects: []string{"in.yaml#0:1 DaemonSet", "in.yaml#1:5 StatefulSet"},
		},
		{
			name:      "a plain scalar is no manifest",
			in:        "just text\n",
			wantNotes: []string{"in.yaml: skipped: no Kubernetes objects (no document has apiVersion and kind)"},
		},
		{
			name:       "--strict: a plain scalar is an error",
			in:         "just text\n",
			strict:     true,
			wantErrors: []string{"in.yaml#0: document at line 1: not a Kubernetes object: want a mapping with apiVersion and kind"},
		},
		{
			name:      "values, Compose and Chart.yaml-like files are no manifests",
			in:        "replicaCount: 1\nimage: {repository: nginx}\n---\nservices:\n  web: {image: nginx}\n---\napiVersion: v2\nname: chart\n---\napiVersion: v1\nkind:\n",
			wantNotes: []string{"in.yaml: skipped: no Kubernetes objects (no document has apiVersion and kind)"},
		},
		{
			name:       "a judged kind without its apiVersion is a broken manifest, not another file",
			in:         "kind: StatefulSet\nmetadata: {name: db}\n",
			wantErrors: []string{"in.yaml#0: document at line 1: apiVersion is missing"},
		},
		{
			name:        "missing kind, apiVersion and name",
			in:          svc + "---\napiVersion: v1\nmetadata: {name: x}\n---\nkind: Service\n---\napiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\n",
			wantObjects: []string{"in.yaml#0:1 Service default/db"},
			wantErrors: []string{
				"in.yaml#1: document at line 5: not a Kubernetes object: kind is missing",
				"in.yaml#2: document at line 8: apiVersion is missing",
				"in.yaml#3: document at line 10: Service has no metadata.name",
			},
		},
		{
			name:       "a wrongly typed field is named",
			in:         "\n\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: \"three\"\n",
			wantErrors: []string{"in.yaml#0: document at line 3: decoding Deployment: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"},
		},
		{
			name:        "a YAML syntax error gets the line of the file",
			in:          svc + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: db\n   labels: {}\n",
			wantObjects: []string{"in.yaml#0:1 Service default/db"},
			wantErrors:  []string{"in.yaml#1: yaml: line 9: mapping values are not allowed in this context"},
		},
		{
			name:        "a List with a bad item keeps the good ones",
			in:          "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(svc), "\n", "\n  ") + "\n- {kind: Service}\n",
			wantObjects: []string{"in.yaml#0:1 Service default/db"},
			wantErrors:  []string{"in.yaml#0: document at line 1: items[1]: apiVersion is missing"},
		},
		{
			name:        "a typed list such as kubectl get -o yaml prints",
			in:          "apiVersion: v1\nkind: ServiceList\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}}\n",
			wantObjects: []string{"in.yaml#0:1 Service default/a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objects, errs, notes := readString(tt.in, tt.strict)
			if diff := cmp.Diff(tt.wantObjects, objects); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErrors, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
		})
	}
}
