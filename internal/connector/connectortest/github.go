package connectortest

import (
	"crypto/hmac"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/connector"
)

// Paths of the fake GitHub: the web origin's OAuth endpoints, and the API
// under GitHubAPIPrefix (as GitHub Enterprise serves it).
const (
	GitHubPathAuthorize = "/login/oauth/authorize"
	GitHubPathToken     = "/login/oauth/access_token"
	GitHubAPIPrefix     = "/api/v3"
	GitHubPathUser      = GitHubAPIPrefix + "/user"
	GitHubPathEmails    = GitHubAPIPrefix + "/user/emails"
	GitHubPathOrgs      = GitHubAPIPrefix + "/user/orgs"
	GitHubPathTeams     = GitHubAPIPrefix + "/user/teams"
)

// GitHubUser is who the fake GitHub signs in.
type GitHubUser struct {
	ID    int64
	Login string
	Name  string
	// Emails is what /user/emails lists.
	Emails []GitHubEmail
	// Orgs are the logins of the organisations /user/orgs lists; Teams
	// are "org/team-slug", listed by /user/teams.
	Orgs  []string
	Teams []string
}

// GitHubEmail is one of a GitHub user's addresses.
type GitHubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// GitHubMisbehaviour makes the fake GitHub answer wrongly. The zero value
// behaves.
type GitHubMisbehaviour struct {
	// Error makes the authorization endpoint redirect back with
	// error=Error instead of a code.
	Error string
	// TokenError makes the token endpoint answer, as GitHub does, 200
	// with {"error": TokenError}.
	TokenError string
	// APIStatus makes every API request answer this HTTP status.
	APIStatus int
	// HugeUser pads the /user answer with this many bytes of junk.
	HugeUser int
	// RedirectAPI makes the API answer 307 to the issuer's own /user.
	RedirectAPI bool
}

// GitHub is a fake GitHub (an OAuth app's view of it): authorization,
// token, /user, /user/emails, /user/orgs and /user/teams, on one server
// that is both the web origin (URL) and the API (APIURL).
type GitHub struct {
	Server *httptest.Server
	// URL is the web origin (GitHubSettings.BaseURL), APIURL the API
	// (GitHubSettings.APIURL).
	URL, APIURL            string
	ClientID, ClientSecret string

	mu          sync.Mutex
	user        GitHubUser
	bad         GitHubMisbehaviour
	redirects   []string
	requirePKCE bool
	codes       map[string]*githubGrant
	tokens      map[string]bool
	scopes      map[string]string // token → granted scopes
	counts      map[string]int
}

type githubGrant struct {
	redirectURI, challenge, scope string
	bad                           GitHubMisbehaviour
	expires                       time.Time
}

// GitHubOption configures a fake GitHub.
type GitHubOption func(*GitHub)

// WithGitHubRedirectURI registers the exact callback URLs the fake accepts
// (any when none is registered).
func WithGitHubRedirectURI(uris ...string) GitHubOption {
	return func(g *GitHub) { g.redirects = append(g.redirects, uris...) }
}

// WithGitHubClient sets the OAuth app's client id and secret.
func WithGitHubClient(id, secret string) GitHubOption {
	return func(g *GitHub) { g.ClientID, g.ClientSecret = id, secret }
}

// WithGitHubPKCERequired refuses authorization requests without a PKCE
// S256 challenge.
func WithGitHubPKCERequired() GitHubOption { return func(g *GitHub) { g.requirePKCE = true } }

// NewGitHub starts a fake GitHub signing in DefaultGitHubUser, stopped
// when the test ends.
func NewGitHub(tb testing.TB, opts ...GitHubOption) *GitHub {
	tb.Helper()
	g := &GitHub{
		ClientID:     "Iv1.fakeclient",
		ClientSecret: "github-secret-" + randomString(8),
		user:         DefaultGitHubUser(),
		codes:        map[string]*githubGrant{},
		tokens:       map[string]bool{},
		scopes:       map[string]string{},
		counts:       map[string]int{},
	}
	for _, opt := range opts {
		opt(g)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(GitHubPathAuthorize, g.count(GitHubPathAuthorize, g.serveAuthorize))
	mux.HandleFunc(GitHubPathToken, g.count(GitHubPathToken, g.serveToken))
	for _, p := range []string{GitHubPathUser, GitHubPathEmails, GitHubPathOrgs, GitHubPathTeams} {
		mux.HandleFunc(p, g.count(p, g.serveAPI))
	}
	g.Server = httptest.NewServer(mux)
	g.URL = g.Server.URL
	g.APIURL = g.Server.URL + GitHubAPIPrefix
	tb.Cleanup(g.Server.Close)
	return g
}

// DefaultGitHubUser is the user a new fake GitHub signs in: a member of
// org "acme" and its team "acme/platform", with a verified primary email.
func DefaultGitHubUser() GitHubUser {
	return GitHubUser{
		ID:     4242,
		Login:  "octocat",
		Name:   "Mona Octocat",
		Emails: []GitHubEmail{{Email: "mona@acme.example", Primary: true, Verified: true}, {Email: "mona@old.example", Verified: false}},
		Orgs:   []string{"acme"},
		Teams:  []string{"acme/platform"},
	}
}

// Settings returns connector settings for this fake.
func (g *GitHub) Settings() connector.GitHubSettings {
	return connector.GitHubSettings{ClientID: g.ClientID, BaseURL: g.URL, APIURL: g.APIURL}
}

// SetUser changes who signs in; it applies to the API at once, also for
// tokens already issued.
func (g *GitHub) SetUser(u GitHubUser) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.user = u
}

// User returns who signs in.
func (g *GitHub) User() GitHubUser {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.user
}

// SetTeams replaces the user's teams ("org/slug"), at once.
func (g *GitHub) SetTeams(teams ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.user.Teams = teams
}

// SetOrgs replaces the user's organisations, at once.
func (g *GitHub) SetOrgs(orgs ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.user.Orgs = orgs
}

// Misbehave sets how the fake misbehaves from now on (zero: behave).
func (g *GitHub) Misbehave(m GitHubMisbehaviour) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.bad = m
}

// Count returns how many requests reached path.
func (g *GitHub) Count(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.counts[path]
}

func (g *GitHub) count(path string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.counts[path]++
		g.mu.Unlock()
		h(w, r)
	}
}

func (g *GitHub) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	g.mu.Lock()
	registered := len(g.redirects) == 0 || slices.Contains(g.redirects, redirect)
	bad, requirePKCE := g.bad, g.requirePKCE
	g.mu.Unlock()
	if err != nil || redirect == "" || (ru.Scheme != "http" && ru.Scheme != "https") || !registered || q.Get("client_id") != g.ClientID {
		http.Error(w, "The redirect_uri is not associated with this application.", http.StatusBadRequest)
		return
	}
	back := ru.Query()
	if s := q.Get("state"); s != "" {
		back.Set("state", s)
	}
	fail := func(code string) {
		back.Set("error", code)
		ru.RawQuery = back.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	switch {
	case q.Get("code_challenge") == "" && requirePKCE,
		q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256":
		fail("invalid_request")
		return
	case bad.Error != "":
		fail(bad.Error)
		return
	}
	code := randomString(10)
	g.mu.Lock()
	g.codes[code] = &githubGrant{redirectURI: redirect, challenge: q.Get("code_challenge"), scope: q.Get("scope"), bad: bad, expires: time.Now().Add(10 * time.Minute)}
	g.mu.Unlock()
	back.Set("code", code)
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

// serveToken answers as GitHub does: errors with 200 and an error member,
// JSON only when asked for with Accept: application/json (form-encoded
// otherwise).
func (g *GitHub) serveToken(w http.ResponseWriter, r *http.Request) {
	answer := func(v map[string]string) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusOK, v)
			return
		}
		form := url.Values{}
		for k, s := range v {
			form.Set(k, s)
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		_, _ = w.Write([]byte(form.Encode()))
	}
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		answer(map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != g.ClientID || !hmac.Equal([]byte(secret), []byte(g.ClientSecret)) {
		answer(map[string]string{"error": "incorrect_client_credentials"})
		return
	}
	g.mu.Lock()
	code := r.PostForm.Get("code")
	gr := g.codes[code]
	delete(g.codes, code)
	g.mu.Unlock()
	switch {
	case gr == nil || time.Now().After(gr.expires):
		answer(map[string]string{"error": "bad_verification_code"})
		return
	case r.PostForm.Get("redirect_uri") != "" && r.PostForm.Get("redirect_uri") != gr.redirectURI:
		answer(map[string]string{"error": "redirect_uri_mismatch"})
		return
	case gr.challenge != "" && s256(r.PostForm.Get("code_verifier")) != gr.challenge:
		answer(map[string]string{"error": "bad_verification_code"})
		return
	case gr.bad.TokenError != "":
		answer(map[string]string{"error": gr.bad.TokenError})
		return
	}
	token := "gho_" + randomString(16)
	g.mu.Lock()
	g.tokens[token] = true
	g.scopes[token] = gr.scope
	g.mu.Unlock()
	answer(map[string]string{"access_token": token, "token_type": "bearer", "scope": gr.scope})
}

func (g *GitHub) serveAPI(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, ok = strings.CutPrefix(auth, "token ")
	}
	g.mu.Lock()
	known := ok && g.tokens[token]
	scopes := strings.FieldsFunc(g.scopes[token], func(r rune) bool { return r == ' ' || r == ',' })
	u, bad := g.user, g.bad
	g.mu.Unlock()
	switch {
	case !known:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
		return
	case bad.RedirectAPI:
		http.Redirect(w, r, g.URL+"/elsewhere", http.StatusTemporaryRedirect)
		return
	case bad.APIStatus != 0:
		writeJSON(w, bad.APIStatus, map[string]string{"message": "misbehaving"})
		return
	}
	switch r.URL.Path {
	case GitHubPathUser:
		v := map[string]any{"id": u.ID, "login": u.Login, "name": u.Name, "type": "User"}
		if bad.HugeUser > 0 {
			v["bio"] = strings.Repeat("x", bad.HugeUser)
		}
		writeJSON(w, http.StatusOK, v)
	case GitHubPathEmails:
		if !slices.Contains(scopes, "user:email") && !slices.Contains(scopes, "user") {
			writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
			return
		}
		emails := u.Emails
		if emails == nil {
			emails = []GitHubEmail{}
		}
		writeJSON(w, http.StatusOK, page(r, emails))
	case GitHubPathOrgs:
		orgs := []map[string]any{}
		for _, o := range u.Orgs {
			orgs = append(orgs, map[string]any{"login": o})
		}
		writeJSON(w, http.StatusOK, page(r, orgs))
	case GitHubPathTeams:
		if !slices.Contains(scopes, "read:org") {
			writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible"})
			return
		}
		teams := []map[string]any{}
		for _, t := range u.Teams {
			org, slug, _ := strings.Cut(t, "/")
			teams = append(teams, map[string]any{"slug": slug, "name": slug, "organization": map[string]any{"login": org}})
		}
		writeJSON(w, http.StatusOK, page(r, teams))
	}
}

// page returns the page the request's per_page and page ask for (GitHub's
// defaults: 30 a page, page 1).
func page[T any](r *http.Request, all []T) []T {
	per, err := strconv.Atoi(r.URL.Query().Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n <= 0 {
		n = 1
	}
	start := min((n-1)*per, len(all))
	end := min(start+per, len(all))
	return all[start:end]
}
