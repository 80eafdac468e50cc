package connector_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/connector/connectortest"
	"github.com/nsauth/nsauth/pkg/noredirect"
)

const callback = "https://nsauth.example/login/connector/corp/callback"

// sign-in secrets as the flow derives them: base64url of 32 bytes.
func random(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func build(t *testing.T, typ string, settings any, secret string) connector.Redirecting {
	t.Helper()
	js, err := json.Marshal(settings)
	if err != nil {
		t.Fatal(err)
	}
	c, err := connector.Build(typ, js, secret, connector.Env{Callback: callback})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	r, ok := c.(connector.Redirecting)
	if !ok {
		t.Fatalf("Build(%s) = %T, not Redirecting", typ, c)
	}
	return r
}

func buildOIDC(t *testing.T, up *connectortest.OIDC, mutate func(*connector.OIDCSettings)) connector.Redirecting {
	t.Helper()
	s := up.Settings()
	if mutate != nil {
		mutate(&s)
	}
	return build(t, "oidc", s, up.ClientSecret)
}

// attempt is one sign-in's secrets.
type attempt struct{ state, nonce, verifier string }

func newAttempt(t *testing.T) attempt { return attempt{random(t), random(t), random(t)} }

// authorize plays the browser at the upstream: it follows AuthCodeURL and
// returns the query the upstream redirects back to the callback with.
func authorize(t *testing.T, c connector.Redirecting, a attempt) (authURL *url.URL, back url.Values) {
	t.Helper()
	raw, err := c.AuthCodeURL(context.Background(), a.state, a.nonce, a.verifier)
	if err != nil {
		t.Fatalf("AuthCodeURL: %v", err)
	}
	authURL, err = url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: noredirect.CheckRedirect}
	resp, err := client.Get(raw)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		t.Fatalf("authorize: HTTP %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != callback {
		t.Fatalf("the upstream redirected to %s, not the callback", got)
	}
	if loc.Query().Get("state") != a.state {
		t.Fatalf("the upstream did not return the state")
	}
	return authURL, loc.Query()
}

// signIn goes through a whole sign-in.
func signIn(t *testing.T, c connector.Redirecting) (connector.Identity, error) {
	t.Helper()
	a := newAttempt(t)
	_, back := authorize(t, c, a)
	return c.Exchange(context.Background(), back, a.nonce, a.verifier)
}

func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	up := connectortest.NewOIDC(t, connectortest.WithRedirectURI(callback))
	up.SetUser(connectortest.User{
		Subject: "sub-1", PreferredUsername: "alice", Name: "Alice", Email: "alice@example.com", EmailVerified: true,
		Groups: []string{"admins", "dev", "dev", ""}, AMR: []string{"pwd", "mfa"},
	})
	c := buildOIDC(t, up, func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"Example.com"} })
	a := newAttempt(t)
	authURL, back := authorize(t, c, a)
	q := authURL.Query()
	for name, want := range map[string]string{
		"response_type": "code", "client_id": up.ClientID, "redirect_uri": callback, "state": a.state,
		"nonce": a.nonce, "code_challenge_method": "S256", "scope": "openid profile email",
	} {
		if got := q.Get(name); got != want {
			t.Errorf("authorization request %s = %q, want %q", name, got, want)
		}
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge") == a.verifier {
		t.Errorf("code_challenge = %q: not an S256 challenge", q.Get("code_challenge"))
	}
	id, err := c.Exchange(context.Background(), back, a.nonce, a.verifier)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	want := connector.Identity{Subject: "sub-1", Username: "alice", Name: "Alice", Email: "alice@example.com", Groups: []string{"admins", "dev"}, AMR: []string{"pwd", "mfa"}}
	if !sameIdentity(id, want) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	if n := up.Count(connectortest.OIDCPathUserinfo); n != 0 {
		t.Errorf("userinfo asked %d times though the ID token had the claims", n)
	}
	// The code is single use.
	if _, err := c.Exchange(context.Background(), back, a.nonce, a.verifier); connector.ReasonOf(err) != connector.ReasonUpstreamError {
		t.Errorf("a replayed code: %v, want %s", err, connector.ReasonUpstreamError)
	}
}

func sameIdentity(a, b connector.Identity) bool {
	return a.Subject == b.Subject && a.Username == b.Username && a.Name == b.Name && a.Email == b.Email &&
		slices.Equal(a.Groups, b.Groups) && slices.Equal(a.AMR, b.AMR) && a.State == b.State
}

func TestOIDCSignInVariants(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		opts     []connectortest.OIDCOption
		user     func(*connectortest.User)
		bad      connectortest.Misbehaviour
		settings func(*connector.OIDCSettings)
		check    func(*testing.T, connector.Identity, *connectortest.OIDC)
	}{
		{name: "ES256 keys", opts: []connectortest.OIDCOption{connectortest.WithOIDCES256()}},
		{name: "a provider without RFC 9207", opts: []connectortest.OIDCOption{connectortest.WithoutIssParameter()}},
		{name: "an unverified email is dropped", user: func(u *connectortest.User) { u.EmailVerified = false },
			check: func(t *testing.T, id connector.Identity, _ *connectortest.OIDC) {
				if id.Email != "" {
					t.Errorf("email = %q, want none", id.Email)
				}
			}},
		{name: "claims only in userinfo", bad: connectortest.Misbehaviour{ClaimsInUserinfo: true},
			user: func(u *connectortest.User) { u.Groups = []string{"g"} },
			check: func(t *testing.T, id connector.Identity, up *connectortest.OIDC) {
				if id.Email != "alice@example.com" || id.Username != "alice" || !slices.Equal(id.Groups, []string{"g"}) {
					t.Errorf("identity = %+v, want the userinfo claims", id)
				}
				if up.Count(connectortest.OIDCPathUserinfo) != 1 {
					t.Errorf("userinfo not asked")
				}
			}},
		{name: "a custom groups claim", settings: func(s *connector.OIDCSettings) { s.GroupsClaim = "roles" },
			user: func(u *connectortest.User) { u.Extra = map[string]any{"roles": "one-role"} },
			check: func(t *testing.T, id connector.Identity, _ *connectortest.OIDC) {
				if !slices.Equal(id.Groups, []string{"one-role"}) {
					t.Errorf("groups = %q", id.Groups)
				}
			}},
		{name: "an ID token of 500 groups (over 16 KiB)", user: func(u *connectortest.User) {
			for i := range 500 {
				u.Groups = append(u.Groups, fmt.Sprintf("group-%03d-%s", i, strings.Repeat("g", 50)))
			}
		}, check: func(t *testing.T, id connector.Identity, _ *connectortest.OIDC) {
			if len(id.Groups) != 500 {
				t.Errorf("%d groups", len(id.Groups))
			}
		}},
		{name: "several audiences with azp", bad: connectortest.Misbehaviour{ExtraAudience: "api", AZP: "nsauth-connector"}},
		{name: "email_verified as a string", user: func(u *connectortest.User) { u.Extra = map[string]any{"email_verified": "true"} },
			settings: func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"example.com"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := connectortest.NewOIDC(t, tc.opts...)
			u := up.User()
			if tc.user != nil {
				tc.user(&u)
			}
			up.SetUser(u)
			up.Misbehave(tc.bad)
			id, err := signIn(t, buildOIDC(t, up, tc.settings))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if id.Subject != u.Subject {
				t.Errorf("subject = %q, want %q", id.Subject, u.Subject)
			}
			if tc.check != nil {
				tc.check(t, id, up)
			}
		})
	}
}

// TestOIDCRefusals is the brief's list of refusals, one named case each,
// checked by reason category; no refusal's text repeats the code, the
// client secret or what the upstream said.
func TestOIDCRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		opts     []connectortest.OIDCOption
		user     func(*connectortest.User)
		bad      connectortest.Misbehaviour
		settings func(*connector.OIDCSettings)
		tamper   func(back url.Values, a *attempt)
		reason   string
	}{
		{name: "wrong iss in the ID token", bad: connectortest.Misbehaviour{Issuer: "https://evil.example"}, reason: connector.ReasonWrongIssuer},
		{name: "wrong aud", bad: connectortest.Misbehaviour{Audience: "another-client"}, reason: connector.ReasonWrongAudience},
		{name: "a second audience without azp", bad: connectortest.Misbehaviour{ExtraAudience: "another-client"}, reason: connector.ReasonWrongAudience},
		{name: "azp of another client", bad: connectortest.Misbehaviour{AZP: "another-client"}, reason: connector.ReasonWrongAudience},
		{name: "missing nonce", bad: connectortest.Misbehaviour{OmitNonce: true}, reason: connector.ReasonBadNonce},
		{name: "wrong nonce", bad: connectortest.Misbehaviour{Nonce: "a-nonce-of-another-sign-in"}, reason: connector.ReasonBadNonce},
		{name: "the nonce of another browser", tamper: func(_ url.Values, a *attempt) { a.nonce = "another-browsers-nonce" }, reason: connector.ReasonBadNonce},
		{name: "alg none", bad: connectortest.Misbehaviour{Alg: "none"}, reason: connector.ReasonBadSignature},
		{name: "HMAC keyed with the client secret", bad: connectortest.Misbehaviour{Alg: "HS256"}, reason: connector.ReasonBadSignature},
		{name: "a key the provider does not publish", bad: connectortest.Misbehaviour{ForeignKey: true}, reason: connector.ReasonBadSignature},
		{name: "an access token as ID token", bad: connectortest.Misbehaviour{AccessTokenType: true}, reason: connector.ReasonBadSignature},
		{name: "expired", bad: connectortest.Misbehaviour{Expired: true}, reason: connector.ReasonExpired},
		{name: "issued in the future", bad: connectortest.Misbehaviour{IssuedInFuture: true}, reason: connector.ReasonExpired},
		{name: "unverified email", user: func(u *connectortest.User) { u.EmailVerified = false },
			settings: func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"example.com"} }, reason: connector.ReasonUnverifiedEmail},
		{name: "no email where domains are required", user: func(u *connectortest.User) { u.Email = "" },
			settings: func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"example.com"} }, reason: connector.ReasonUnverifiedEmail},
		{name: "domain not allowed", settings: func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"corp.example"} }, reason: connector.ReasonDomainNotAllowed},
		{name: "a subdomain is another domain", user: func(u *connectortest.User) { u.Email = "alice@evil.example.com" },
			settings: func(s *connector.OIDCSettings) { s.AllowedDomains = []string{"example.com"} }, reason: connector.ReasonDomainNotAllowed},
		{name: "wrong iss parameter", bad: connectortest.Misbehaviour{IssParam: "https://evil.example"}, reason: connector.ReasonWrongIssuer},
		{name: "iss parameter missing though announced", bad: connectortest.Misbehaviour{OmitIssParam: true}, reason: connector.ReasonWrongIssuer},
		{name: "iss parameter repeated", tamper: func(back url.Values, _ *attempt) { back.Add("iss", back.Get("iss")) }, reason: connector.ReasonMalformed},
		{name: "error response", bad: connectortest.Misbehaviour{Error: "access_denied"}, reason: connector.ReasonUpstreamError},
		{name: "error response of a provider without RFC 9207", opts: []connectortest.OIDCOption{connectortest.WithoutIssParameter()},
			bad: connectortest.Misbehaviour{Error: "server_error"}, reason: connector.ReasonUpstreamError},
		{name: "token endpoint refuses", bad: connectortest.Misbehaviour{TokenError: "invalid_grant"}, reason: connector.ReasonUpstreamError},
		{name: "wrong PKCE verifier", tamper: func(_ url.Values, a *attempt) { a.verifier = strings.Repeat("v", 43) }, reason: connector.ReasonUpstreamError},
		{name: "no code", tamper: func(back url.Values, _ *attempt) { back.Del("code") }, reason: connector.ReasonMalformed},
		{name: "no ID token", bad: connectortest.Misbehaviour{OmitIDToken: true}, reason: connector.ReasonMalformed},
		{name: "userinfo about someone else", bad: connectortest.Misbehaviour{ClaimsInUserinfo: true, UserinfoSubject: "someone-else"}, reason: connector.ReasonMalformed},
		{name: "groups claim of the wrong type", user: func(u *connectortest.User) { u.Extra = map[string]any{"groups": map[string]any{"a": 1}} }, reason: connector.ReasonMalformed},
		{name: "too many groups", user: func(u *connectortest.User) { u.Groups = make([]string, 1001); u.Groups[0] = "x" }, reason: connector.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := connectortest.NewOIDC(t, tc.opts...)
			u := up.User()
			if tc.user != nil {
				tc.user(&u)
			}
			up.SetUser(u)
			up.Misbehave(tc.bad)
			c := buildOIDC(t, up, tc.settings)
			a := newAttempt(t)
			_, back := authorize(t, c, a)
			code := back.Get("code")
			if tc.tamper != nil {
				tc.tamper(back, &a)
			}
			id, err := c.Exchange(context.Background(), back, a.nonce, a.verifier)
			if got := connector.ReasonOf(err); got != tc.reason {
				t.Fatalf("Exchange = %+v, %v; want a refusal %s", id, err, tc.reason)
			}
			for _, secret := range []string{up.ClientSecret, "evil.example", "another-client", "a-nonce-of-another-sign-in"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the refusal repeats %q: %v", secret, err)
				}
			}
			if code != "" && strings.Contains(err.Error(), code) {
				t.Errorf("the refusal repeats the code: %v", err)
			}
		})
	}
}

// TestOIDCMixUp replays one provider's answer into another connector: the
// RFC 9207 iss parameter refuses it before the code reaches the other
// provider; without it, the other provider does not know the code.
func TestOIDCMixUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   []connectortest.OIDCOption
		reason string
		tokens int // token requests the victim connector's provider gets
	}{
		{name: "with RFC 9207", reason: connector.ReasonWrongIssuer, tokens: 0},
		{name: "without RFC 9207", opts: []connectortest.OIDCOption{connectortest.WithoutIssParameter()}, reason: connector.ReasonUpstreamError, tokens: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			attacker := connectortest.NewOIDC(t, tc.opts...)
			victim := connectortest.NewOIDC(t, tc.opts...)
			a := newAttempt(t)
			_, back := authorize(t, buildOIDC(t, attacker, nil), a)
			c := buildOIDC(t, victim, nil)
			if _, err := c.AuthCodeURL(context.Background(), a.state, a.nonce, a.verifier); err != nil {
				t.Fatal(err)
			}
			_, err := c.Exchange(context.Background(), back, a.nonce, a.verifier)
			if got := connector.ReasonOf(err); got != tc.reason {
				t.Fatalf("Exchange: %v, want %s", err, tc.reason)
			}
			if n := victim.Count(connectortest.OIDCPathToken); n != tc.tokens {
				t.Errorf("the victim's token endpoint got %d requests, want %d", n, tc.tokens)
			}
		})
	}
}

func TestOIDCUnreachable(t *testing.T) {
	t.Parallel()
	up := connectortest.NewOIDC(t)
	c := buildOIDC(t, up, nil)
	up.Server.Close()
	a := newAttempt(t)
	_, err := c.AuthCodeURL(context.Background(), a.state, a.nonce, a.verifier)
	if err == nil || connector.ReasonOf(err) != "" {
		t.Fatalf("AuthCodeURL at a closed upstream = %v, want a plain error", err)
	}
	_, err = c.Exchange(context.Background(), url.Values{"code": {"c"}}, a.nonce, a.verifier)
	if err == nil || connector.ReasonOf(err) != "" {
		t.Fatalf("Exchange at a closed upstream = %v, want a plain error", err)
	}
}

func TestOIDCTokenEndpointDown(t *testing.T) {
	t.Parallel()
	up := connectortest.NewOIDC(t)
	up.Misbehave(connectortest.Misbehaviour{TokenStatus: http.StatusServiceUnavailable})
	_, err := signIn(t, buildOIDC(t, up, nil))
	if err == nil || connector.ReasonOf(err) != "" || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Exchange with the token endpoint down = %v, want a plain error naming HTTP 503", err)
	}
}

func TestOIDCRefusesToStartWithoutProtections(t *testing.T) {
	t.Parallel()
	up := connectortest.NewOIDC(t)
	c := buildOIDC(t, up, nil)
	a := newAttempt(t)
	for _, tc := range []struct {
		name string
		a    attempt
	}{
		{"no state", attempt{"", a.nonce, a.verifier}},
		{"no nonce", attempt{a.state, "", a.verifier}},
		{"short verifier", attempt{a.state, a.nonce, "short"}},
	} {
		if _, err := c.AuthCodeURL(context.Background(), tc.a.state, tc.a.nonce, tc.a.verifier); err == nil {
			t.Errorf("%s: AuthCodeURL accepted", tc.name)
		}
	}
	if n := up.Count(connectortest.OIDCPathDiscovery); n != 0 {
		t.Errorf("discovery asked %d times before the arguments were checked", n)
	}
}

func TestBuildRefuses(t *testing.T) {
	t.Parallel()
	up := connectortest.NewOIDC(t)
	js, _ := json.Marshal(up.Settings())
	for _, tc := range []struct {
		name     string
		typ      string
		settings []byte
		secret   string
		env      connector.Env
	}{
		{"unknown type", "saml", js, "s", connector.Env{Callback: callback}},
		{"bad settings", "oidc", []byte(`{"issuer":"ftp://x"}`), "s", connector.Env{Callback: callback}},
		{"no secret", "oidc", js, "", connector.Env{Callback: callback}},
		{"no callback", "oidc", js, "s", connector.Env{}},
		{"github without secret", "github", []byte(`{"client_id":"x"}`), "", connector.Env{Callback: callback}},
	} {
		if c, err := connector.Build(tc.typ, tc.settings, tc.secret, tc.env); err == nil || c != nil {
			t.Errorf("%s: Build = %T (%v), %v; want nil and an error", tc.name, c, c, err)
		}
	}
}
