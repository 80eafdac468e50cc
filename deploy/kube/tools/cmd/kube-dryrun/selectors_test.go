package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
`

func TestCheckSelectors(t *testing.T) {
	tests := []struct {
		name    string
		docs    string
		wantErr string // empty: must pass
	}{
		{"service and pdb select the pods", deployment + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web, tier: front}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  selector:
    matchLabels: {app: web}
`, ""},
		{"service selects a label the pods lack", deployment + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web, tier: back}
`, "1 selectors"},
		{"service without a selector selects nothing here", deployment + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {}
`, "1 selectors"},
		{"pdb selects another app", deployment + `---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  selector:
    matchLabels: {app: api}
`, "1 selectors"},
		{"autoscaler scales the deployment", deployment + `---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
`, ""},
		{"autoscaler scales a missing deployment", deployment + `---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  maxReplicas: 3
`, "1 selectors"},
		{"no deployment at all", `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
`, "no Deployment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "docs.yaml")
			if err := os.WriteFile(file, []byte(tt.docs), 0o600); err != nil {
				t.Fatal(err)
			}
			err := checkSelectors(io.Discard, []string{file})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want one with %q", err, tt.wantErr)
			}
		})
	}
}
