package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// checkSelectors checks what neither a schema nor the apiserver checks:
// that every Service and PodDisruptionBudget selects the pods of a
// Deployment in the same files, and that every HorizontalPodAutoscaler
// scales one of those Deployments. A Service whose selector misses its
// pods is accepted by Kubernetes and routes nothing.
func checkSelectors(stdout io.Writer, files []string) error {
	docs, err := readDocuments(files)
	if err != nil {
		return err
	}
	type workload struct {
		name   string
		labels map[string]string
	}
	var deployments []workload
	for _, d := range docs {
		if d.kind != "Deployment" {
			continue
		}
		var dep struct {
			Spec struct {
				Template struct {
					Metadata struct {
						Labels map[string]string `json:"labels"`
					} `json:"metadata"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(d.json, &dep); err != nil {
			return fmt.Errorf("%s: %w", d.source, err)
		}
		deployments = append(deployments, workload{d.name, dep.Spec.Template.Metadata.Labels})
	}
	if len(deployments) == 0 {
		return errors.New("selectors: the files hold no Deployment")
	}
	selects := func(selector map[string]string) []string {
		var names []string
		for _, w := range deployments {
			ok := len(selector) > 0
			for k, v := range selector {
				if w.labels[k] != v {
					ok = false
				}
			}
			if ok {
				names = append(names, "Deployment/"+w.name)
			}
		}
		return names
	}
	bad := 0
	for _, d := range docs {
		var selector map[string]string
		switch d.kind {
		case "Service":
			var s struct {
				Spec struct {
					Selector map[string]string `json:"selector"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(d.json, &s); err != nil {
				return fmt.Errorf("%s: %w", d.source, err)
			}
			selector = s.Spec.Selector
		case "PodDisruptionBudget":
			var p struct {
				Spec struct {
					Selector struct {
						MatchLabels      map[string]string `json:"matchLabels"`
						MatchExpressions []any             `json:"matchExpressions"`
					} `json:"selector"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(d.json, &p); err != nil {
				return fmt.Errorf("%s: %w", d.source, err)
			}
			if len(p.Spec.Selector.MatchExpressions) > 0 {
				return fmt.Errorf("%s: matchExpressions are not checked here; use matchLabels", d.source)
			}
			selector = p.Spec.Selector.MatchLabels
		case "HorizontalPodAutoscaler":
			var h struct {
				Spec struct {
					ScaleTargetRef struct {
						Kind string `json:"kind"`
						Name string `json:"name"`
					} `json:"scaleTargetRef"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(d.json, &h); err != nil {
				return fmt.Errorf("%s: %w", d.source, err)
			}
			target := h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name
			found := false
			for _, w := range deployments {
				found = found || target == "Deployment/"+w.name
			}
			if found {
				fmt.Fprintf(stdout, "ok       HorizontalPodAutoscaler/%s scales %s\n", d.name, target)
			} else {
				fmt.Fprintf(stdout, "MISMATCH HorizontalPodAutoscaler/%s (%s) scales %s, which the files do not hold\n", d.name, d.source, target)
				bad++
			}
			continue
		default:
			continue
		}
		if names := selects(selector); len(names) > 0 {
			fmt.Fprintf(stdout, "ok       %s/%s selects the pods of %s\n", d.kind, d.name, strings.Join(names, ", "))
		} else {
			fmt.Fprintf(stdout, "MISMATCH %s/%s (%s) selects %s, which no Deployment's pods carry\n", d.kind, d.name, d.source, formatLabels(selector))
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d selectors or scale targets miss their pods", bad)
	}
	return nil
}

func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "nothing (an empty selector)"
	}
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
