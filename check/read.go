package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
)

// StdinName is how standard input is named in sources.
const StdinName = "stdin"

// InputError is an input that could not be read or a document that could
// not be decoded. Source names the file, and the document where there is one.
type InputError struct {
	Source string
	Err    error
}

func (e *InputError) Error() string { return e.Source + ": " + e.Err.Error() }

// Input is what the reader collected: every readable object and one error
// per unreadable file or document. A bad document never hides the others.
type Input struct {
	Objects []batch.Object
	Errors  []*InputError
}

// ReadPaths reads files, directories (recursively: *.yaml, *.yml, *.json)
// and "-" (stdin), in the order given. Objects without a namespace get
// defaultNamespace. Documents are decoded in parallel; the order of the
// objects and errors is the order of the input.
func ReadPaths(paths []string, stdin io.Reader, defaultNamespace string) *Input {
	r := &reader{}
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			r.add(StdinName, data, err)
			continue
		}
		files, err := expand(p)
		if err != nil {
			r.fail(p, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			r.add(f, data, err)
		}
	}
	return r.decode(defaultNamespace)
}

// reader splits the inputs into documents, remembering per document its
// source, or the error that stands in its place.
type reader struct {
	docs []document
}

func (r *reader) fail(source string, err error) {
	r.docs = append(r.docs, document{source: source, err: unwrapPathError(err)})
}

func (r *reader) add(name string, data []byte, err error) {
	if err != nil {
		r.fail(name, err)
		return
	}
	for i, doc := range splitDocuments(data) {
		doc.source = name + "#" + strconv.Itoa(i)
		r.docs = append(r.docs, doc)
	}
}

func (r *reader) decode(defaultNamespace string) *Input {
	type decoded struct {
		objs []batch.Object
		err  error
	}
	out := make([]decoded, len(r.docs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(r.docs); i = int(next.Add(1)) - 1 {
				doc := r.docs[i]
				if doc.err != nil {
					out[i].err = doc.err
					continue
				}
				objs, err := decodeDocument(doc.text, defaultNamespace)
				if err != nil {
					err = fileLines(err, doc.line)
				}
				out[i] = decoded{objs, err}
				r.docs[i].text = nil // a file is freed once its documents are decoded
			}
		})
	}
	wg.Wait()
	in := &Input{}
	for i, d := range out {
		source := r.docs[i].source
		if d.err != nil {
			in.Errors = append(in.Errors, &InputError{Source: source, Err: d.err})
		}
		for _, o := range d.objs {
			o.Source = source
			in.Objects = append(in.Objects, o)
		}
	}
	return in
}

// expand returns the file itself, or the manifest files under a directory
// in lexical order. Hidden directories (.git) are skipped.
func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if f != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(f)) {
		case ".yaml", ".yml", ".json":
			files = append(files, f)
		}
		return nil
	})
	if err == nil && len(files) == 0 {
		err = errors.New("directory holds no *.yaml, *.yml or *.json files")
	}
	return files, unwrapPathError(err)
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
		return fmt.Errorf("document at line %d: %s", first, msg)
	}
	return errors.New(yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		return "line " + strconv.Itoa(n+first-1)
	}))
}

type document struct {
	source string
	text   []byte
	line   int   // the 1-based line of the file where the document starts
	err    error // the file could not be read
}

// splitDocuments splits a YAML stream at "---" lines. Chunks with nothing
// but blank and comment lines are not documents and take no index. Each
// document starts at its first line of content, so that line numbers point
// into the file.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		// Skip the leading blank and comment lines.
		for start < end {
			next := end
			if j := bytes.IndexByte(data[start:end], '\n'); j >= 0 {
				next = start + j + 1
			}
			if hasContent(data[start:next]) {
				docs = append(docs, document{text: data[start:end], line: startLine})
				return
			}
			start, startLine = next, startLine+1
		}
	}
	for i := 0; i < len(data); line++ {
		next := len(data)
		if j := bytes.IndexByte(data[i:], '\n'); j >= 0 {
			next = i + j + 1
		}
		if isSeparator(data[i:next]) {
			flush(i)
			// Content after "---" on the same line (such as "--- {a: 1}") belongs to the next document.
			start, startLine = i+3, line
		}
		i = next
	}
	flush(len(data))
	return docs
}

func isSeparator(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r')
}

func hasContent(chunk []byte) bool {
	for _, l := range bytes.Split(chunk, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return true
		}
	}
	return false
}

type typeMeta struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
}

// decodeDocument decodes one document: an object, or a List of objects.
func decodeDocument(doc []byte, defaultNamespace string) ([]batch.Object, error) {
	data, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	if string(data) == "null" {
		return nil, nil
	}
	tm, err := readTypeMeta(data)
	if err != nil {
		return nil, err
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
		return tm, errors.New("not a Kubernetes object: want a mapping with apiVersion and kind")
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
	// Every object is held until all are judged: only what the rules read.
	engine.Trim(typed)
	return batch.Object{Kind: tm.Kind, Typed: typed}, nil
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
