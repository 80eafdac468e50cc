package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// target is one server under load: where its two endpoints are, how to
// authenticate at them, and the process that serves them.
type target struct {
	// name is "nsauth" or "hydra"; config says which configuration.
	name, config string
	// settings describes, for the report, what the configuration
	// amounts to: set by describe from an issued token, and by the start
	// function for what a token does not show (how secrets are hashed).
	settings, secretHash string

	proc   *process
	client *http.Client

	tokenURL, tokenAuth string
	// introspectAuth is empty where introspection takes no client
	// authentication (Hydra's admin API).
	introspectURL, introspectAuth string
	// token is an access token the introspection scenario asks about.
	token string
}

func (t *target) label() string { return t.name + " (" + t.config + ")" }

// stop stops the target's server and closes its idle connections.
func (t *target) stop() {
	t.proc.stop()
	t.client.CloseIdleConnections()
}

// newClient is a keep-alive client with an idle connection for each of
// concurrency clients, and no proxy: every target is on loopback.
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// basicAuth is the Authorization header of client_secret_basic (RFC 6749
// §2.3.1: each part form-encoded first).
func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// call is one request of a scenario: where it goes and what it sends.
type call struct {
	url, auth, body string
	// active requires an introspection answer saying the token is active.
	active bool
}

func (t *target) call(scenario string) call {
	if scenario == scenarioIntrospection {
		return call{url: t.introspectURL, auth: t.introspectAuth, body: url.Values{"token": {t.token}}.Encode(), active: true}
	}
	return call{url: t.tokenURL, auth: t.tokenAuth, body: url.Values{"grant_type": {"client_credentials"}}.Encode()}
}

// do sends c once and returns nil when the answer is a success: HTTP 200,
// and for introspection an active token. The error never holds the
// request or the answer's body, only its status and OAuth error code.
func (c call) do(ctx context.Context, client *http.Client) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(c.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return nil, uerr.Err
		}
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, fmt.Errorf("HTTP %d %s", resp.StatusCode, e.Error)
	}
	if c.active && !bytes.Contains(body, []byte(`"active":true`)) {
		return nil, errors.New("HTTP 200, token not active")
	}
	return body, nil
}

// describe gets an access token at the token endpoint, checks that
// introspection calls it active, keeps it for the introspection scenario,
// and reads from it the signature algorithm and the key's size.
func (t *target) describe(ctx context.Context) error {
	body, err := t.call(scenarioClientCredentials).do(ctx, t.client)
	if err != nil {
		return fmt.Errorf("client credentials: %w", err)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return errors.New("client credentials: no access_token in the answer")
	}
	t.token = tr.AccessToken
	alg, bits, err := signature(t.token)
	if err != nil {
		return fmt.Errorf("the access token: %w", err)
	}
	t.settings = fmt.Sprintf("JWT %s, RSA-%d; client secrets: %s", alg, bits, t.secretHash)
	if _, err := t.call(scenarioIntrospection).do(ctx, t.client); err != nil {
		return fmt.Errorf("introspection: %w", err)
	}
	return nil
}

// signature returns a JWT's algorithm and, for RSA, the size of the key
// that signed it, which is the size of the signature.
func signature(jwt string) (alg string, bits int, err error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", 0, errors.New("not a JWT")
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", 0, fmt.Errorf("header: %w", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return "", 0, fmt.Errorf("header: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", 0, fmt.Errorf("signature: %w", err)
	}
	if !strings.HasPrefix(h.Alg, "RS") && !strings.HasPrefix(h.Alg, "PS") {
		return "", 0, fmt.Errorf("signed with %s, not RSA", h.Alg)
	}
	return h.Alg, len(sig) * 8, nil
}
