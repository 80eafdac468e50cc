// Command imagebuild assembles nsauth's container image from static
// nsauth-server binaries, one per architecture, without a container engine
// and without pulling a base image, and writes it as an OCI image layout
// archive holding one image index (linux/amd64 and linux/arm64). `podman
// load` reads it and keeps the machine's platform's image. deploy/image.sh
// builds the binaries and runs it.
//
// The image is reproducible: every file's time is -epoch (the commit's
// time), owners and modes are fixed, entries are sorted, and the labels
// come from the binaries' own build information, so two builds of one
// commit are byte-identical and `nsauth version` in the container says
// what the labels say.
package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
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

// binaries is the repeated -binary ARCH=PATH flag, in the order given.
type binaries []struct{ arch, path string }

func (b *binaries) String() string {
	var parts []string
	for _, e := range *b {
		parts = append(parts, e.arch+"="+e.path)
	}
	return strings.Join(parts, ",")
}

func (b *binaries) Set(v string) error {
	arch, path, ok := strings.Cut(v, "=")
	if !ok || arch == "" || path == "" {
		return fmt.Errorf("%q is not ARCH=PATH", v)
	}
	if _, known := variants[arch]; !known {
		return fmt.Errorf("architecture %q: imagebuild knows amd64 and arm64", arch)
	}
	for _, e := range *b {
		if e.arch == arch {
			return fmt.Errorf("architecture %s given twice", arch)
		}
	}
	*b = append(*b, struct{ arch, path string }{arch, path})
	return nil
}

// variants are the platform variants the image index names for each
// architecture (arm64's is v8, as in the index of Debian's and Go's images).
var variants = map[string]string{"amd64": "", "arm64": "v8"}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	var bins binaries
	fs.Var(&bins, "binary", "`ARCH=PATH`: the static linux nsauth-server for GOARCH ARCH (amd64, arm64); repeat it for each")
	certs := fs.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle installed as /etc/ssl/certs/ca-certificates.crt")
	epoch := fs.Int64("epoch", -1, "Unix time of every file and of the image (the commit's time, SOURCE_DATE_EPOCH)")
	tag := fs.String("tag", "localhost/nsauth:latest", "the name `podman load` gives the image")
	output := fs.String("o", "", "OCI image layout archive to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(bins) == 0 || *output == "" || *epoch < 0 {
		return errors.New("-binary, -o and -epoch are required")
	}
	bundle, err := os.ReadFile(*certs)
	if err != nil {
		return fmt.Errorf("reading CA certificates (Debian's ca-certificates package): %w", err)
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	at := time.Unix(*epoch, 0).UTC()
	var images []image
	for _, b := range bins {
		in, err := readBinary(b.arch, b.path)
		if err != nil {
			return err
		}
		if len(images) > 0 && (revision(in.info) != revision(images[0].info) || in.info.Main.Version != images[0].info.Main.Version) {
			return fmt.Errorf("%s is %s %s, %s is %s %s: the binaries must come from one commit", bins[0].path,
				images[0].info.Main.Version, revision(images[0].info), b.path, in.info.Main.Version, revision(in.info))
		}
		in.certs, in.at = bundle, at
		images = append(images, in)
	}
	idx, err := buildIndex(images)
	if err != nil {
		return err
	}
	f, err := os.Create(*output)
	if err != nil {
		return err
	}
	if err := writeLayout(f, idx, ref, at); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", *output, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return describe(out, ref, idx)
}

// readBinary reads one architecture's nsauth-server and its build
// information, which must name the commit it was built from.
func readBinary(arch, path string) (image, error) {
	exe, err := os.ReadFile(path)
	if err != nil {
		return image{}, err
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return image{}, fmt.Errorf("reading the build information of %s: %w", path, err)
	}
	if revision(info) == "" {
		return image{}, fmt.Errorf("%s has no commit in its build information: build it in a git clone with -buildvcs=true", path)
	}
	if goarch := setting(info, "GOARCH"); goarch != arch {
		return image{}, fmt.Errorf("%s is built for GOARCH %q, not %s", path, goarch, arch)
	}
	return image{exe: exe, info: info, arch: arch}, nil
}

// describe prints what deploy/image.sh prints: the tag, the index's digest,
// version and revision, then each platform's manifest digest and image id
// (its config's digest, what `podman image inspect` calls Id).
func describe(out io.Writer, ref name.Tag, idx v1.ImageIndex) error {
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var lines strings.Builder
	var labels map[string]string
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
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
		labels = cf.Config.Labels
		fmt.Fprintf(&lines, "%s.digest=%s\n%s.id=%s\n", d.Platform.Architecture, d.Digest, d.Platform.Architecture, id)
	}
	_, err = fmt.Fprintf(out, "tag=%s\ndigest=%s\nversion=%s\nrevision=%s\n%s", ref, digest,
		labels["org.opencontainers.image.version"], labels["org.opencontainers.image.revision"], lines.String())
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
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
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
	cf.Variant = variants[in.arch]
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

// buildIndex makes one image per binary and the index that lists them with
// their platforms.
func buildIndex(ins []image) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, in := range ins {
		img, err := build(in)
		if err != nil {
			return nil, fmt.Errorf("the %s image: %w", in.arch, err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: in.arch, Variant: variants[in.arch]},
			},
		})
	}
	return mutate.AppendManifests(empty.Index, adds...), nil
}

// writeLayout writes idx as an OCI image layout in a tar (what `podman
// save --format oci-archive` writes and `podman load` reads): oci-layout,
// index.json naming the index ref (as org.opencontainers.image.ref.name,
// and as io.containerd.image.name, which podman and docker read first),
// and every blob under blobs/sha256/, in sorted order with fixed times,
// owners and modes.
func writeLayout(w io.Writer, idx v1.ImageIndex, ref name.Tag, at time.Time) error {
	blobs := map[string][]byte{}
	add := func(d v1.Hash, body []byte) { blobs[d.Hex] = body }
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	add(digest, raw)
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return err
		}
		if err := addImage(img, add); err != nil {
			return err
		}
	}
	mediaType, err := idx.MediaType()
	if err != nil {
		return err
	}
	top, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mediaType,
			Digest:    digest,
			Size:      int64(len(raw)),
			Annotations: map[string]string{
				"io.containerd.image.name":          ref.String(),
				"org.opencontainers.image.ref.name": ref.String(),
			},
		}},
	})
	if err != nil {
		return err
	}
	files := []file{
		{name: "oci-layout", mode: 0o644, body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", mode: 0o644, body: top},
		{name: "blobs/", mode: 0o755, dir: true},
		{name: "blobs/sha256/", mode: 0o755, dir: true},
	}
	hexes := make([]string, 0, len(blobs))
	for h := range blobs {
		hexes = append(hexes, h)
	}
	slices.Sort(hexes)
	for _, h := range hexes {
		files = append(files, file{name: "blobs/sha256/" + h, mode: 0o644, body: blobs[h]})
	}
	return writeTar(w, files, at)
}

// addImage hands add the image's manifest, config and compressed layers.
func addImage(img v1.Image, add func(v1.Hash, []byte)) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	add(digest, raw)
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	add(id, config)
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		add(d, body)
	}
	return nil
}

// setting is one key of a binary's build settings, "" when absent.
func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
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
	if err := writeTar(&buf, files, in.at); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeTar writes files in the order given, each with the time at.
func writeTar(w io.Writer, files []file, at time.Time) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			Uid:     f.uid,
			Gid:     f.uid,
			ModTime: at,
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
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	return tw.Close()
}
