// Command image builds container images without a Docker engine and
// without a base image: one layer holding a static binary, written as an
// OCI image archive (an OCI layout in a tar file, which `ctr images
// import`, `podman load`, `skopeo copy oci-archive:...` and `crane push`
// read). By default it builds stateguard's image, named as the chart's
// default (values.yaml image.repository, Chart.yaml appVersion), so the
// chart runs what this builds; run it with `make image`. -kind builds the
// images of make cluster's node, which no registry can provide here: the
// pause image from hack/cluster/pause, CoreDNS, and busybox from Debian's
// busybox-static package, each named for what it is.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// spec is what an image holds and how it runs.
type spec struct {
	ref     string   // the image's name
	binary  string   // the static binary on this machine
	path    string   // where the image holds it, its entrypoint
	links   []string // more paths in the image for the binary (busybox's applets)
	user    string   // "" runs as root
	labels  map[string]string
	created time.Time
}

func main() {
	kind := flag.String("kind", "stateguard", "the image: stateguard, or make cluster's pause, coredns or busybox")
	binary := flag.String("binary", "bin/stateguard", "the static binary (CGO_ENABLED=0); busybox: Debian's /bin/busybox")
	chart := flag.String("chart", "charts/stateguard", "stateguard: the chart whose default image this is")
	ref := flag.String("ref", "", "pause, coredns: the image's name")
	version := flag.String("version", "", "coredns: the version the binary was built from")
	out := flag.String("o", "bin/stateguard-image.tar", "the OCI image archive to write")
	revision := flag.String("revision", "", "stateguard: the source revision, for the org.opencontainers.image.revision label")
	created := flag.Int64("created", 0, "the creation time in Unix seconds (SOURCE_DATE_EPOCH); 0: the epoch, so that builds are reproducible")
	flag.Parse()
	at := time.Unix(*created, 0).UTC()
	var s spec
	var err error
	switch *kind {
	case "stateguard":
		s, err = stateguardSpec(*binary, *chart, *revision, at)
	case "pause":
		s = spec{ref: *ref, binary: *binary, path: "/pause", user: "65535:65535", created: at, labels: map[string]string{
			"org.opencontainers.image.title":       "pause",
			"org.opencontainers.image.description": "stateguard's test cluster sandbox process (hack/cluster/pause): holds a Pod's namespaces open",
		}}
	case "coredns":
		s = spec{ref: *ref, binary: *binary, path: "/coredns", user: "65532:65532", created: at, labels: map[string]string{
			"org.opencontainers.image.title":       "coredns",
			"org.opencontainers.image.version":     *version,
			"org.opencontainers.image.description": "CoreDNS " + *version + " built from its Go module with the plugins of stateguard's test cluster (hack/tools/coredns)",
		}}
	case "busybox":
		s, err = busyboxSpec(*binary, at)
	default:
		err = fmt.Errorf("unknown -kind %q: stateguard, pause, coredns or busybox", *kind)
	}
	if err == nil && s.ref == "" {
		err = fmt.Errorf("-kind %s needs -ref", *kind)
	}
	if err == nil {
		err = write(s, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, s.ref)
}

// chartImage returns the chart's default image reference and appVersion.
func chartImage(chart string) (ref, version string, err error) {
	var meta struct {
		AppVersion string `json:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
		} `json:"image"`
	}
	for file, into := range map[string]any{"Chart.yaml": &meta, "values.yaml": &values} {
		data, err := os.ReadFile(filepath.Join(chart, file))
		if err != nil {
			return "", "", err
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			return "", "", fmt.Errorf("%s: %w", filepath.Join(chart, file), err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = meta.AppVersion
	}
	if values.Image.Repository == "" || tag == "" {
		return "", "", fmt.Errorf("%s: no image.repository or appVersion", chart)
	}
	return values.Image.Repository + ":" + tag, meta.AppVersion, nil
}

// stateguardSpec is stateguard's image: the binary run as 65532, named as
// the chart's default image.
func stateguardSpec(binary, chart, revision string, created time.Time) (spec, error) {
	ref, version, err := chartImage(chart)
	if err != nil {
		return spec{}, err
	}
	return spec{ref: ref, binary: binary, path: "/usr/local/bin/stateguard", user: "65532:65532", created: created, labels: map[string]string{
		"org.opencontainers.image.title":       "stateguard",
		"org.opencontainers.image.description": "An admission webhook that keeps stateful workloads from losing data or identity",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.source":      "https://github.com/stateguard/stateguard",
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}}, nil
}

// busyboxSpec is Debian's busybox-static as an image: busybox with a link
// for each of its applets in /bin, named localhost/busybox with the
// upstream version and "-debian", the package's full version in a label.
func busyboxSpec(binary string, created time.Time) (spec, error) {
	version, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "busybox-static").Output()
	if err != nil {
		return spec{}, fmt.Errorf("reading the version of Debian's busybox-static (apt-get install busybox-static): %w", err)
	}
	applets, err := exec.Command(binary, "--list").Output()
	if err != nil {
		return spec{}, fmt.Errorf("%s --list: %w", binary, err)
	}
	s := spec{ref: "localhost/busybox:" + upstreamVersion(string(version)) + "-debian", binary: binary, path: "/bin/busybox", created: created, labels: map[string]string{
		"org.opencontainers.image.title":       "busybox",
		"org.opencontainers.image.version":     string(version),
		"org.opencontainers.image.description": "Debian's busybox-static package " + string(version),
	}}
	for _, applet := range strings.Fields(string(applets)) {
		if applet != "busybox" {
			s.links = append(s.links, "/bin/"+applet)
		}
	}
	return s, nil
}

// upstreamVersion is a Debian version without its epoch and revision:
// 1:1.35.0-4+deb12u1+b1 is 1.35.0.
func upstreamVersion(v string) string {
	if _, after, ok := strings.Cut(v, ":"); ok {
		v = after
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return v
}

// write builds the image of s and writes it as an OCI image archive.
func write(s spec, out string) error {
	layer, err := binaryLayer(s)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: s.created}
	cfg.Config.User = s.user
	cfg.Config.Entrypoint = []string{s.path}
	cfg.Config.Env = []string{"PATH=" + path.Dir(s.path)}
	cfg.Config.Labels = s.labels
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	return writeArchive(img, s.ref, out)
}

// binaryLayer is one layer with the binary at s.path, mode 0755, its
// links, its parent folders and /tmp.
func binaryLayer(s spec) (v1.Layer, error) {
	data, err := os.ReadFile(s.binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDirs func(dir string) error
	addDirs = func(dir string) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		if err := addDirs(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/", Mode: 0o755, ModTime: s.created})
	}
	if err := addDirs(path.Dir(s.path)); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: s.created}); err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(s.path, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: s.created}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	for _, link := range s.links {
		if err := addDirs(path.Dir(link)); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(link, "/"), Linkname: s.path, Mode: 0o777, ModTime: s.created}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil },
		tarball.WithMediaType(types.OCILayer))
}

// writeArchive writes img, named ref, as an OCI layout in a tar file. The
// file appears only when complete.
func writeArchive(img v1.Image, ref, out string) error {
	dir, err := os.MkdirTemp("", "stateguard-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := path.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
		"io.containerd.image.name":          ref, // the name `ctr images import` gives it
	})); err != nil {
		return err
	}
	tmp := out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name, hdr.ModTime = filepath.ToSlash(rel), time.Unix(0, 0)
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		content, err := os.Open(p)
		if err != nil {
			return err
		}
		defer content.Close()
		_, err = io.Copy(tw, content)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
