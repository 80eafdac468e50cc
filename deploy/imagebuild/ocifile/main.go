// Command ocifile copies one file out of one platform's image in an OCI
// image layout archive, such as deploy/image.sh writes, without a container
// engine: deploy/ci-image.sh takes the arm64 nsauth-server out of the image
// with it, to run it under qemu-aarch64.
//
//	ocifile -arch arm64 -file usr/local/bin/nsauth-server -o nsauth IMAGE.tar
//
// It follows index.json to the image index, the index to the linux/ARCH
// manifest, checks that the image's config says that architecture, and
// reads the file from the last layer that holds it (the output is mode
// 0755). Links are not followed.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ocifile:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ocifile", flag.ContinueOnError)
	arch := fs.String("arch", "", "the platform's architecture (linux/ARCH), e.g. arm64")
	path := fs.String("file", "", "the file's path in the image, without the leading /")
	output := fs.String("o", "", "where to write the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *arch == "" || *path == "" || *output == "" || fs.NArg() != 1 {
		return errors.New("usage: ocifile -arch ARCH -file PATH -o OUT IMAGE.tar")
	}
	archive, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer archive.Close()
	layout, err := readLayout(archive)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	body, err := layout.file(*arch, *path)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	return os.WriteFile(*output, body, 0o755)
}

// ociLayout is an OCI image layout read into memory: index.json and the blobs
// by their sha256 hex digest.
type ociLayout struct {
	index []byte
	blobs map[string][]byte
}

func readLayout(r io.Reader) (*ociLayout, error) {
	l := &ociLayout{blobs: map[string][]byte{}}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		switch hex, isBlob := strings.CutPrefix(h.Name, "blobs/sha256/"); {
		case h.Name == "index.json":
			l.index = body
		case isBlob:
			l.blobs[hex] = body
		}
	}
	if l.index == nil {
		return nil, errors.New("no index.json: not an OCI image layout")
	}
	return l, nil
}

// blob returns the blob d names, checked against its digest and size.
func (l *ociLayout) blob(d v1.Descriptor) ([]byte, error) {
	body, ok := l.blobs[d.Digest.Hex]
	if !ok || d.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("blob %s is missing", d.Digest)
	}
	got, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if got != d.Digest || int64(len(body)) != d.Size {
		return nil, fmt.Errorf("blob %s: its bytes are %s, %d bytes (want %d)", d.Digest, got, len(body), d.Size)
	}
	return body, nil
}

// image finds the linux/arch image's manifest through index.json's one
// image index.
func (l *ociLayout) image(arch string) (*v1.Manifest, error) {
	top, err := v1.ParseIndexManifest(bytes.NewReader(l.index))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("index.json lists %d manifests, want one image index", len(top.Manifests))
	}
	raw, err := l.blob(top.Manifests[0])
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var platforms []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		platforms = append(platforms, d.Platform.String())
		if d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			continue
		}
		raw, err := l.blob(d)
		if err != nil {
			return nil, err
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		config, err := l.blob(m.Config)
		if err != nil {
			return nil, err
		}
		cf, err := v1.ParseConfigFile(bytes.NewReader(config))
		if err != nil {
			return nil, err
		}
		if cf.OS != "linux" || cf.Architecture != arch {
			return nil, fmt.Errorf("the index lists %s for linux/%s, but its config says %s/%s", d.Digest, arch, cf.OS, cf.Architecture)
		}
		return m, nil
	}
	return nil, fmt.Errorf("the image index has no linux/%s image (it has %q)", arch, platforms)
}

// file reads path from the linux/arch image, the last layer that has it.
func (l *ociLayout) file(arch, path string) ([]byte, error) {
	m, err := l.image(arch)
	if err != nil {
		return nil, err
	}
	var found []byte
	for _, d := range m.Layers {
		raw, err := l.blob(d)
		if err != nil {
			return nil, err
		}
		body, err := fromLayer(raw, path)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d.Digest, err)
		}
		if body != nil {
			found = body
		}
	}
	if found == nil {
		return nil, fmt.Errorf("the linux/%s image has no regular file %s", arch, path)
	}
	return found, nil
}

// fromLayer reads path from a gzipped layer; nil when it is not there.
func fromLayer(raw []byte, path string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Name == path && h.Typeflag == tar.TypeReg {
			return io.ReadAll(tr)
		}
	}
}
