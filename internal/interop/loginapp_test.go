//go:build interop

package interop_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// The user the login app logs in, and the ID-token claims it grants.
const (
	userSubject = "interop-user-1"
	userName    = "Interop User"
	userEmail   = "interop.user@example.test"
)

// loginApp is the login-and-consent app Hydra delegates to (Hydra has no
// user database or login page of its own). It logs in userSubject at once
// and grants exactly what the client asked for, through Hydra's admin API:
//
//	GET  admin /admin/oauth2/auth/requests/login?login_challenge=…
//	PUT  admin /admin/oauth2/auth/requests/login/accept?login_challenge=…
//	GET  admin /admin/oauth2/auth/requests/consent?consent_challenge=…
//	PUT  admin /admin/oauth2/auth/requests/consent/accept?consent_challenge=…
//
// and redirects the browser to the redirect_to Hydra answers.
type loginApp struct {
	Server *httptest.Server

	mu       sync.Mutex
	admin    string
	consents []consentRequest
}

// consentRequest is what Hydra told the app about one authorization.
type consentRequest struct {
	// RequestURL is the authorize URL the client sent the browser to.
	RequestURL string   `json:"request_url"`
	Subject    string   `json:"subject"`
	Scope      []string `json:"requested_scope"`
	Audience   []string `json:"requested_access_token_audience"`
	ClientRef  struct {
		ClientID string `json:"client_id"`
	} `json:"client"`
}

func newLoginApp() *loginApp {
	a := &loginApp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /consent", a.consent)
	a.Server = httptest.NewServer(mux)
	return a
}

func (a *loginApp) setAdminURL(u string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admin = u
}

// Consent returns what the app saw in the consent request of the
// authorization with state, if there was one.
func (a *loginApp) Consent(state string) (consentRequest, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.consents {
		if u, err := url.Parse(c.RequestURL); err == nil && u.Query().Get("state") == state {
			return c, true
		}
	}
	return consentRequest{}, false
}

func (a *loginApp) adminURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.admin
}

func (a *loginApp) login(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	var req struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if err := a.adminCall(http.MethodGet, "/admin/oauth2/auth/requests/login", "login_challenge", challenge, nil, &req); err != nil {
		http.Error(w, "login: "+err.Error(), http.StatusBadGateway)
		return
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	body := map[string]any{"subject": userSubject, "remember": false}
	if err := a.adminCall(http.MethodPut, "/admin/oauth2/auth/requests/login/accept", "login_challenge", challenge, body, &accepted); err != nil {
		http.Error(w, "login accept: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

func (a *loginApp) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	var req consentRequest
	if err := a.adminCall(http.MethodGet, "/admin/oauth2/auth/requests/consent", "consent_challenge", challenge, nil, &req); err != nil {
		http.Error(w, "consent: "+err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	a.consents = append(a.consents, req)
	a.mu.Unlock()
	body := map[string]any{
		"grant_scope":                 req.Scope,
		"grant_access_token_audience": req.Audience,
		"remember":                    false,
		"session": map[string]any{
			"id_token": map[string]any{"name": userName, "email": userEmail},
		},
	}
	var accepted struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.adminCall(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept", "consent_challenge", challenge, body, &accepted); err != nil {
		http.Error(w, "consent accept: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, accepted.RedirectTo, http.StatusFound)
}

// adminCall calls Hydra's admin API. Error texts carry the status and
// Hydra's error body, never the challenge.
func (a *loginApp) adminCall(method, path, param, challenge string, body, out any) error {
	if challenge == "" {
		return errors.New("no challenge")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.adminURL()+path+"?"+url.Values{param: {challenge}}.Encode(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return errors.New("admin API unreachable")
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("admin API: HTTP %d: %.300s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// browser is an HTTP client with cookies (Hydra's CSRF cookies need them),
// following redirects as a web browser does.
type browser struct {
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// No keep-alive: net/http silently resends a GET whose reused
	// connection died before the answer, and Hydra's verifiers are
	// one-time. A lost answer must fail as what it is.
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{client: &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second}}
}

// authorize follows authorizeURL through Hydra and the login app and stops
// at the redirect to redirectURI, which nobody listens on; it returns that
// redirect's query (code and state, or error).
func (b *browser) authorize(t *testing.T, authorizeURL, redirectURI string) url.Values {
	t.Helper()
	target, err := url.Parse(redirectURI)
	if err != nil {
		t.Fatal(err)
	}
	var final *url.URL
	c := *b.client
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == target.Host && req.URL.Path == target.Path {
			final = req.URL
			return http.ErrUseLastResponse
		}
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}
	resp, err := c.Get(authorizeURL)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	defer resp.Body.Close()
	if final == nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		u := resp.Request.URL // without its query, which may hold a challenge
		t.Fatalf("browser ended on %s://%s%s with HTTP %d, not at the redirect URI:\n%s", u.Scheme, u.Host, u.Path, resp.StatusCode, body)
	}
	return final.Query()
}

// open follows authorizeURL all the way, to the CLI's callback listener,
// and returns the final status and page.
func (b *browser) open(t *testing.T, authorizeURL string) (int, string) {
	t.Helper()
	resp, err := b.client.Get(authorizeURL)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body)
}
