package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
)

// startNsauth starts nsauth-server with the built-in provider on SQLite in
// a data directory of its own, as an operator would (`nsauth serve`), adds
// a machine client with `nsauth clients add`, and returns the target:
// the machine client at the token endpoint, and the broker's client (the
// resource server in front of the provider, the only client that may
// introspect a machine's token) at the introspection endpoint.
//
// Settings besides the defaults: the per-client and per-address limits
// of the client-credentials grant are off (one client on one address
// would reach them in a second; Hydra has none), the issuer is the
// 127.0.0.1 address (not localhost, which may resolve to ::1 first), and
// the administrator's password is set rather than generated so that none
// goes to the log.
func startNsauth(ctx context.Context, client *http.Client, bin, workDir string) (*target, error) {
	dir := filepath.Join(workDir, "nsauth")
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := append(baseEnv(dir),
		"NSAUTH_ADMIN_PASSWORD="+randomHex(16),
		"NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE=0",
		"NSAUTH_MACHINE_TOKEN_ADDRESS_RATE_LIMIT_PER_MINUTE=0",
	)
	proc, err := startProcess(bin, []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:" + strconv.Itoa(port), "--issuer", base}, env, filepath.Join(dir, "serve.log"))
	if err != nil {
		return nil, err
	}
	t := &target{name: "nsauth", config: "built-in", proc: proc, client: client, secretHash: "SHA-256"}
	ok := false
	defer func() {
		if !ok {
			proc.stop()
		}
	}()
	if err := proc.waitReady(ctx, t.client, base+"/readyz"); err != nil {
		return nil, err
	}

	var d struct {
		Token         string `json:"token_endpoint"`
		Introspection string `json:"introspection_endpoint"`
	}
	if err := getJSON(ctx, t.client, base+"/.well-known/openid-configuration", &d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if d.Token == "" || d.Introspection == "" {
		return nil, errors.New("discovery names no token or introspection endpoint")
	}
	t.tokenURL, t.introspectURL = d.Token, d.Introspection

	id, secret, err := addMachineClient(ctx, bin, dataDir, env)
	if err != nil {
		return nil, err
	}
	t.tokenAuth = basicAuth(id, secret)
	brokerSecret, err := brokerSecret(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	t.introspectAuth = basicAuth(issuer.DefaultClientID, brokerSecret)
	ok = true
	return t, nil
}

// addMachineClient runs `nsauth clients add` and returns the client's id
// and secret.
func addMachineClient(ctx context.Context, bin, dataDir string, env []string) (id, secret string, err error) {
	cmd := exec.CommandContext(ctx, bin, "clients", "add", "hydrabench", "--scopes", "bench", "--json", "--data-dir", dataDir)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("nsauth clients add: %w: %s", err, bytes.TrimSpace(errOut.Bytes()))
	}
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out.Bytes(), &c); err != nil || c.ClientID == "" || c.ClientSecret == "" {
		return "", "", errors.New("nsauth clients add --json printed no client id and secret")
	}
	return c.ClientID, c.ClientSecret, nil
}

// brokerSecret reads the secret of the broker's client from the store,
// as the server does at start: nsauth never shows it, because the one
// resource server that introspects machine tokens is nsauth itself.
func brokerSecret(ctx context.Context, dataDir string) (string, error) {
	st, err := app.OpenKeyedStore(ctx, config.Store{DataDir: dataDir}, config.SecretKeys{}, time.Now)
	if err != nil {
		return "", err
	}
	defer st.Close()
	s, err := st.Secret(ctx, issuer.BrokerSecretName(issuer.DefaultClientID))
	if errors.Is(err, store.ErrNotFound) {
		return "", errors.New("the broker's client has no secret in the store")
	}
	return s, err
}

// getJSON decodes the JSON answer of a GET.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
