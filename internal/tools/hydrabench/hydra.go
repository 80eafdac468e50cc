package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-jose/go-jose/v4"
)

// hydraAccessTokenKeySet is the key set whose private key signs Hydra's
// JWT access tokens (Hydra's x.OAuth2JWTKeyName).
const hydraAccessTokenKeySet = "hydra.jwt.access-token"

// hydraDefaultIterations is the PBKDF2 iteration count of Hydra v2's
// hasher when none is configured (oauth2.hashers.pbkdf2.iterations).
const hydraDefaultIterations = 25000

// startHydra migrates a SQLite database of its own, starts `hydra serve
// all` on two loopback ports with JWT access tokens, in configuration
// hydraDefaults or hydraTuned, registers a client_credentials client
// through the admin API and returns the target: that client at the token
// endpoint, and the admin API's introspection endpoint (which takes no
// client authentication).
//
// Both configurations open SQLite as nsauth does (WAL journal, synchronous
// NORMAL; Hydra's pop adds a 5 s busy timeout), so that the journal is not
// what is compared.
func startHydra(ctx context.Context, client *http.Client, bin, workDir, configuration string) (*target, error) {
	dir := filepath.Join(workDir, "hydra-"+configuration)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	publicPort, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	issuerURL := "http://127.0.0.1:" + strconv.Itoa(publicPort)
	adminURL := "http://127.0.0.1:" + strconv.Itoa(adminPort)
	env := append(baseEnv(dir),
		"DSN=sqlite://"+filepath.Join(dir, "hydra.sqlite")+"?_fk=true&_journal_mode=WAL&_synchronous=NORMAL",
		"SECRETS_SYSTEM="+randomHex(32),
		"URLS_SELF_ISSUER="+issuerURL,
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(adminPort),
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"LOG_LEAK_SENSITIVE_VALUES=false",
		"SQA_OPT_OUT=true",
	)
	iterations := hydraDefaultIterations
	if configuration == hydraTuned {
		iterations = 1
		env = append(env, "OAUTH2_HASHERS_ALGORITHM=pbkdf2", "OAUTH2_HASHERS_PBKDF2_ITERATIONS=1")
	}
	logPath := filepath.Join(dir, "hydra.log")
	migrate, err := startProcess(bin, []string{"migrate", "sql", "up", "--read-from-env", "--yes"}, env, logPath)
	if err != nil {
		return nil, err
	}
	<-migrate.done
	migrate.log.Close()
	if migrate.err != nil {
		return nil, fmt.Errorf("hydra migrate sql up: %v; see %s", migrate.err, logPath)
	}

	proc, err := startProcess(bin, []string{"serve", "all", "--dev", "--sqa-opt-out"}, env, logPath)
	if err != nil {
		return nil, err
	}
	t := &target{name: "hydra", config: configuration, proc: proc, client: client,
		secretHash: fmt.Sprintf("PBKDF2, %d iteration", iterations), introspectURL: adminURL + "/admin/oauth2/introspect"}
	if iterations != 1 {
		t.secretHash += "s"
	}
	ok := false
	defer func() {
		if !ok {
			proc.stop()
		}
	}()
	if err := proc.waitReady(ctx, client, adminURL+"/health/ready"); err != nil {
		return nil, err
	}
	var d struct {
		Token string `json:"token_endpoint"`
	}
	if err := getJSON(ctx, client, issuerURL+"/.well-known/openid-configuration", &d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if d.Token == "" {
		return nil, errors.New("discovery names no token endpoint")
	}
	t.tokenURL = d.Token

	if configuration == hydraTuned {
		if err := importRSAKey(ctx, client, adminURL, 2048); err != nil {
			return nil, err
		}
	}
	secret := randomHex(32)
	var created struct {
		ClientID string `json:"client_id"`
	}
	if err := adminCall(ctx, client, http.MethodPost, adminURL+"/admin/clients", map[string]any{
		"client_name":                "hydrabench",
		"client_secret":              secret,
		"grant_types":                []string{"client_credentials"},
		"response_types":             []string{"token"},
		"scope":                      "bench",
		"token_endpoint_auth_method": "client_secret_basic",
	}, http.StatusCreated, &created); err != nil {
		return nil, fmt.Errorf("creating the client: %w", err)
	}
	if created.ClientID == "" {
		return nil, errors.New("creating the client: no client_id in the answer")
	}
	t.tokenAuth = basicAuth(created.ClientID, secret)
	ok = true
	return t, nil
}

// importRSAKey replaces the key set that signs access tokens with one RSA
// key of bits bits, made here: Hydra generates RSA keys of 4096 bits and
// has no setting for their size, but its admin API takes a key set
// (PUT /admin/keys/{set}).
func importRSAKey(ctx context.Context, client *http.Client, adminURL string, bits int) error {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "hydrabench-rsa-" + strconv.Itoa(bits), Algorithm: string(jose.RS256), Use: "sig"}}}
	if err := adminCall(ctx, client, http.MethodPut, adminURL+"/admin/keys/"+hydraAccessTokenKeySet, set, http.StatusOK, nil); err != nil {
		return fmt.Errorf("importing the access-token key: %w", err)
	}
	return nil
}

// adminCall sends body as JSON and decodes the answer into out (when not
// nil). An error names the status and Hydra's error code only: the
// answers to these calls hold the client's secret and the private key.
func adminCall(ctx context.Context, client *http.Client, method, url string, body any, want int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(answer, &e)
		return fmt.Errorf("HTTP %d %s", resp.StatusCode, e.Error)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
