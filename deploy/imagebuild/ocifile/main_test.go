package main

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testImage is an image of arch (its config says configArch) whose one
// layer holds usr/local/bin/nsauth-server with body.
func testImage(t *testing.T, configArch, body string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"etc/passwd", "root:x:0:0::/:/sbin/nologin\n"}, {"usr/local/bin/nsauth-server", body}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", configArch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testArchive writes an OCI layout whose index.json lists one image index
// with an amd64 and an arm64 image (the arm64 one's config says
// arm64Config), and returns it as a tar; corrupt changes a byte of the
// largest blob (a layer) after it is written.
func testArchive(t *testing.T, arm64Config string, corrupt bool) string {
	t.Helper()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: testImage(t, "amd64", "amd64 binary"),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: testImage(t, arm64Config, "arm64 binary"),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	if corrupt {
		var largest string
		var size int64
		err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err == nil && info.Size() > size {
				largest, size = path, info.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(largest)
		if err != nil {
			t.Fatal(err)
		}
		body[len(body)/2] ^= 0xff
		if err := os.WriteFile(largest, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return archive
}

func TestOCIFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		arm64Config string
		corrupt     bool
		arch, file  string
		want        string
		wantErr     string
	}{
		{name: "arm64", arm64Config: "arm64", arch: "arm64", file: "usr/local/bin/nsauth-server", want: "arm64 binary"},
		{name: "amd64", arm64Config: "arm64", arch: "amd64", file: "usr/local/bin/nsauth-server", want: "amd64 binary"},
		{name: "no such platform", arm64Config: "arm64", arch: "riscv64", file: "usr/local/bin/nsauth-server",
			wantErr: `no linux/riscv64 image (it has ["linux/amd64" "linux/arm64/v8"])`},
		{name: "no such file", arm64Config: "arm64", arch: "arm64", file: "usr/local/bin/nsauth", wantErr: "has no regular file usr/local/bin/nsauth"},
		{name: "config of another architecture", arm64Config: "amd64", arch: "arm64", file: "usr/local/bin/nsauth-server",
			wantErr: "its config says linux/amd64"},
		{name: "a blob's bytes altered", arm64Config: "arm64", corrupt: true, arch: "arm64", file: "usr/local/bin/nsauth-server",
			wantErr: "its bytes are sha256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			archive := testArchive(t, tc.arm64Config, tc.corrupt)
			out := filepath.Join(t.TempDir(), "out")
			err := run([]string{"-arch", tc.arch, "-file", tc.file, "-o", out, archive})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if info, err := os.Stat(out); err != nil || info.Mode().Perm() != 0o755 {
				t.Fatalf("the file's mode: %v %v", info, err)
			}
		})
	}
}
