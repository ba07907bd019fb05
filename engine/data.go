package engine

import (
	_ "embed"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/internal/commalist"
)

// DataDirectory says where the images it names keep their data.
type DataDirectory struct {
	Name   string   `json:"name"`
	Images []string `json:"images,omitempty"`
	Paths  []string `json:"paths,omitempty"`
	// PathEnv are variables whose value, when a container sets one, is
	// the data directory instead of Paths.
	PathEnv []string `json:"pathEnv,omitempty"`
	// Roles, when a container sets one of Env to roles none of which
	// matches Data, say the node keeps no data.
	Roles *Roles `json:"roles,omitempty"`
	// NonPersistentArgs are argument runs that turn persistence off.
	NonPersistentArgs [][]string `json:"nonPersistentArgs,omitempty"`
	// PersistentArgs, when set, are the argument prefixes without one of
	// which the image keeps no data (a Pushgateway without a file).
	PersistentArgs []string `json:"persistentArgs,omitempty"`
	// OptionalStorage says the image may keep its data elsewhere (its
	// storage is configured in a file stateguard does not see): a
	// container without a volume there is not reported.
	OptionalStorage bool `json:"optionalStorage,omitempty"`
}

type Roles struct {
	Env  []string `json:"env"`
	Data []string `json:"data"`
}

// Catalogue is the built-in list of DataDirectories, with its version.
type Catalogue struct {
	Version         string          `json:"version"`
	DataDirectories []DataDirectory `json:"dataDirectories"`
}

//go:embed catalogue.yaml
var catalogueYAML []byte

var builtinCatalogue = sync.OnceValue(func() Catalogue {
	var c Catalogue
	if err := yaml.UnmarshalStrict(catalogueYAML, &c); err != nil {
		panic("engine/catalogue.yaml: " + err.Error())
	}
	return c
})

// BuiltinCatalogue is the catalogue stateguard ships.
func BuiltinCatalogue() Catalogue {
	c := builtinCatalogue()
	c.DataDirectories = slices.Clone(c.DataDirectories)
	return c
}

// imageEntry is a DataDirectory with its image patterns compiled.
type imageEntry struct {
	*DataDirectory
	images    []imagePattern
	dataRoles []namePattern
}

// imagePattern matches the last segments of a repository, as many as it
// has: "redis" matches library/redis and docker/library/redis,
// "bitnami/redis" bitnami/redis only.
type imagePattern struct {
	namePattern
	segments int
}

func (p imagePattern) matches(repo string) bool {
	start := len(repo)
	for k := range p.segments {
		j := strings.LastIndexByte(repo[:start], '/')
		if j < 0 {
			return k == p.segments-1 && p.match(repo)
		}
		start = j
	}
	return p.match(repo[start+1:])
}

func compileCatalogue(dirs []DataDirectory) []imageEntry {
	out := make([]imageEntry, 0, len(dirs))
	for i := range dirs {
		d := &dirs[i]
		if len(d.Paths) == 0 && len(d.PathEnv) == 0 {
			continue // removed by the configuration
		}
		e := imageEntry{DataDirectory: d}
		for _, p := range d.Images {
			e.images = append(e.images, imagePattern{compileNamePattern(p), strings.Count(p, "/") + 1})
		}
		if d.Roles != nil {
			for _, r := range d.Roles.Data {
				e.dataRoles = append(e.dataRoles, compileNamePattern(r))
			}
		}
		out = append(out, e)
	}
	return out
}

// imageEntryOf finds the catalogue entry of a container's image: by the
// last segment of its repository when the patterns' last segments are
// literal, else by trying each pattern.
func (e *Engine) imageEntryOf(image string) *imageEntry {
	repo := repository(image)
	last := repo[strings.LastIndexByte(repo, '/')+1:]
	for _, c := range e.imagesByLastSegment[last] {
		if c.pattern.matches(repo) {
			return c.entry
		}
	}
	for _, c := range e.imagesWithWildcards {
		if c.pattern.matches(repo) {
			return c.entry
		}
	}
	return nil
}

// imageCandidate is one image pattern of a catalogue entry.
type imageCandidate struct {
	pattern imagePattern
	entry   *imageEntry
}

// indexImages sorts the catalogue's image patterns by their last segment,
// or among those with a wildcard in it, in catalogue order.
func (e *Engine) indexImages() {
	e.imagesByLastSegment = map[string][]imageCandidate{}
	for i := range e.catalogue {
		x := &e.catalogue[i]
		for _, p := range x.images {
			last := p.source[strings.LastIndexByte(p.source, '/')+1:]
			if strings.Contains(last, "*") {
				e.imagesWithWildcards = append(e.imagesWithWildcards, imageCandidate{p, x})
			} else {
				e.imagesByLastSegment[last] = append(e.imagesByLastSegment[last], imageCandidate{p, x})
			}
		}
	}
}

// repository is an image reference without its registry host, tag or
// digest: docker.io/bitnami/redis:8.2 is bitnami/redis.
func repository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	if first, rest, ok := strings.Cut(image, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		image = rest
	}
	return image
}

// dataDirs are where the container keeps the entry's data: the value of
// the first path variable it sets, else the entry's paths. One variable
// is the rule; the array keeps it off the heap.
func (x *imageEntry) dataDirs(c *corev1.Container, buf *[1]string) []string {
	for _, env := range c.Env {
		if env.Value != "" && path.IsAbs(env.Value) && slices.Contains(x.PathEnv, env.Name) {
			buf[0] = path.Clean(env.Value)
			return buf[:]
		}
	}
	return x.Paths
}

// keepsNoData says why the container, though it runs the entry's image,
// keeps no data: "" when nothing says so.
func (x *imageEntry) keepsNoData(c *corev1.Container) string {
	if x.Roles != nil {
		for _, env := range c.Env {
			if !slices.Contains(x.Roles.Env, env.Name) || env.ValueFrom != nil {
				continue
			}
			roles := commalist.Split(env.Value)
			if !slices.ContainsFunc(roles, func(r string) bool { return matchesAnyPattern(x.dataRoles, r) }) {
				return fmt.Sprintf("its %s %q holds no role that stores data", env.Name, env.Value)
			}
		}
	}
	if len(x.PersistentArgs) == 0 && len(x.NonPersistentArgs) == 0 {
		return ""
	}
	args := append(slices.Clone(c.Command), c.Args...)
	if len(x.PersistentArgs) > 0 && !slices.ContainsFunc(args, func(a string) bool {
		return slices.ContainsFunc(x.PersistentArgs, func(p string) bool { return strings.HasPrefix(a, p) })
	}) {
		return fmt.Sprintf("it runs without %s", strings.Join(x.PersistentArgs, " or "))
	}
	for _, run := range x.NonPersistentArgs {
		for i := 0; i+len(run) <= len(args); i++ {
			if slices.Equal(args[i:i+len(run)], run) {
				return fmt.Sprintf("its arguments %q turn persistence off", strings.Join(run, " "))
			}
		}
	}
	return ""
}

func matchesAnyPattern(patterns []namePattern, s string) bool {
	for _, p := range patterns {
		if p.match(s) {
			return true
		}
	}
	return false
}

// tier is how strongly a mount's evidence says it holds data.
type tier int

const (
	noData tier = iota
	// weakData is one sign (a data path or a data name): a warning.
	weakData
	// strongData is a known image's data directory, the annotation, or a
	// data name at a data path: the rule's action.
	strongData
)

// scratchWords are path segments and subPath words that name what a
// container regenerates or can lose: configuration, caches, logs, scratch.
var scratchWords = []string{
	"etc", "conf", "config", "configs", "configuration", "cache", ".cache", "caches", "log", "logs",
	"tmp", "temp", "run", "plugins", "certs", "ssl", "secrets", "scripts", "bin", "lib", "shm",
}

// podTemplate is what the data judgement reads of a workload.
type podTemplate struct {
	kind        string // StatefulSet or Deployment
	annotations map[string]string
	pod         *corev1.PodSpec
	// claimed reports whether a volume of the Pod template is backed by a
	// claim (a template's or a PersistentVolumeClaim).
	claimed func(volume string) bool
}

// judgeMount says whether a read-write mount of a Pod-scoped volume holds
// data, how strongly, and why.
func (e *Engine) judgeMount(w podTemplate, c *corev1.Container, v *corev1.Volume, m *corev1.VolumeMount) (tier, string) {
	if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
		return noData, ""
	}
	if commalist.Contains(w.annotations[AnnotationScratchVolumes], v.Name) {
		return noData, ""
	}
	if commalist.Contains(w.annotations[AnnotationDataVolumes], v.Name) {
		return strongData, "named in the annotation " + AnnotationDataVolumes
	}
	mountPath := path.Clean(m.MountPath)
	if _, ok := underAny(mountPath, e.scratchPaths); ok {
		return noData, ""
	}
	if x := e.imageEntryOf(c.Image); x != nil {
		var buf [1]string
		for _, dir := range x.dataDirs(c, &buf) {
			switch {
			case mountPath == dir || isUnder(dir, mountPath):
				// A claim at the data directory keeps the data; the
				// volume above it holds what surrounds it.
				if x.keepsNoData(c) != "" || w.persistsAtOrAbove(c, dir) {
					return noData, ""
				}
				return strongData, fmt.Sprintf("where %s keeps its data", x.Name)
			case isUnder(mountPath, dir) && !w.persistsAtOrAbove(c, dir) && !isScratchPath(mountPath, m.SubPath):
				if x.keepsNoData(c) != "" {
					return noData, ""
				}
				return strongData, fmt.Sprintf("inside %s, where %s keeps its data", dir, x.Name)
			}
		}
	}
	if isScratchPath(mountPath, m.SubPath) {
		return noData, ""
	}
	var signs []string
	if base, ok := underAny(mountPath, e.dataPaths); ok {
		signs = append(signs, "under data path "+base)
	}
	if reason := e.dataName(v.Name); reason != "" {
		signs = append(signs, reason)
	}
	switch len(signs) {
	case 0:
		return noData, ""
	case 1:
		return weakData, signs[0]
	}
	return strongData, strings.Join(signs, ", ")
}

// dataName says why the volume's name names data: "" when it does not.
// A subPath named data does not: Bitnami's app-data-dir is scratch in
// charts that keep their data elsewhere.
func (e *Engine) dataName(volume string) string {
	for _, p := range e.dataNames {
		if p.match(volume) {
			if p.source == volume {
				return fmt.Sprintf("%q is a data volume name", volume)
			}
			return fmt.Sprintf("its name matches data volume name %q", p.source)
		}
	}
	return ""
}

// isScratchPath reports whether the mount path's last segment, or the
// subPath's last segment, names scratch (/opt/app/logs, a subPath
// app-conf-dir), or the path lies in an etc directory (configuration:
// /usr/local/etc/haproxy).
func isScratchPath(mountPath, subPath string) bool {
	for rest := mountPath; rest != ""; {
		var segment string
		segment, rest, _ = strings.Cut(rest, "/")
		if strings.EqualFold(segment, "etc") || (rest == "" && isScratchWord(segment)) {
			return true
		}
	}
	if subPath == "" {
		return false
	}
	w := words(path.Base(subPath))
	return !slices.Contains(w, "data") && slices.ContainsFunc(w, isScratchWord)
}

func isScratchWord(s string) bool {
	return slices.ContainsFunc(scratchWords, func(w string) bool { return strings.EqualFold(w, s) })
}

// words splits a name at '-', '_' and '.', lowercased.
func words(name string) []string {
	return strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return r == '-' || r == '_' || r == '.' })
}

// isUnder reports whether p lies strictly under dir.
func isUnder(p, dir string) bool {
	return len(p) > len(dir) && strings.HasPrefix(p, dir) && (dir == "/" || p[len(dir)] == '/')
}

// persistsAtOrAbove reports whether the container mounts a claim at dir
// or above it: a Pod-scoped volume under it then overlays a subdirectory
// on purpose (plugins, a rebuilt index).
func (w podTemplate) persistsAtOrAbove(c *corev1.Container, dir string) bool {
	for _, m := range c.VolumeMounts {
		p := path.Clean(m.MountPath)
		if (p == dir || isUnder(dir, p)) && w.claimed(m.Name) {
			return true
		}
	}
	return false
}
