package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImageReadsBack builds an image archive and reads it back as an OCI
// layout: the name is the chart's default image, the config runs the
// binary as 65532 with the OCI labels, and the one layer holds the binary.
func TestImageReadsBack(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "stateguard")
	content := []byte("\x7fELF not really a binary")
	if err := os.WriteFile(binary, content, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	ref := buildStateguard(t, binary, archive, time.Unix(1700000000, 0).UTC())
	wantRef, version, err := chartImage("../../charts/stateguard")
	if err != nil {
		t.Fatal(err)
	}
	if ref != wantRef || ref != "ghcr.io/stateguard/stateguard:"+version {
		t.Errorf("image %q, want the chart's default %q", ref, wantRef)
	}

	img := readArchive(t, archive, ref)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Config.User != "65532:65532" || !cmp.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/stateguard"}) {
		t.Errorf("config: os %q, user %q, entrypoint %q", cfg.OS, cfg.Config.User, cfg.Config.Entrypoint)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.title": "stateguard", "org.opencontainers.image.version": version,
		"org.opencontainers.image.revision": "abc123", "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
	} {
		if got := cfg.Config.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("the layer has no usr/local/bin/stateguard")
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "usr/local/bin/stateguard" {
			got, _ := io.ReadAll(tr)
			if hdr.Mode != 0o755 || !bytes.Equal(got, content) {
				t.Errorf("usr/local/bin/stateguard: mode %o, content %q", hdr.Mode, got)
			}
			return
		}
	}
}

func TestImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "stateguard")
	if err := os.WriteFile(binary, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var archives [][]byte
	for _, name := range []string{"a.tar", "b.tar"} {
		out := filepath.Join(dir, name)
		buildStateguard(t, binary, out, time.Unix(0, 0).UTC())
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, data)
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Error("two builds of the same binary differ")
	}
}

func buildStateguard(t *testing.T, binary, out string, created time.Time) string {
	t.Helper()
	s, err := stateguardSpec(binary, "../../charts/stateguard", "abc123", created)
	if err != nil {
		t.Fatal(err)
	}
	if err := write(s, out); err != nil {
		t.Fatal(err)
	}
	return s.ref
}

// TestImageLinks builds an image with links to its binary, as the busybox
// image has for its applets: each link points at the binary, its folders
// exist, and so does a world-writable /tmp.
func TestImageLinks(t *testing.T) {
	dir := t.TempDir()
	binary := filepath.Join(dir, "busybox")
	if err := os.WriteFile(binary, []byte("busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	s := spec{ref: "localhost/busybox:1.35.0-debian", binary: binary, path: "/bin/busybox", links: []string{"/bin/sh", "/usr/sbin/httpd"}}
	if err := write(s, archive); err != nil {
		t.Fatal(err)
	}
	img := readArchive(t, archive, s.ref)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[hdr.Name] = fmt.Sprintf("%c %o %s", hdr.Typeflag, hdr.Mode, hdr.Linkname)
	}
	want := map[string]string{
		"bin/":           "5 755 ",
		"bin/busybox":    "0 755 ",
		"bin/sh":         "2 777 /bin/busybox",
		"tmp/":           "5 1777 ",
		"usr/":           "5 755 ",
		"usr/sbin/":      "5 755 ",
		"usr/sbin/httpd": "2 777 /bin/busybox",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
}

func TestUpstreamVersion(t *testing.T) {
	for in, want := range map[string]string{"1:1.35.0-4+deb12u1+b1": "1.35.0", "1.36.1-9": "1.36.1", "2.0": "2.0", "1:2.1-rc1-3": "2.1-rc1"} {
		if got := upstreamVersion(in); got != want {
			t.Errorf("upstreamVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// readArchive reads the image archive back as an OCI layout, and checks
// that it holds one image, named ref for OCI tools and for containerd.
func readArchive(t *testing.T, archive, ref string) v1.Image {
	t.Helper()
	unpacked := filepath.Join(t.TempDir(), "layout")
	untar(t, archive, unpacked)
	index, err := layout.ImageIndexFromPath(unpacked)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 || manifest.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref ||
		manifest.Manifests[0].Annotations["io.containerd.image.name"] != ref {
		t.Fatalf("index %+v: want one image named %s", manifest.Manifests, ref)
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
