package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// spec is a small OpenAPI v2 document in Kubernetes' shape: a kind with a
// nested object, an IntOrString, a Quantity and a self-reference.
const spec = `{"definitions": {
  "io.k8s.api.apps.v1.Thing": {
    "type": "object",
    "required": ["spec"],
    "properties": {
      "apiVersion": {"type": "string"},
      "kind": {"type": "string"},
      "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.ThingSpec"}
    },
    "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Thing"}]
  },
  "io.k8s.api.apps.v1.ThingSpec": {
    "type": "object",
    "properties": {
      "port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
      "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}},
      "child": {"$ref": "#/definitions/io.k8s.api.apps.v1.ThingSpec"}
    }
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.core.v1.Widget": {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Widget"}]
  }
}}`

func generate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	specFile := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(specFile, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := run([]string{"-spec", specFile, "-version", "1.37.2", "-out", out}, io.Discard); err != nil {
		t.Fatalf("run: %v", err)
	}
	return filepath.Join(out, "v1.37.2-standalone-strict")
}

func load(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFilesAreNamedAsKubeconformLooksThemUp(t *testing.T) {
	dir := generate(t)
	for _, name := range []string{"thing-apps-v1.json", "widget-v1.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSchemaIsStrictAndSelfContained(t *testing.T) {
	thing := load(t, filepath.Join(generate(t), "thing-apps-v1.json"))
	if containsKey(thing, "$ref") {
		t.Errorf("schema still holds a $ref: %v", thing)
	}
	props := thing["properties"].(map[string]any)
	spec := props["spec"].(map[string]any)
	specProps := spec["properties"].(map[string]any)
	tests := []struct {
		name string
		got  any
		want string
	}{
		{"root refuses unknown fields", thing["additionalProperties"], "false"},
		{"nested object refuses unknown fields", spec["additionalProperties"], "false"},
		{"required field is not nullable", spec["type"], `"object"`},
		{"optional field may be null", props["kind"].(map[string]any)["type"], `["string","null"]`},
		{"IntOrString takes a string or an integer", specProps["port"].(map[string]any)["oneOf"], `[{"type":"string"},{"type":"integer"},{"type":"null"}]`},
		{"Quantity takes a string or a number", specProps["memory"].(map[string]any)["oneOf"], `[{"type":"string"},{"type":"number"},{"type":"null"}]`},
		{"a map keeps its value schema", specProps["labels"].(map[string]any)["additionalProperties"], `{"type":"string"}`},
		{"a self-reference is cut, not looped", specProps["child"], `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := json.Marshal(tt.got)
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func containsKey(v any, key string) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if k == key || containsKey(child, key) {
				return true
			}
		}
	case []any:
		for _, child := range v {
			if containsKey(child, key) {
				return true
			}
		}
	}
	return false
}

func TestRefusesADocumentWithoutDefinitions(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "openapi.json")
	if err := os.WriteFile(specFile, []byte(`{"openapi": "3.0.0", "components": {}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-spec", specFile, "-version", "1.37.2", "-out", dir}, io.Discard); err == nil {
		t.Fatal("run accepted a document without definitions")
	}
}
