// Command imagebuild assembles nsauth's container image from a static
// nsauth-server binary, without a container engine and without pulling a
// base image, and writes it as an image tarball that `podman load` and
// `docker load` read. deploy/image.sh builds the binary and runs it.
//
// The image is reproducible: every file's time is -epoch (the commit's
// time), owners and modes are fixed, entries are sorted, and the labels
// come from the binary's own build information, so two builds of one
// commit are byte-identical and `nsauth version` in the container says
// what the labels say.
package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// uid and gid of the user the server runs as: 65532, "nonroot", as in
// distroless images, so volume permissions carry over between them.
const nonroot = 65532

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	binary := fs.String("binary", "", "the static nsauth-server binary (linux)")
	certs := fs.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle installed as /etc/ssl/certs/ca-certificates.crt")
	epoch := fs.Int64("epoch", -1, "Unix time of every file and of the image (the commit's time, SOURCE_DATE_EPOCH)")
	arch := fs.String("arch", "amd64", "the binary's GOARCH")
	tag := fs.String("tag", "localhost/nsauth:latest", "the name `podman load` gives the image")
	output := fs.String("o", "", "image tarball to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *output == "" || *epoch < 0 {
		return errors.New("-binary, -o and -epoch are required")
	}
	exe, err := os.ReadFile(*binary)
	if err != nil {
		return err
	}
	info, err := buildinfo.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("reading the build information of %s: %w", *binary, err)
	}
	if revision(info) == "" {
		return fmt.Errorf("%s has no commit in its build information: build it in a git clone with -buildvcs=true", *binary)
	}
	bundle, err := os.ReadFile(*certs)
	if err != nil {
		return fmt.Errorf("reading CA certificates (Debian's ca-certificates package): %w", err)
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	img, err := build(image{exe: exe, info: info, certs: bundle, at: time.Unix(*epoch, 0).UTC(), arch: *arch})
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(*output, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", *output, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "tag=%s\ndigest=%s\nid=%s\nversion=%s\nrevision=%s\n", ref, digest, id,
		cf.Config.Labels["org.opencontainers.image.version"], cf.Config.Labels["org.opencontainers.image.revision"])
	return err
}

// image is what goes into the image.
type image struct {
	exe   []byte
	info  *buildinfo.BuildInfo
	certs []byte
	at    time.Time
	arch  string
}

func build(in image) (v1.Image, error) {
	layerTar, err := rootfs(in)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: in.at},
			CreatedBy: "deploy/image.sh: nsauth-server, CA certificates, user nonroot (65532), /data",
		},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: in.at}
	cf.OS = "linux"
	cf.Architecture = in.arch
	cf.Config = v1.Config{
		User:       strconv.Itoa(nonroot) + ":" + strconv.Itoa(nonroot),
		Entrypoint: []string{"/usr/local/bin/nsauth-server", "serve"},
		WorkingDir: "/data",
		Env: []string{
			"PATH=/usr/local/bin",
			"HOME=/home/nonroot",
			"HOST=0.0.0.0",
			"PORT=8080",
			"NSAUTH_DATA_DIR=/data",
		},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		StopSignal:   "SIGTERM",
		Labels:       labels(in.info, in.at),
	}
	return mutate.ConfigFile(img, cf)
}

// revision is the commit a binary was built from, with "-modified" when
// the checkout had uncommitted changes; empty when it was not stamped.
func revision(info *buildinfo.BuildInfo) string {
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-modified"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + modified
}

// labels are the OCI annotations of the image, read from the binary's build
// information: what `nsauth version` prints comes from the same place.
func labels(info *buildinfo.BuildInfo, at time.Time) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "nsauth",
		"org.opencontainers.image.description": "Neosync-compatible authentication service with a built-in OpenID provider",
		"org.opencontainers.image.version":     info.Main.Version,
		"org.opencontainers.image.revision":    revision(info),
		"org.opencontainers.image.created":     at.Format(time.RFC3339),
	}
}

// file is one entry of the image's root file system.
type file struct {
	name     string
	mode     int64
	uid      int
	body     []byte
	dir      bool
	linkname string
}

// rootfs returns the single layer: a tar with entries in sorted order,
// each with the same time and a fixed owner and mode.
func rootfs(in image) ([]byte, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	files := []file{
		{name: "data/", mode: 0o700, uid: nonroot, dir: true},
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: in.certs},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: nonroot, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		// nsauth-server holds the client's commands too: as nsauth it is
		// the whole of nsauth (`nsauth version`, `nsauth users add`).
		{name: "usr/local/bin/nsauth", mode: 0o777, linkname: "nsauth-server"},
		{name: "usr/local/bin/nsauth-server", mode: 0o755, body: in.exe},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.uid,
			ModTime: in.at,
			Format:  tar.FormatPAX,
		}
		switch {
		case f.dir:
			h.Typeflag = tar.TypeDir
		case f.linkname != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.linkname
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
