package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func testImage() image {
	return image{
		exe: []byte("\x7fELF not really"),
		info: &buildinfo.BuildInfo{
			Main: debug.Module{Path: "github.com/nsauth/nsauth", Version: "v0.0.0-20261130194104-67be99f0e097"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "67be99f0e097fb94552db1bd0f716a5bdc2347eb"},
				{Key: "vcs.modified", Value: "false"},
			},
		},
		certs: []byte("-----BEGIN CERTIFICATE-----\n"),
		at:    time.Date(2026, 11, 30, 19, 41, 4, 0, time.UTC),
		arch:  "amd64",
	}
}

// TestBuildIsReproducible: the same inputs give the same digest, and a
// different input (another commit's time) another one.
func TestBuildIsReproducible(t *testing.T) {
	t.Parallel()
	digest := func(in image) string {
		img, err := build(in)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	a, b := digest(testImage()), digest(testImage())
	if a != b {
		t.Fatalf("two builds of the same inputs: %s and %s", a, b)
	}
	later := testImage()
	later.at = later.at.Add(time.Second)
	if digest(later) == a {
		t.Fatal("the digest does not depend on the time")
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	img, err := build(testImage())
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q", c.User)
	}
	if len(c.Entrypoint) != 2 || c.Entrypoint[0] != "/usr/local/bin/nsauth-server" || c.Entrypoint[1] != "serve" {
		t.Errorf("Entrypoint = %q", c.Entrypoint)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	for _, want := range []string{"NSAUTH_DATA_DIR=/data", "HOST=0.0.0.0", "PORT=8080"} {
		found := false
		for _, e := range c.Env {
			found = found || e == want
		}
		if !found {
			t.Errorf("Env %q lacks %s", c.Env, want)
		}
	}
	if got := c.Labels["org.opencontainers.image.revision"]; got != "67be99f0e097fb94552db1bd0f716a5bdc2347eb" {
		t.Errorf("revision label = %q", got)
	}
	if got := c.Labels["org.opencontainers.image.version"]; got != "v0.0.0-20261130194104-67be99f0e097" {
		t.Errorf("version label = %q", got)
	}
	if !cf.Created.Time.Equal(testImage().at) {
		t.Errorf("Created = %v", cf.Created)
	}
}

func TestModifiedCheckoutIsLabelled(t *testing.T) {
	t.Parallel()
	in := testImage()
	in.info.Settings[1].Value = "true"
	if got := labels(in.info, in.at)["org.opencontainers.image.revision"]; got != "67be99f0e097fb94552db1bd0f716a5bdc2347eb-modified" {
		t.Fatalf("revision label = %q", got)
	}
	in.info.Settings = nil
	if got := revision(in.info); got != "" {
		t.Fatalf("revision of an unstamped binary = %q", got)
	}
}

// TestRootFS reads the layer back: sorted entries, one time, fixed owners,
// /data and the home directory the user's, the binary executable.
func TestRootFS(t *testing.T) {
	t.Parallel()
	in := testImage()
	layer, err := rootfs(in)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		mode     int64
		uid, gid int
		link     string
		body     string
	}
	got := map[string]entry{}
	var names []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(in.at) {
			t.Errorf("%s: time %v, want %v", h.Name, h.ModTime, in.at)
		}
		body, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		got[h.Name] = entry{h.Mode, h.Uid, h.Gid, h.Linkname, string(body)}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	for name, want := range map[string]entry{
		"data/":                             {0o700, 65532, 65532, "", ""},
		"home/nonroot/":                     {0o700, 65532, 65532, "", ""},
		"tmp/":                              {0o1777, 0, 0, "", ""},
		"usr/local/bin/nsauth-server":       {0o755, 0, 0, "", string(in.exe)},
		"usr/local/bin/nsauth":              {0o777, 0, 0, "nsauth-server", ""},
		"etc/ssl/certs/ca-certificates.crt": {0o644, 0, 0, "", string(in.certs)},
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s = %+v (present %v), want %+v", name, g, ok, want)
		}
	}
	if p := got["etc/passwd"].body; !bytes.Contains([]byte(p), []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd has no nonroot user:\n%s", p)
	}
	if g := got["etc/group"].body; !bytes.Contains([]byte(g), []byte("nonroot:x:65532:")) {
		t.Errorf("/etc/group has no nonroot group:\n%s", g)
	}
}

// testImages are an amd64 and an arm64 image of one commit.
func testImages() []image {
	amd64, arm64 := testImage(), testImage()
	arm64.arch, arm64.exe = "arm64", []byte("\x7fELF aarch64, not really")
	return []image{amd64, arm64}
}

// TestIndex: one image per binary, each listed with its platform (arm64
// with variant v8), its config saying the same, all in OCI media types.
func TestIndex(t *testing.T) {
	t.Parallel()
	idx, err := buildIndex(testImages())
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s", im.MediaType)
	}
	want := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	if len(im.Manifests) != len(want) {
		t.Fatalf("the index lists %d manifests, want %d", len(im.Manifests), len(want))
	}
	for i, d := range im.Manifests {
		if d.Platform == nil || !d.Platform.Equals(want[i]) {
			t.Errorf("manifest %d: platform %v, want %v", i, d.Platform, want[i])
		}
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest %d: media type %s", i, d.MediaType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != want[i].OS || cf.Architecture != want[i].Architecture || cf.Variant != want[i].Variant {
			t.Errorf("manifest %d: config says %s/%s/%s, want %v", i, cf.OS, cf.Architecture, cf.Variant, want[i])
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
			t.Errorf("manifest %d: config %s, layers %v: want OCI media types", i, m.Config.MediaType, m.Layers)
		}
	}
}

// TestLayout writes the archive twice (the same bytes), unpacks it and
// reads it back with go-containerregistry's own layout reader: index.json
// names the tag and points at the index, whose images hold each
// architecture's binary.
func TestLayout(t *testing.T) {
	t.Parallel()
	ins := testImages()
	ref, err := name.NewTag("localhost/nsauth:test")
	if err != nil {
		t.Fatal(err)
	}
	write := func() []byte {
		idx, err := buildIndex(testImages())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := writeLayout(&buf, idx, ref, ins[0].at); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	archive := write()
	if !bytes.Equal(archive, write()) {
		t.Fatal("two archives of the same inputs differ")
	}

	dir := t.TempDir()
	tr := tar.NewReader(bytes.NewReader(archive))
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(ins[0].at) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: time %v, owner %d:%d", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 4 || strings.Join(names[:4], " ") != "oci-layout index.json blobs/ blobs/sha256/" {
		t.Errorf("entries begin %q", names)
	}
	for i := 5; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("blobs not sorted: %q before %q", names[i-1], names[i])
		}
	}

	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(tm.Manifests) != 1 || tm.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json lists %+v, want one image index", tm.Manifests)
	}
	for _, key := range []string{"org.opencontainers.image.ref.name", "io.containerd.image.name"} {
		if got := tm.Manifests[0].Annotations[key]; got != "localhost/nsauth:test" {
			t.Errorf("index.json: %s = %q", key, got)
		}
	}
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		got := readFile(t, rc, "usr/local/bin/nsauth-server")
		rc.Close()
		if got != string(ins[i].exe) {
			t.Errorf("%s image: nsauth-server is %q, want %q", d.Platform.Architecture, got, ins[i].exe)
		}
	}
}

func readFile(t *testing.T, r io.Reader, path string) string {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not found: %v", path, err)
		}
		if h.Name == path {
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(body)
		}
	}
}

// TestBinaryFlag: -binary is ARCH=PATH, for the architectures the image
// knows, each once.
func TestBinaryFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		values  []string
		wantErr string
	}{
		{name: "both", values: []string{"amd64=/a", "arm64=/b"}},
		{name: "no path", values: []string{"amd64"}, wantErr: "is not ARCH=PATH"},
		{name: "empty path", values: []string{"amd64="}, wantErr: "is not ARCH=PATH"},
		{name: "unknown architecture", values: []string{"riscv64=/r"}, wantErr: `architecture "riscv64"`},
		{name: "twice", values: []string{"arm64=/a", "arm64=/b"}, wantErr: "arm64 given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b binaries
			var err error
			for _, v := range tc.values {
				if err = b.Set(v); err != nil {
					break
				}
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Set: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Set: %v, want an error with %q", err, tc.wantErr)
			case tc.wantErr == "" && b.String() != strings.Join(tc.values, ","):
				t.Fatalf("String() = %q", b.String())
			}
		})
	}
}
