// Command kube-schemagen turns Kubernetes' OpenAPI v2 document
// (api/openapi-spec/swagger.json in the k8s.io/kubernetes module) into the
// JSON schemas kubeconform reads offline: one self-contained file per kind
// and version, named as kubeconform looks them up, in
// OUT/v<version>-standalone-strict/<kind>-<group>-<version>.json.
//
// "Strict" means what kubeconform -strict expects of its schemas: every
// object with declared properties refuses properties it does not declare
// (additionalProperties: false), so a misspelt field such as runAsUsr is an
// error. As in kubeconform's own published schemas, intstr.IntOrString
// accepts a string or an integer, resource.Quantity a string or a number,
// and optional fields may be null.
//
// Usage:
//
//	kube-schemagen -spec swagger.json -version 1.37.2 -out DIR
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kube-schemagen: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kube-schemagen", flag.ContinueOnError)
	spec := fs.String("spec", "", "Kubernetes OpenAPI v2 document (swagger.json)")
	version := fs.String("version", "", "Kubernetes version the spec is from, e.g. 1.37.2")
	out := fs.String("out", "", "output directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *spec == "" || *version == "" || *out == "" {
		return errors.New("-spec, -version and -out are required")
	}
	raw, err := os.ReadFile(*spec)
	if err != nil {
		return err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("reading %s: %w", *spec, err)
	}
	if len(doc.Definitions) == 0 {
		return fmt.Errorf("%s has no definitions: is it an OpenAPI v2 document?", *spec)
	}
	dir := filepath.Join(*out, "v"+strings.TrimPrefix(*version, "v")+"-standalone-strict")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	g := generator{defs: doc.Definitions}
	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)
	written := 0
	for _, name := range names {
		def := doc.Definitions[name]
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, v := range gvks {
			gvk, _ := v.(map[string]any)
			group, _ := gvk["group"].(string)
			ver, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			if ver == "" || kind == "" {
				continue
			}
			schema := g.expand(map[string]any{"$ref": "#/definitions/" + name}, nil, true)
			schema["$schema"] = "http://json-schema.org/schema#"
			b, err := json.Marshal(schema)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			file := filepath.Join(dir, fileName(group, ver, kind))
			if err := os.WriteFile(file, b, 0o644); err != nil {
				return err
			}
			written++
		}
	}
	fmt.Fprintf(stdout, "wrote %d schemas to %s\n", written, dir)
	return nil
}

// fileName is kubeconform's name for a kind's schema (its registry's
// ResourceKind and KindSuffix): the kind, the group's first label and the
// version, lower case.
func fileName(group, version, kind string) string {
	suffix := "-" + strings.ToLower(version)
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + suffix
	}
	return strings.ToLower(kind) + suffix + ".json"
}

type generator struct {
	defs map[string]map[string]any
}

const (
	intOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantity    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

// expand returns node with every $ref replaced by a copy of its
// definition. A definition that refers to itself (JSONSchemaProps) is cut
// at the second level and accepts anything there. required says whether
// the field holding node is required (or the document root).
func (g generator) expand(node map[string]any, stack []string, required bool) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		switch name {
		case intOrString:
			return nullable(map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, required)
		case quantity:
			return nullable(map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}, required)
		}
		for _, s := range stack {
			if s == name {
				return map[string]any{}
			}
		}
		def, ok := g.defs[name]
		if !ok {
			return map[string]any{}
		}
		out := g.expand(def, append(stack, name), required)
		if d, ok := node["description"]; ok {
			out["description"] = d
		}
		return out
	}
	out := make(map[string]any, len(node)+1)
	for k, v := range node {
		switch k {
		case "x-kubernetes-group-version-kind", "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key",
			"x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-unions":
			continue
		case "properties":
			props, _ := v.(map[string]any)
			req := map[string]bool{}
			if r, ok := node["required"].([]any); ok {
				for _, n := range r {
					if s, ok := n.(string); ok {
						req[s] = true
					}
				}
			}
			expanded := make(map[string]any, len(props))
			for name, p := range props {
				pm, _ := p.(map[string]any)
				expanded[name] = g.expand(pm, stack, req[name])
			}
			out[k] = expanded
		case "items":
			if im, ok := v.(map[string]any); ok {
				out[k] = g.expand(im, stack, true)
			} else {
				out[k] = v
			}
		case "additionalProperties":
			if am, ok := v.(map[string]any); ok {
				out[k] = g.expand(am, stack, true)
			} else {
				out[k] = v
			}
		default:
			out[k] = v
		}
	}
	if _, ok := out["properties"]; ok {
		if _, set := out["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	if f, _ := out["format"].(string); f == "int-or-string" {
		delete(out, "type")
		delete(out, "format")
		out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	return nullable(out, required)
}

// nullable lets an optional field be null, as YAML writes an empty value.
func nullable(schema map[string]any, required bool) map[string]any {
	if required {
		return schema
	}
	if t, ok := schema["type"].(string); ok {
		schema["type"] = []any{t, "null"}
	} else if oneOf, ok := schema["oneOf"].([]any); ok {
		schema["oneOf"] = append(oneOf, map[string]any{"type": "null"})
	}
	return schema
}
