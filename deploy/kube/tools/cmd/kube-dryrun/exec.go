package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
)

// execWithEnv replaces this process with argv, with the environment the container of the one
// Deployment in files would get: its env values, and secretKeyRef values
// read from the Secrets in the same files (a reference to a Secret the
// files do not hold is an error unless optional). sets (NAME=VALUE)
// override or add variables, such as a loopback listen address. PATH and
// TMPDIR are kept; nothing else of this process's environment is. Secret
// values go only into the child's environment, never to the output.
func execWithEnv(files []string, sets []string, argv []string) error {
	if len(argv) == 0 {
		return errors.New("exec: no command given (after --)")
	}
	docs, err := readDocuments(files)
	if err != nil {
		return err
	}
	secrets := map[string]map[string]string{}
	var deployment *document
	for i, d := range docs {
		switch d.kind {
		case "Secret":
			var s struct {
				Data map[string]string `json:"data"`
			}
			if err := json.Unmarshal(d.json, &s); err != nil {
				return fmt.Errorf("%s: %w", d.source, err)
			}
			values := map[string]string{}
			for k, v := range s.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					return fmt.Errorf("%s: key %s is not base64", d.source, k)
				}
				values[k] = string(b)
			}
			secrets[d.name] = values
		case "Deployment":
			if deployment != nil {
				return errors.New("exec: the files hold more than one Deployment")
			}
			deployment = &docs[i]
		}
	}
	if deployment == nil {
		return errors.New("exec: the files hold no Deployment")
	}
	var dep struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string  `json:"name"`
							Value     *string `json:"value"`
							ValueFrom *struct {
								SecretKeyRef *struct {
									Name     string `json:"name"`
									Key      string `json:"key"`
									Optional bool   `json:"optional"`
								} `json:"secretKeyRef"`
							} `json:"valueFrom"`
						} `json:"env"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(deployment.json, &dep); err != nil {
		return fmt.Errorf("%s: %w", deployment.source, err)
	}
	if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
		return fmt.Errorf("exec: %s has %d containers, want 1", deployment.source, n)
	}
	env := map[string]string{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.Value != nil:
			env[e.Name] = *e.Value
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secrets[ref.Name][ref.Key]
			if !ok {
				if ref.Optional {
					continue
				}
				return fmt.Errorf("exec: %s takes %s from key %s of Secret %s, which the files do not hold", deployment.source, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		default:
			return fmt.Errorf("exec: %s: variable %s has neither a value nor a secretKeyRef", deployment.source, e.Name)
		}
	}
	for _, s := range sets {
		name, value, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return fmt.Errorf("exec: -set %q is not NAME=VALUE", s)
		}
		env[name] = value
	}
	list := []string{"PATH=" + os.Getenv("PATH")}
	if t, ok := os.LookupEnv("TMPDIR"); ok {
		list = append(list, "TMPDIR="+t)
	}
	names := make([]string, 0, len(env))
	for name, value := range env {
		list = append(list, name+"="+value)
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "kube-dryrun exec: running %s with %s\n", argv[0], strings.Join(names, " "))
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// Replaced, not a child: the caller's PID is the command's, for signals.
	return syscall.Exec(path, argv, list)
}
