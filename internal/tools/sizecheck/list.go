package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// listedPackage is the part of `go list -json` that sizecheck reads.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Module     *struct{ Path string }
}

// name is the package's import path relative to its module, which is how
// the tree and the style guide speak of it (internal/issuer).
func (p listedPackage) name() string {
	if p.Module != nil && p.Module.Path != "" {
		if rest, ok := strings.CutPrefix(p.ImportPath, p.Module.Path+"/"); ok {
			return rest
		}
	}
	return p.ImportPath
}

// files are the package's non-test source files, as absolute paths.
func (p listedPackage) files() []string {
	var out []string
	for _, f := range append(append([]string(nil), p.GoFiles...), p.CgoFiles...) {
		out = append(out, filepath.Join(p.Dir, f))
	}
	return out
}

// listPackages runs `go list` in the current directory. -find skips
// resolving imports, which the check does not need.
func listPackages(patterns []string) ([]listedPackage, error) {
	args := append([]string{"list", "-find", "-json=ImportPath,Dir,GoFiles,CgoFiles,Module"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v: %s", strings.Join(patterns, " "), err, strings.TrimSpace(stderr.String()))
	}
	return decodePackages(bytes.NewReader(out))
}

// decodePackages reads the stream of JSON objects `go list -json` prints.
func decodePackages(r io.Reader) ([]listedPackage, error) {
	var pkgs []listedPackage
	dec := json.NewDecoder(r)
	for {
		var p listedPackage
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return pkgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}
