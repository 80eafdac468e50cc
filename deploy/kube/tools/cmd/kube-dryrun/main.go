// Command kube-dryrun sends Kubernetes manifests to a kube-apiserver as
// server-side dry runs (?dryRun=All&fieldValidation=Strict): the server
// decodes, defaults, validates and admits each object exactly as it would
// create it, and stores nothing. It checks what schemas cannot, such as a
// Deployment whose selector does not match its pod template's labels.
//
// It is the client half of deploy/ci-helm.sh, talking to the loopback
// kube-apiserver started from deploy/kube/apiserver:
//
//	kube-dryrun prepare -dir DIR
//	    writes DIR/sa.key (the service-account signing key the apiserver
//	    requires), DIR/tokens.csv (its --token-auth-file) and DIR/token
//	kube-dryrun wait  -server URL -dir DIR [-timeout 3m]
//	    waits until the server's /readyz answers ok
//	kube-dryrun apply -server URL -dir DIR -namespace NS FILE...
//	    creates NS (for real), then dry-runs every document of every FILE
//	    and prints, for each, accepted or REFUSED with what the server said;
//	    exits 1 when any document is refused; with -dry-run=false it creates
//	    them (the CustomResourceDefinitions later dry runs need)
//	kube-dryrun selectors FILE...
//	    checks, offline, that every Service and PodDisruptionBudget selects
//	    the pods of a Deployment in FILE... and every HorizontalPodAutoscaler
//	    scales one of them; exits 1 when one does not
//	kube-dryrun exec [-set NAME=VALUE]... FILE... -- COMMAND ARGS...
//	    runs COMMAND with the environment the container of the Deployment in
//	    FILE... would get (secretKeyRef values from the Secrets in FILE...),
//	    to check that the server starts with it
//
// The server's certificate is checked against DIR/certs/apiserver.crt, the
// self-signed certificate kube-apiserver writes to its --cert-dir.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kube-dryrun: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: kube-dryrun prepare|wait|apply|selectors|exec [flags]")
	}
	fs := flag.NewFlagSet("kube-dryrun "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", "", "directory of the key, token and the apiserver's --cert-dir (certs/)")
	server := fs.String("server", "https://127.0.0.1:16443", "kube-apiserver URL")
	namespace := fs.String("namespace", "nsauth", "namespace of namespaced objects")
	timeout := fs.Duration("timeout", 3*time.Minute, "wait: how long to wait for /readyz")
	dryRun := fs.Bool("dry-run", true, "apply: false creates the objects for real (for a CRD the dry runs need)")
	var sets multiFlag
	fs.Var(&sets, "set", "exec: NAME=VALUE to add to or override in the Deployment's environment (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "selectors":
		return checkSelectors(stdout, fs.Args())
	case "exec":
		files, argv := fs.Args(), []string(nil)
		for i, a := range files {
			if a == "--" {
				files, argv = files[:i], files[i+1:]
				break
			}
		}
		return execWithEnv(files, sets, argv)
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	switch args[0] {
	case "prepare":
		return prepare(*dir)
	case "wait":
		c, err := newClient(*server, *dir)
		if err != nil {
			return err
		}
		return c.waitReady(*timeout)
	case "apply":
		c, err := newClient(*server, *dir)
		if err != nil {
			return err
		}
		return c.apply(stdout, *namespace, fs.Args(), *dryRun)
	default:
		return fmt.Errorf("unknown command %q: want prepare, wait, apply, selectors or exec", args[0])
	}
}

func prepare(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	token := hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
		return err
	}
	// token,user,uid,"group": system:masters may do everything.
	line := fmt.Sprintf("%s,dryrun-admin,dryrun-admin,\"system:masters\"\n", token)
	return os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(line), 0o600)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

type client struct {
	server string
	token  string
	dir    string
	http   *http.Client
}

func newClient(server, dir string) (*client, error) {
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return nil, fmt.Errorf("reading the token (run kube-dryrun prepare first): %w", err)
	}
	return &client{server: strings.TrimSuffix(server, "/"), token: string(token), dir: dir}, nil
}

// httpClient trusts the certificate the apiserver wrote to its cert dir;
// it is read late because the server writes it as it starts.
func (c *client) httpClient() (*http.Client, error) {
	if c.http != nil {
		return c.http, nil
	}
	pemBytes, err := os.ReadFile(filepath.Join(c.dir, "certs", "apiserver.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("certs/apiserver.crt holds no certificate")
	}
	c.http = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c.http, nil
}

func (c *client) do(method, path string, body []byte) (int, []byte, error) {
	hc, err := c.httpClient()
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

func (c *client) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		status, body, err := c.do(http.MethodGet, "/readyz", nil)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("HTTP %d: %s", status, lastLines(string(body), 5))
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("kube-apiserver at %s not ready after %s: %s", c.server, timeout, last)
}

type document struct {
	source string // "file, templates/x.yaml" or "file, document N"
	json   []byte
	gv     string
	kind   string
	name   string
}

var sourceComment = regexp.MustCompile(`(?m)^# Source: (\S+)`)

func readDocuments(files []string) ([]document, error) {
	var docs []document
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for n := 1; ; n++ {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: document %d: %w", file, n, err)
			}
			source := fmt.Sprintf("%s, document %d", file, n)
			if m := sourceComment.FindSubmatch(raw); m != nil {
				source = fmt.Sprintf("%s, %s", file, m[1])
			}
			j, err := yaml.YAMLToJSONStrict(raw)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			if string(j) == "null" {
				continue // only comments
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(j, &head); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: not an object: %w", source, err)
			}
			if head.APIVersion == "" || head.Kind == "" {
				f.Close()
				return nil, fmt.Errorf("%s: no apiVersion or kind", source)
			}
			docs = append(docs, document{source: source, json: j, gv: head.APIVersion, kind: head.Kind, name: head.Metadata.Name})
		}
		f.Close()
	}
	return docs, nil
}

type resource struct {
	name       string
	namespaced bool
}

// discover maps a kind of group/version to its resource through the
// server's discovery documents.
func (c *client) discover(gv, kind string, cache map[string]map[string]resource) (resource, error) {
	kinds, ok := cache[gv]
	if !ok {
		path := "/apis/" + gv
		if !strings.Contains(gv, "/") {
			path = "/api/" + gv
		}
		var status int
		var body []byte
		var err error
		// A new CRD's group is served a moment after its creation.
		for try := 0; try < 30; try++ {
			status, body, err = c.do(http.MethodGet, path, nil)
			if err != nil {
				return resource{}, err
			}
			if status != http.StatusNotFound {
				break
			}
			time.Sleep(time.Second)
		}
		if status != http.StatusOK {
			return resource{}, fmt.Errorf("the server does not serve %s (HTTP %d on %s)", gv, status, path)
		}
		var list struct {
			Resources []struct {
				Name       string `json:"name"`
				Kind       string `json:"kind"`
				Namespaced bool   `json:"namespaced"`
			} `json:"resources"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return resource{}, fmt.Errorf("discovery of %s: %w", gv, err)
		}
		kinds = map[string]resource{}
		for _, r := range list.Resources {
			if !strings.Contains(r.Name, "/") {
				kinds[r.Kind] = resource{name: r.Name, namespaced: r.Namespaced}
			}
		}
		cache[gv] = kinds
	}
	r, ok := kinds[kind]
	if !ok {
		return resource{}, fmt.Errorf("the server serves no kind %s in %s", kind, gv)
	}
	return r, nil
}

func (c *client) apply(stdout io.Writer, namespace string, files []string, dryRun bool) error {
	if len(files) == 0 {
		return errors.New("apply: no manifest files given")
	}
	docs, err := readDocuments(files)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		return errors.New("apply: the files hold no Kubernetes objects")
	}
	if err := c.ensureNamespace(namespace); err != nil {
		return err
	}
	cache := map[string]map[string]resource{}
	refused := 0
	for _, d := range docs {
		what := fmt.Sprintf("%s/%s (%s)", d.kind, d.name, d.source)
		r, err := c.discover(d.gv, d.kind, cache)
		if err != nil {
			fmt.Fprintf(stdout, "REFUSED  %s: %v\n", what, err)
			refused++
			continue
		}
		prefix := "/apis/" + d.gv
		if !strings.Contains(d.gv, "/") {
			prefix = "/api/" + d.gv
		}
		path := prefix + "/" + r.name
		if r.namespaced {
			path = prefix + "/namespaces/" + url.PathEscape(namespace) + "/" + r.name
		}
		query := "?fieldValidation=Strict"
		if dryRun {
			query += "&dryRun=All"
		}
		status, body, err := c.do(http.MethodPost, path+query, d.json)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if status/100 == 2 {
			fmt.Fprintf(stdout, "accepted %s\n", what)
			continue
		}
		refused++
		fmt.Fprintf(stdout, "REFUSED  %s: HTTP %d: %s\n", what, status, statusMessage(body))
	}
	if refused > 0 {
		return fmt.Errorf("the apiserver refused %d of %d documents", refused, len(docs))
	}
	how := "created"
	if dryRun {
		how = "dry run"
	}
	fmt.Fprintf(stdout, "the apiserver accepted all %d documents (%s, strict field validation)\n", len(docs), how)
	return nil
}

func (c *client) ensureNamespace(ns string) error {
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns},
	})
	status, resp, err := c.do(http.MethodPost, "/api/v1/namespaces", body)
	if err != nil {
		return err
	}
	if status/100 != 2 && status != http.StatusConflict {
		return fmt.Errorf("creating namespace %s: HTTP %d: %s", ns, status, statusMessage(resp))
	}
	return nil
}

// statusMessage is the message of a metav1.Status answer, or the body.
func statusMessage(body []byte) string {
	var s struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &s) == nil && s.Message != "" {
		return s.Message
	}
	return lastLines(string(body), 10)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
