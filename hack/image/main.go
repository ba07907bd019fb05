// Command image builds stateguard's container image without a Docker
// engine and without a base image: one layer holding the static binary,
// run as user 65532, written as an OCI image archive (an OCI layout in a
// tar file, which `podman load`, `skopeo copy oci-archive:...` and
// `crane push` read). The image's name and tag are the chart's default
// (values.yaml image.repository, Chart.yaml appVersion), so the chart runs
// what this builds. Run it with `make image`.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
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

// binaryPath is where the image holds the binary.
const binaryPath = "/usr/local/bin/stateguard"

func main() {
	binary := flag.String("binary", "bin/stateguard", "the static stateguard binary (CGO_ENABLED=0)")
	chart := flag.String("chart", "charts/stateguard", "the chart whose default image this is")
	out := flag.String("o", "bin/stateguard-image.tar", "the OCI image archive to write")
	revision := flag.String("revision", "", "the source revision, for the org.opencontainers.image.revision label")
	created := flag.Int64("created", 0, "the creation time in Unix seconds (SOURCE_DATE_EPOCH); 0: the epoch, so that builds are reproducible")
	flag.Parse()
	ref, err := build(*binary, *chart, *out, *revision, time.Unix(*created, 0).UTC())
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, ref)
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

func build(binary, chart, out, revision string, created time.Time) (string, error) {
	ref, version, err := chartImage(chart)
	if err != nil {
		return "", err
	}
	layer, err := binaryLayer(binary, created)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return "", err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = "65532:65532"
	cfg.Config.Entrypoint = []string{binaryPath}
	cfg.Config.Env = []string{"PATH=/usr/local/bin"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "stateguard",
		"org.opencontainers.image.description": "An admission webhook that keeps stateful workloads from losing data or identity",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
		"org.opencontainers.image.source":      "https://github.com/stateguard/stateguard",
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	return ref, writeArchive(img, ref, out)
}

// binaryLayer is one layer with the binary at binaryPath, mode 0755.
func binaryLayer(binary string, created time.Time) (v1.Layer, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"usr/", "usr/local/", "usr/local/bin/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: created}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: created}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
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
	if err := path.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
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
