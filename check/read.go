package check

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
)

// StdinName is how standard input is named in sources.
const StdinName = "stdin"

// DefaultMaxFileSize is the default of --max-file-size.
const DefaultMaxFileSize = 256 << 20

// InputError is an input that could not be read or a document that could
// not be decoded. Source names the file, and the document where there is one.
type InputError struct {
	Source string
	Err    error
}

func (e *InputError) Error() string { return e.Source + ": " + e.Err.Error() }

// Input is what the reader collected: every Kubernetes object, one error
// per unreadable file or document (a bad document never hides the others),
// and a note per input skipped as not Kubernetes manifests.
type Input struct {
	Objects []batch.Object
	Errors  []*InputError
	Notes   []string
}

// ReadOptions say how inputs are read.
type ReadOptions struct {
	// Namespace is given to objects that name none.
	Namespace string
	// Strict makes files that hold no Kubernetes objects errors, not notes.
	Strict bool
	// MaxFileSize bounds each file, standard input and rendered output.
	MaxFileSize int64
	// Chart renders the Helm charts among the inputs.
	Chart ChartOptions
}

// Read reads the inputs in the order given: files, directories (walked in
// lexical order; Helm charts and kustomizations in them are rendered), "-"
// (standard input), and kustomizations (-k). Documents are decoded in
// parallel while the next ones are read, and each is dropped once decoded,
// so memory follows the objects that are kept (trimmed to what the rules
// read), not the size of the input. The order of objects and errors is the
// order of the input. Read stops early when ctx ends.
func Read(ctx context.Context, paths, kustomizations []string, stdin io.Reader, opts ReadOptions) *Input {
	r := newReader(ctx, opts)
	for _, p := range paths {
		if p == "-" {
			r.stream(StdinName, stdin)
			continue
		}
		r.path(p)
	}
	for _, k := range kustomizations {
		r.kustomization(k)
	}
	return r.finish()
}

// reader reads inputs on the caller's goroutine and decodes their documents
// on workers.
type reader struct {
	ctx  context.Context
	opts ReadOptions

	docs    chan document
	seq     int // documents handed to the workers so far
	workers sync.WaitGroup

	mu      sync.Mutex
	decoded []decodedDocument
	inputs  []*inputState
}

// inputState is one file, standard input or rendered template, with what
// stands for it when it is not read: an error or a note.
type inputState struct {
	name string
	err  error
	note string
}

type document struct {
	seq    int
	input  int // index into reader.inputs
	source string
	text   []byte
	line   int
}

type decodedDocument struct {
	document
	objs []batch.Object
	err  error
	// notObject says the document is no Kubernetes object at all (no
	// apiVersion and kind): a file of nothing else is not a manifest.
	notObject bool
}

func newReader(ctx context.Context, opts ReadOptions) *reader {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	r := &reader{ctx: ctx, opts: opts, docs: make(chan document, 2*runtime.GOMAXPROCS(0))}
	for range runtime.GOMAXPROCS(0) {
		r.workers.Go(func() {
			for doc := range r.docs {
				d := decodedDocument{document: doc}
				d.objs, d.err = decodeDocument(doc.text, opts.Namespace)
				d.notObject = errors.Is(d.err, errNotObject)
				if d.err != nil {
					d.err = fileLines(d.err, doc.line)
				}
				d.text = nil
				r.mu.Lock()
				r.decoded = append(r.decoded, d)
				r.mu.Unlock()
			}
		})
	}
	return r
}

// addInput registers an input and returns its index.
func (r *reader) addInput(name string) int {
	r.inputs = append(r.inputs, &inputState{name: name})
	return len(r.inputs) - 1
}

func (r *reader) fail(name string, err error) {
	r.inputs[r.addInput(name)].err = unwrapPathError(err)
}

func (r *reader) note(name, note string) {
	r.inputs[r.addInput(name)].note = note
}

// stream splits one input into documents and hands them to the workers.
func (r *reader) stream(name string, in io.Reader) {
	input := r.addInput(name)
	index := 0
	err := splitStream(in, r.opts.MaxFileSize, func(text []byte, line int) error {
		index++
		return r.send(input, name+"#"+strconv.Itoa(index-1), line, text)
	})
	if errors.Is(err, errTooLarge) {
		err = fmt.Errorf("larger than %s (--max-file-size): not judged", formatSize(r.opts.MaxFileSize))
	}
	if err != nil {
		r.inputs[input].err = unwrapPathError(err)
	}
}

// send hands one document of an input to the workers.
func (r *reader) send(input int, source string, line int, text []byte) error {
	r.seq++
	select {
	case r.docs <- document{seq: r.seq, input: input, source: source, text: text, line: line}:
		return nil
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
}

// path reads a file, or walks a directory: a directory that holds a Helm
// chart or a kustomization is rendered, not read file by file.
func (r *reader) path(p string) {
	info, err := os.Stat(p)
	if err != nil {
		r.fail(p, err)
		return
	}
	if !info.IsDir() {
		if info.Mode().IsRegular() && (strings.HasSuffix(p, ".tgz") || strings.HasSuffix(p, ".tar.gz")) {
			r.chart(p) // a packaged chart, as helm package writes it
			return
		}
		r.file(p, info, true)
		return
	}
	if r.renderDir(p) {
		return
	}
	found := false
	err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			// An unreadable directory or file is named; the walk goes on.
			r.fail(f, err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if f == p {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if r.renderDir(f) {
				found = true
				return filepath.SkipDir
			}
			return nil
		}
		if !isManifestName(f) {
			return nil
		}
		found = true
		info, err := os.Stat(f) // follows a symbolic link
		if err != nil {
			r.fail(f, err)
			return nil
		}
		r.file(f, info, false)
		return nil
	})
	if err != nil && r.ctx.Err() == nil {
		r.fail(p, err)
	}
	if err == nil && !found {
		r.fail(p, errors.New("directory holds no *.yaml, *.yml or *.json files, Helm chart or kustomization"))
	}
}

func isManifestName(f string) bool {
	switch strings.ToLower(filepath.Ext(f)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// renderDir renders a directory that holds a Helm chart or a kustomization
// and says whether it did.
func (r *reader) renderDir(dir string) bool {
	if fileExists(filepath.Join(dir, "Chart.yaml")) {
		r.chart(dir)
		return true
	}
	if kustomizationFile(dir) != "" {
		r.kustomization(dir)
		return true
	}
	return false
}

func fileExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

// notManifests are the names of YAML files that are known not to hold
// Kubernetes objects: the definitions of charts, kustomizations and
// Compose applications.
var notManifests = regexp.MustCompile(`^(Chart\.yaml|Chart\.lock|kustomization\.ya?ml|Kustomization|helmfile\.ya?ml|(docker-)?compose(\.[^.]+)*\.ya?ml)$`)

// file reads one file. A file named on the command line may be a pipe
// (-f <(helm template ...)); in a directory only regular files are read:
// a FIFO would block, a device never end.
func (r *reader) file(f string, info fs.FileInfo, named bool) {
	mode := info.Mode()
	switch {
	case mode.IsRegular():
	case mode&fs.ModeNamedPipe != 0 && named:
	default:
		what := fileType(mode)
		if named {
			r.fail(f, fmt.Errorf("a %s, not a regular file", what))
		} else {
			r.note(f, "skipped: a "+what+", not a regular file")
		}
		return
	}
	if notManifests.MatchString(filepath.Base(f)) {
		r.skipNotManifest(f, "a "+filepath.Base(f)+" file, not Kubernetes manifests")
		return
	}
	if mode.IsRegular() && info.Size() > r.opts.MaxFileSize {
		r.fail(f, fmt.Errorf("%s, larger than %s (--max-file-size)", formatSize(info.Size()), formatSize(r.opts.MaxFileSize)))
		return
	}
	in, err := os.Open(f)
	if err != nil {
		r.fail(f, err)
		return
	}
	defer in.Close()
	r.stream(f, in)
}

func (r *reader) skipNotManifest(name, why string) {
	if r.opts.Strict {
		r.fail(name, errors.New(why))
		return
	}
	r.note(name, "skipped: "+why)
}

func fileType(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeNamedPipe != 0:
		return "FIFO"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeDevice != 0:
		return "device"
	case mode.IsDir():
		return "directory"
	}
	return "special file"
}

// finish waits for the workers and puts what they decoded in input order.
func (r *reader) finish() *Input {
	close(r.docs)
	r.workers.Wait()
	// Each input's documents are sent before the next input is added, so
	// in the order they were sent they are one run per input.
	slices.SortFunc(r.decoded, func(a, b decodedDocument) int { return cmp.Compare(a.seq, b.seq) })
	docs := make([][]decodedDocument, len(r.inputs))
	for i := 0; i < len(r.decoded); {
		j := i + 1
		for j < len(r.decoded) && r.decoded[j].input == r.decoded[i].input {
			j++
		}
		docs[r.decoded[i].input] = r.decoded[i:j]
		i = j
	}
	in := &Input{}
	judged := make([]bool, len(r.inputs))
	objects := 0
	for i, state := range r.inputs {
		switch {
		case state.err != nil:
			// Nothing of an input that was not read to its end is judged.
		case state.note != "":
			in.Notes = append(in.Notes, state.name+": "+state.note)
		case len(docs[i]) > 0 && !r.opts.Strict && !slices.ContainsFunc(docs[i], func(d decodedDocument) bool { return !d.notObject }):
			in.Notes = append(in.Notes, state.name+": skipped: no Kubernetes objects (no document has apiVersion and kind)")
		default:
			judged[i] = true
			for _, d := range docs[i] {
				objects += len(d.objs)
			}
		}
	}
	// Held until every object is judged: one slice of the right size.
	in.Objects = make([]batch.Object, 0, objects)
	for i, state := range r.inputs {
		if state.err != nil {
			in.Errors = append(in.Errors, &InputError{Source: state.name, Err: state.err})
		}
		if !judged[i] {
			continue
		}
		for _, d := range docs[i] {
			if d.err != nil {
				in.Errors = append(in.Errors, &InputError{Source: d.source, Err: d.err})
			}
			for _, o := range d.objs {
				o.Source, o.Line = d.source, d.line
				in.Objects = append(in.Objects, o)
			}
		}
	}
	r.decoded = nil
	return in
}

// unwrapPathError drops the path from an fs.PathError: the source names it already.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// fileLines rewrites the parser's document-relative "line N" into the line of
// the file; an error without a line gets the document's first line.
func fileLines(err error, first int) error {
	msg := err.Error()
	if !yamlLine.MatchString(msg) {
		return fmt.Errorf("document at line %d: %w", first, err)
	}
	return errors.New(yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		return "line " + strconv.Itoa(n+first-1)
	}))
}

// errNotObject marks a document that is no Kubernetes object at all.
var errNotObject = errors.New("not a Kubernetes object")

type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decodeDocument decodes one document: an object, or a List of objects.
func decodeDocument(doc []byte, defaultNamespace string) ([]batch.Object, error) {
	data, known, err := yamlToJSON(doc)
	if err != nil {
		return nil, err
	}
	if string(data) == "null" {
		return nil, nil
	}
	var tm typeMeta
	if known != nil {
		tm = *known
	} else if tm, err = readTypeMeta(data); err != nil {
		return nil, err
	}
	switch {
	case tm.Kind == "":
		// A YAML file of something else: values, CI or Compose files, Chart.yaml.
		return nil, fmt.Errorf("%w: kind is missing", errNotObject)
	case tm.APIVersion == "" && !readKind(tm.Kind):
		return nil, fmt.Errorf("%w: apiVersion is missing", errNotObject)
	}
	if tm.Kind == "List" || (strings.HasSuffix(tm.Kind, "List") && tm.Items != nil) {
		var objs []batch.Object
		var errs []error
		for i, item := range tm.Items {
			itemMeta, err := readTypeMeta(item)
			if err != nil {
				errs = append(errs, fmt.Errorf("items[%d]: %w", i, err))
				continue
			}
			o, err := decodeObject(item, itemMeta, defaultNamespace)
			if err != nil {
				errs = append(errs, fmt.Errorf("items[%d]: %w", i, err))
				continue
			}
			objs = append(objs, o)
		}
		return objs, errors.Join(errs...)
	}
	o, err := decodeObject(data, tm, defaultNamespace)
	if err != nil {
		return nil, err
	}
	return []batch.Object{o}, nil
}

func readTypeMeta(data []byte) (typeMeta, error) {
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &tm); err != nil {
		return tm, fmt.Errorf("%w: want a mapping with apiVersion and kind", errNotObject)
	}
	return tm, nil
}

// decodeObject decodes one object whose type tm has been read.
func decodeObject(data []byte, tm typeMeta, defaultNamespace string) (batch.Object, error) {
	if tm.APIVersion == "" {
		return batch.Object{}, errors.New("apiVersion is missing")
	}
	if tm.Kind == "" {
		return batch.Object{}, errors.New("kind is missing")
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return batch.Object{}, fmt.Errorf("apiVersion: %w", err)
	}
	typed := newTyped(gv.Group, tm.Kind)
	if typed == nil {
		return batch.Object{Kind: tm.Kind}, nil
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, typed); err != nil {
		return batch.Object{}, fmt.Errorf("decoding %s: %w", tm.Kind, err)
	}
	if typed.GetName() == "" {
		return batch.Object{}, fmt.Errorf("%s has no metadata.name", tm.Kind)
	}
	if _, clusterScoped := typed.(*corev1.Namespace); !clusterScoped && typed.GetNamespace() == "" {
		typed.SetNamespace(defaultNamespace)
	}
	// Every object is held until all are judged: only what the rules
	// read, encoded.
	engine.Trim(typed)
	o := batch.Object{Kind: tm.Kind, Typed: typed}
	if err := o.Encode(); err != nil {
		return batch.Object{}, err
	}
	return o, nil
}

// readKind says whether stateguard judges or looks up objects of a kind
// (in its own API group): such a document without an apiVersion is a
// broken manifest, not some other YAML file.
func readKind(kind string) bool {
	switch kind {
	case "StatefulSet", "Deployment", "HorizontalPodAutoscaler", "Service", "PersistentVolumeClaim", "Namespace":
		return true
	}
	return false
}

// newTyped returns an empty object for the kinds the engine judges or looks
// up. Every autoscaling version of the HPA shares the fields read here
// (scaleTargetRef, maxReplicas).
func newTyped(group, kind string) metav1.Object {
	switch group + "/" + kind {
	case "apps/StatefulSet":
		return &appsv1.StatefulSet{}
	case "apps/Deployment":
		return &appsv1.Deployment{}
	case "autoscaling/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "/Service":
		return &corev1.Service{}
	case "/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "/Namespace":
		return &corev1.Namespace{}
	}
	return nil
}
