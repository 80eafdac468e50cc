//go:build interop

package interop_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The upstream providers of the connector tests: an Ory Hydra of their
// own, whose login and consent steps are answered by upstreamApp (a user
// chosen per client, so that each deployment's test decides who signs in
// upstream), and zitadel/oidc's example provider with its web client, its
// users logging in on its own pages.

// upstreamHydraKey is the key of the connector tests' Hydra in hydras
// (TestMain stops it with the others); no strategy is named so.
const upstreamHydraKey = "connector-upstream"

// upstreamUser is who upstreamApp logs in for a client, and what its ID
// token says.
type upstreamUser struct {
	Subject           string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Groups            []string
	// AMR is what the upstream says it did (Hydra copies it into the ID
	// token).
	AMR []string
}

// upstreamApp is the login-and-consent app of the connectors' Hydra: it
// accepts every login as the user set for the request's client and grants
// every scope asked for, with the user's claims in the ID token.
type upstreamApp struct {
	Server *httptest.Server

	mu     sync.Mutex
	admin  string
	users  map[string]upstreamUser // by client id
	logins map[string]int          // by client id
}

func newUpstreamApp() *upstreamApp {
	a := &upstreamApp{users: map[string]upstreamUser{}, logins: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /consent", a.consent)
	a.Server = httptest.NewServer(mux)
	return a
}

// SetUser makes u the user of the next logins of clientID.
func (a *upstreamApp) SetUser(clientID string, u upstreamUser) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.users[clientID] = u
}

// Logins is how many logins of clientID the app accepted.
func (a *upstreamApp) Logins(clientID string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.logins[clientID]
}

func (a *upstreamApp) userOf(clientID string) (upstreamUser, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.users[clientID]
	return u, ok
}

func (a *upstreamApp) call(method, path, param, challenge string, body, out any) error {
	a.mu.Lock()
	app := &loginApp{admin: a.admin}
	a.mu.Unlock()
	return app.adminCall(method, path, param, challenge, body, out)
}

func (a *upstreamApp) login(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	var req struct {
		Client struct {
			ClientID string `json:"client_id"`
		} `json:"client"`
	}
	if err := a.call(http.MethodGet, "/admin/oauth2/auth/requests/login", "login_challenge", challenge, nil, &req); err != nil {
		http.Error(w, "login: "+err.Error(), http.StatusBadGateway)
		return
	}
	u, ok := a.userOf(req.Client.ClientID)
	if !ok {
		http.Error(w, "no upstream user set for client "+req.Client.ClientID, http.StatusForbidden)
		return
	}
	body := map[string]any{"subject": u.Subject, "remember": false}
	if len(u.AMR) > 0 {
		body["amr"] = u.AMR
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call(http.MethodPut, "/admin/oauth2/auth/requests/login/accept", "login_challenge", challenge, body, &accepted); err != nil {
		http.Error(w, "login accept: "+err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	a.logins[req.Client.ClientID]++
	a.mu.Unlock()
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

func (a *upstreamApp) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	var req consentRequest
	if err := a.call(http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", challenge, nil, &req); err != nil {
		http.Error(w, "consent: "+err.Error(), http.StatusBadGateway)
		return
	}
	u, _ := a.userOf(req.ClientRef.ClientID)
	claims := map[string]any{"name": u.Name, "email": u.Email, "email_verified": u.EmailVerified}
	if u.PreferredUsername != "" {
		claims["preferred_username"] = u.PreferredUsername
	}
	if u.Groups != nil {
		claims["groups"] = u.Groups
	}
	body := map[string]any{
		"grant_scope":                 req.Scope,
		"grant_access_token_audience": req.Audience,
		"remember":                    false,
		"session":                     map[string]any{"id_token": claims},
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", "consent_challenge", challenge, body, &accepted); err != nil {
		http.Error(w, "consent accept: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

// upstreamHydra is the connector tests' Hydra (JWT access tokens, PKCE
// enforced), started on first use and stopped by TestMain.
type upstreamHydra struct {
	*hydra
	App *upstreamApp
}

var upstream = struct {
	mu  sync.Mutex
	h   *upstreamHydra
	err error
}{}

// connectorHydra returns the connector tests' Hydra, starting it on first
// use; it fails the test, never skips it, when Hydra cannot be started.
func connectorHydra(t *testing.T) *upstreamHydra {
	t.Helper()
	upstream.mu.Lock()
	defer upstream.mu.Unlock()
	if upstream.h != nil {
		return upstream.h
	}
	if upstream.err != nil {
		t.Fatalf("the connectors' Hydra could not be started earlier: %v", upstream.err)
	}
	start := time.Now()
	h, err := startUpstreamHydra()
	if err != nil {
		upstream.err = err
		t.Fatalf("starting the connectors' Hydra: %v", err)
	}
	t.Logf("the connectors' Hydra ready in %s at %s", time.Since(start).Round(time.Millisecond), h.Issuer)
	hydras.mu.Lock()
	hydras.running[upstreamHydraKey] = h.hydra
	hydras.mu.Unlock()
	upstream.h = h
	return h
}

// startUpstreamHydra is startHydra with upstreamApp for login and consent
// and no client registered (each test registers its connector's).
func startUpstreamHydra() (_ *upstreamHydra, err error) {
	bin, err := hydraBinary()
	if err != nil {
		return nil, fmt.Errorf("building Hydra: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	app := newUpstreamApp()
	// hydra.stop closes App.Server and drops the database.
	h := &hydra{Strategy: strategyJWT, exited: make(chan error, 1), App: &loginApp{Server: app.Server}}
	h.dbName = fmt.Sprintf("%s%d_connectors_%s", dbPrefix, os.Getpid(), randomHex(4))
	dsn, err := createDatabase(ctx, h.dbName)
	if err != nil {
		app.Server.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = h.stop()
		}
	}()
	logFile, err := os.CreateTemp("", "nsauth-interop-hydra-connectors-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	h.logPath = logFile.Name()
	env := map[string]string{
		"PATH":                      os.Getenv("PATH"),
		"DSN":                       dsn,
		"SECRETS_SYSTEM":            randomHex(32),
		"URLS_LOGIN":                app.Server.URL + "/login",
		"URLS_CONSENT":              app.Server.URL + "/consent",
		"STRATEGIES_ACCESS_TOKEN":   strategyJWT,
		"TTL_ACCESS_TOKEN":          accessTokenTTL.String(),
		"OAUTH2_PKCE_ENFORCED":      "true", // proves the connector sends PKCE
		"LOG_LEVEL":                 "info",
		"LOG_LEAK_SENSITIVE_VALUES": "false",
		"SQA_OPT_OUT":               "true",
	}
	migrate := exec.CommandContext(ctx, bin, "migrate", "sql", "up", "--read-from-env", "--yes")
	migrate.Env = environ(env)
	migrate.Stdout, migrate.Stderr = logFile, logFile
	if err := migrate.Run(); err != nil {
		return nil, fmt.Errorf("hydra migrate sql up: %v\n%s", err, tailFile(h.logPath, 40))
	}
	for attempt := 1; ; attempt++ {
		publicPort, adminPort, perr := twoFreePorts()
		if perr != nil {
			return nil, perr
		}
		h.Issuer = "http://127.0.0.1:" + strconv.Itoa(publicPort)
		h.AdminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
		env["URLS_SELF_ISSUER"] = h.Issuer
		env["SERVE_PUBLIC_HOST"], env["SERVE_PUBLIC_PORT"] = "127.0.0.1", strconv.Itoa(publicPort)
		env["SERVE_ADMIN_HOST"], env["SERVE_ADMIN_PORT"] = "127.0.0.1", strconv.Itoa(adminPort)
		h.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
		h.cmd.Env = environ(env)
		h.cmd.Stdout, h.cmd.Stderr = logFile, logFile
		h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := h.cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting hydra serve: %w", err)
		}
		h.exited = make(chan error, 1)
		go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(h.cmd, h.exited)
		err = h.waitReady(ctx)
		if err == nil {
			break
		}
		_ = h.stopProcess()
		if attempt == 3 || ctx.Err() != nil {
			return nil, fmt.Errorf("%w\n%s", err, tailFile(h.logPath, 40))
		}
	}
	app.mu.Lock()
	app.admin = h.AdminURL
	app.mu.Unlock()
	if err := h.warmUpKeys(ctx); err != nil {
		return nil, err
	}
	return &upstreamHydra{hydra: h, App: app}, nil
}

// RegisterConnector registers a confidential client at Hydra whose only
// redirect URI is callback (a connector's ISSUER/login/connector/NAME/callback)
// and returns its id and secret.
func (h *upstreamHydra) RegisterConnector(t *testing.T, callback string) (id, secret string) {
	t.Helper()
	id, secret = "nsauth-connector-"+randomHex(6), randomHex(24)
	body, _ := json.Marshal(map[string]any{
		"client_id":                  id,
		"client_secret":              secret,
		"client_name":                "nsauth connector",
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid profile email groups",
		"redirect_uris":              []string{callback},
		"token_endpoint_auth_method": "client_secret_basic",
	})
	resp, err := http.Post(h.AdminURL+"/admin/clients", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("registering the connector's client at Hydra: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("registering the connector's client at Hydra: HTTP %d: %s", resp.StatusCode, b)
	}
	return id, secret
}

// startZitadelUpstream starts zitadel/oidc's example provider with its web
// client (code flow) registered for callback.
func startZitadelUpstream(t *testing.T, callback string) *zitadelOP {
	t.Helper()
	return startZitadelOP(t, zitadelJWT, "-client", "web", "-redirect-uri", callback)
}
