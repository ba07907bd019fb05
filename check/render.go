package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	release "helm.sh/helm/v4/pkg/release/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ChartOptions render Helm charts as `helm template` does with the same flags.
type ChartOptions struct {
	ValuesFiles    []string // -f/--values
	Set, SetString []string // --set, --set-string
	ReleaseName    string
	// KubeVersion is the Kubernetes version of .Capabilities (--kube-version).
	KubeVersion string
}

// chart renders the Helm chart in dir, client-only, as `helm template`
// does (hooks included, crds/ not), and reads each template's output as
// an input named by the template's path under dir.
func (r *reader) chart(dir string) {
	manifests, err := renderChart(r.ctx, dir, r.opts.Chart, r.opts.Namespace)
	if errors.Is(err, errLibraryChart) {
		r.note(dir, "skipped: a library chart, which renders nothing on its own")
		return
	}
	if err != nil {
		r.fail(dir, fmt.Errorf("rendering the Helm chart: %w", err))
		return
	}
	for _, m := range manifests {
		r.stream(m.path, strings.NewReader(m.text))
	}
}

// errLibraryChart is a chart of helpers for other charts: helm refuses to
// render it alone.
var errLibraryChart = errors.New("a library chart")

// renderedTemplate is the output of one template.
type renderedTemplate struct {
	path string // the template's path under the chart's directory
	text string
}

func renderChart(ctx context.Context, dir string, opts ChartOptions, namespace string) ([]renderedTemplate, error) {
	// Values as helm reads -f, --set and --set-string; no getters, so
	// values files are local files only.
	vals, err := (&values.Options{ValueFiles: opts.ValuesFiles, Values: opts.Set, StringValues: opts.SetString}).MergeValues(nil)
	if err != nil {
		return nil, err
	}
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, err
	}
	accessor, err := chart.NewAccessor(ch)
	if err != nil {
		return nil, err
	}
	if kind, _ := accessor.MetadataAsMap()["Type"].(string); kind == "library" {
		return nil, errLibraryChart
	}
	if deps := accessor.MetaDependencies(); len(deps) > 0 {
		if err := action.CheckDependencies(ch, deps); err != nil {
			return nil, fmt.Errorf("%w (run helm dependency build %s)", err, dir)
		}
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = opts.ReleaseName
	install.Namespace = namespace
	install.Replace = true // as helm template: no release to collide with
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("--kube-version: %w", err)
		}
		install.KubeVersion = kv
	}
	installed, err := install.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := installed.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("helm returned a release of type %T", installed)
	}
	// The manifest is "---\n# Source: PATH\n" and a document, repeated,
	// where PATH starts with the chart's name.
	var out []renderedTemplate
	index := map[string]int{}
	add := func(source, text string) {
		_, rest, _ := strings.Cut(source, "/")
		path := filepath.Join(dir, filepath.FromSlash(rest))
		if i, ok := index[path]; ok {
			out[i].text += "---\n" + text
			return
		}
		index[path] = len(out)
		out = append(out, renderedTemplate{path: path, text: text})
	}
	for _, part := range strings.Split("\n"+rel.Manifest, "\n---\n# Source: ") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		source, text, _ := strings.Cut(part, "\n")
		add(source, text+"\n")
	}
	for _, h := range rel.Hooks {
		add(h.Path, h.Manifest+"\n")
	}
	return out, nil
}

// kustomizationFile is the kustomization in dir, or "".
func kustomizationFile(dir string) string {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	return ""
}

// kustomization renders the kustomization in dir as `kustomize build`
// does, and reads each object as a document of the file it came from, so
// that results point at the resource file and its line.
func (r *reader) kustomization(dir string) {
	file := kustomizationFile(dir)
	if file == "" {
		if info, err := os.Stat(dir); err != nil {
			r.fail(dir, err)
		} else if !info.IsDir() {
			r.fail(dir, errors.New("-k names a directory that holds a kustomization"))
		} else {
			r.fail(dir, errors.New("no kustomization.yaml, kustomization.yml or Kustomization in the directory"))
		}
		return
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		r.fail(file, err)
		return
	}
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified // kustomize build's default order
	resources, err := krusty.MakeKustomizer(opts).Run(originFS{filesys.MakeFsOnDisk(), abs}, dir)
	if err != nil {
		r.fail(file, fmt.Errorf("rendering the kustomization: %w", err))
		return
	}
	input := r.addInput(file)
	locate := newLocator()
	for _, res := range resources.Resources() {
		source, line := file, 0
		if origin, err := res.GetOrigin(); err == nil && origin != nil && origin.Path != "" && origin.Repo == "" {
			source, line = locate.find(filepath.Join(dir, origin.Path), res.OrgId().Kind, res.OrgId().Name)
		}
		annotations := res.GetAnnotations()
		delete(annotations, originAnnotation)
		err := res.SetAnnotations(annotations)
		var text []byte
		if err == nil {
			text, err = res.AsYAML()
		}
		if err == nil {
			err = r.send(input, source, line, text)
		}
		if err != nil {
			r.inputs[input].err = err
			return
		}
	}
}

// originAnnotation is where kustomize records the file a resource came from.
const originAnnotation = "config.kubernetes.io/origin"

// originFS reads the kustomization being built with originAnnotations
// added to its buildMetadata, so that each resource names its file.
type originFS struct {
	filesys.FileSystem
	kustomization string // its absolute path
}

func (f originFS) ReadFile(path string) ([]byte, error) {
	data, err := f.FileSystem.ReadFile(path)
	if err != nil || filepath.Clean(path) != f.kustomization {
		return data, err
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil || k == nil {
		return data, nil // kustomize reports it
	}
	metadata, _ := k["buildMetadata"].([]any)
	k["buildMetadata"] = append(metadata, "originAnnotations")
	return yaml.Marshal(k)
}

// locator finds the document of a resource file that declares an object.
type locator struct {
	files map[string][]declared
}

type declared struct {
	kind, name string
	line       int
}

func newLocator() *locator { return &locator{files: map[string][]declared{}} }

// find returns the source (FILE#INDEX) and line of the object of kind and
// name in file, or the file alone when it is not found there.
func (l *locator) find(file, kind, name string) (string, int) {
	docs, ok := l.files[file]
	if !ok {
		if in, err := os.Open(file); err == nil {
			splitStream(in, DefaultMaxFileSize, func(text []byte, line int) error {
				var meta struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				}
				yaml.Unmarshal(text, &meta)
				docs = append(docs, declared{meta.Kind, meta.Metadata.Name, line})
				return nil
			})
			in.Close()
		}
		l.files[file] = docs
	}
	for i, d := range docs {
		if d.kind == kind && d.name == name {
			return file + "#" + strconv.Itoa(i), d.line
		}
	}
	return file, 0
}
