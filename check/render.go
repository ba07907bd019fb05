package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/strvals"
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
	vals, err := chartValues(opts)
	if err != nil {
		return nil, err
	}
	ch, err := chartloader.Load(dir)
	if err != nil {
		return nil, err
	}
	if ch.Metadata.Type == "library" {
		return nil, errLibraryChart
	}
	// What helm template does (pkg/action's Install, client-only): check
	// and process the dependencies, build .Capabilities and .Values,
	// render, drop NOTES.txt, and sort the documents into manifests and hooks.
	if err := missingDependencies(ch); err != nil {
		return nil, fmt.Errorf("%w (run helm dependency build %s)", err, dir)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return nil, fmt.Errorf("chart dependencies processing failed: %w", err)
	}
	caps := common.DefaultCapabilities.Copy()
	if opts.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(opts.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("--kube-version: %w", err)
		}
		caps.KubeVersion = *kv
	}
	if ch.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s (--kube-version)", ch.Metadata.KubeVersion, caps.KubeVersion.Version)
	}
	release := common.ReleaseOptions{Name: opts.ReleaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	renderValues, err := commonutil.ToRenderValuesWithSchemaValidation(ch, vals, release, caps, false)
	if err != nil {
		return nil, err
	}
	var templates engine.Engine
	files, err := templates.RenderWithContext(ctx, ch, renderValues)
	if err != nil {
		return nil, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	// Names start with the chart's name: they are named under dir instead.
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
	for _, m := range manifests {
		add(m.Name, m.Content+"\n")
	}
	for _, h := range hooks {
		add(h.Path, h.Manifest+"\n")
	}
	return out, nil
}

// chartValues merges values files, --set and --set-string as helm does.
// Values files are local files only.
func chartValues(opts ChartOptions) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range opts.ValuesFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		more, err := chartloader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", f, err)
		}
		vals = chartloader.MergeMaps(vals, more)
	}
	for _, v := range opts.Set {
		if err := strvals.ParseInto(v, vals); err != nil {
			return nil, fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, v := range opts.SetString {
		if err := strvals.ParseIntoString(v, vals); err != nil {
			return nil, fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	return vals, nil
}

// missingDependencies names the dependencies of Chart.yaml that charts/ lacks.
func missingDependencies(ch *chart.Chart) error {
	present := map[string]bool{}
	for _, dep := range ch.Dependencies() {
		present[dep.Name()] = true
	}
	var missing []string
	for _, dep := range ch.Metadata.Dependencies {
		if !present[dep.Name] {
			missing = append(missing, dep.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("found in Chart.yaml, but missing in charts/ directory: %s", strings.Join(missing, ", "))
	}
	return nil
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
