package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"errors"
	"io"
	"runtime/debug"
	"testing"
	"time"
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
