package federation_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/federation"
	"github.com/nsauth/nsauth/internal/federation/federationtest"
)

const (
	ownIssuer = "http://127.0.0.1:1"
	audience  = "https://nsauth.example.com"
	mainRef   = "repo:acme/app:ref:refs/heads/main"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// policies is an in-memory policy source that records the issuers asked.
type policies struct {
	mu    sync.Mutex
	list  []federation.Policy
	asked []string
}

func (p *policies) source(_ context.Context, iss string) ([]federation.Policy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, iss)
	var out []federation.Policy
	for _, x := range p.list {
		if x.Issuer == iss {
			out = append(out, x)
		}
	}
	return out, nil
}

type fixture struct {
	ci       *federationtest.Issuer
	other    *federationtest.Issuer // an issuer no policy names
	clock    *clock
	policies *policies
	v        *federation.Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ci: federationtest.NewIssuer(t), other: federationtest.NewIssuer(t), clock: &clock{t: time.Now().Truncate(time.Second)}}
	f.policies = &policies{list: []federation.Policy{
		{Name: "deploy", Issuer: f.ci.URL, Audience: audience, Subject: mainRef, ClientID: "deployer", MaxTTL: 10 * time.Minute},
		{Name: "deploy-strict", Issuer: f.ci.URL, Audience: audience, Subject: "repo:acme/*:ref:refs/heads/main", ClientID: "deployer", MaxTTL: 5 * time.Minute},
		{Name: "tests", Issuer: f.ci.URL, Audience: audience, Subject: "repo:acme/app:pull_request", ClientID: "tester"},
		{Name: "tests-any", Issuer: f.ci.URL, Audience: audience, Subject: "repo:acme/*:pull_request", ClientID: "deployer"},
		{Name: "staging", Issuer: f.ci.URL, Audience: "staging", Subject: "repo:acme/app:environment:staging", ClientID: "stager"},
	}}
	v, err := federation.NewVerifier(federation.Config{Policies: f.policies.source, OwnIssuer: ownIssuer, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func TestVerify(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := f.clock.Now()
	claims := func(change func(c map[string]any)) map[string]any {
		c := f.ci.Claims(now, audience, mainRef)
		if change != nil {
			change(c)
		}
		return c
	}
	strangerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		token      string
		wantPolicy string // "" for a refusal
		wantClient string
	}{
		{"RS256, the strictest TTL of one client's policies", f.ci.Mint(t, claims(nil)), "deploy-strict", "deployer"},
		{"ES256", f.ci.MintES256(t, claims(nil)), "deploy-strict", "deployer"},
		{"audience as a list", f.ci.Mint(t, claims(func(c map[string]any) { c["aud"] = []string{"x", audience} })), "deploy-strict", "deployer"},
		{"glob", f.ci.Mint(t, claims(func(c map[string]any) { c["sub"] = "repo:acme/lib:ref:refs/heads/main" })), "deploy-strict", "deployer"},
		{"other audience's policy", f.ci.Mint(t, claims(func(c map[string]any) {
			c["aud"], c["sub"] = "staging", "repo:acme/app:environment:staging"
		})), "staging", "stager"},
		{"skew tolerated", f.ci.Mint(t, claims(func(c map[string]any) { c["nbf"] = now.Add(20 * time.Second).Unix() })), "deploy-strict", "deployer"},

		{"wrong audience", f.ci.Mint(t, claims(func(c map[string]any) { c["aud"] = "https://elsewhere.example.com" })), "", ""},
		{"audience of a policy for another subject", f.ci.Mint(t, claims(func(c map[string]any) { c["aud"] = "staging" })), "", ""},
		{"wrong subject", f.ci.Mint(t, claims(func(c map[string]any) { c["sub"] = "repo:acme/app:ref:refs/heads/evil" })), "", ""},
		{"subject with an extra field", f.ci.Mint(t, claims(func(c map[string]any) { c["sub"] = mainRef + ":x" })), "", ""},
		{"ambiguous clients", f.ci.Mint(t, claims(func(c map[string]any) { c["sub"] = "repo:acme/app:pull_request" })), "", ""},
		{"no subject", f.ci.Mint(t, claims(func(c map[string]any) { delete(c, "sub") })), "", ""},
		{"other issuer", f.other.Mint(t, claims(func(c map[string]any) { c["iss"] = f.other.URL })), "", ""},
		{"other issuer claiming to be the CI", f.other.Mint(t, claims(nil)), "", ""},
		{"expired", f.ci.Mint(t, claims(func(c map[string]any) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		})), "", ""},
		{"no expiry", f.ci.Mint(t, claims(func(c map[string]any) { delete(c, "exp") })), "", ""},
		{"not yet valid", f.ci.Mint(t, claims(func(c map[string]any) { c["nbf"] = now.Add(2 * time.Minute).Unix() })), "", ""},
		{"issued in the future", f.ci.Mint(t, claims(func(c map[string]any) { c["iat"] = now.Add(2 * time.Minute).Unix() })), "", ""},
		{"too old", f.ci.Mint(t, claims(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(time.Hour).Unix()
		})), "", ""},
		{"no iat", f.ci.Mint(t, claims(func(c map[string]any) { delete(c, "iat") })), "", ""},
		{"alg none", f.ci.MintUnsigned(t, claims(nil)), "", ""},
		{"HMAC signed with the public key", f.ci.MintHMACWithPublicKey(t, claims(nil)), "", ""},
		{"unknown kid", f.ci.MintWith(t, claims(nil), jose.RS256, strangerKey, "rsa-2"), "", ""},
		{"known kid, other key", f.ci.MintWith(t, claims(nil), jose.RS256, strangerKey, federationtest.RSAKeyID), "", ""},
		{"the built-in provider's own token", f.other.Mint(t, claims(func(c map[string]any) { c["iss"] = ownIssuer })), "", ""},
		{"oversized", f.ci.Mint(t, claims(func(c map[string]any) { c["pad"] = strings.Repeat("x", 9000) })), "", ""},
		{"garbage", "not.a.token", "", ""},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := f.v.Verify(context.Background(), tt.token)
			if tt.wantPolicy == "" {
				if !errors.Is(err, federation.ErrNoMatch) {
					t.Fatalf("Verify = %+v, %v; want a refusal", m, err)
				}
				if want := refusalReasons[tt.name]; want != "" && !strings.Contains(err.Error(), want) {
					t.Fatalf("refused with %q, want a refusal for %q", err, want)
				}
				if strings.Contains(err.Error(), tt.token) && tt.token != "" {
					t.Fatal("the refusal quotes the token")
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if m.Policy.Name != tt.wantPolicy || m.Policy.ClientID != tt.wantClient {
				t.Fatalf("matched %q for %q, want %q for %q", m.Policy.Name, m.Policy.ClientID, tt.wantPolicy, tt.wantClient)
			}
		})
	}
	if n := f.other.DiscoveryFetches() + f.other.JWKSFetches(); n != 0 {
		t.Errorf("the issuer no policy names was contacted %d times", n)
	}
	for _, iss := range f.policies.asked {
		if iss == ownIssuer {
			t.Error("the policies were asked about the own issuer")
		}
	}
}

// refusalReasons are what the refusals of TestVerify must be for, so that
// a case does not pass by failing an earlier check than the one it tests.
var refusalReasons = map[string]string{
	"wrong audience": "audience",
	"audience of a policy for another subject": "audience and subject",
	"wrong subject":                      "audience and subject",
	"subject with an extra field":        "audience and subject",
	"ambiguous clients":                  "different clients",
	"other issuer":                       "no policy names the token's issuer",
	"other issuer claiming to be the CI": "signature",
	"expired":                            "expired",
	"not yet valid":                      "not valid before",
	"issued in the future":               "in the future",
	"too old":                            "issued more than",
	"no iat":                             "no iat",
	"alg none":                           `algorithm "none"`,
	"HMAC signed with the public key":    `algorithm "HS256"`,
	"unknown kid":                        "no key with that id",
	"known kid, other key":               "signature",
	"the built-in provider's own token":  "this server's own",
	"oversized":                          "longer than",
}

// An attacker minting tokens with made-up key ids must not make the
// verifier hammer the issuer: unknown kids cause one fetch per interval.
func TestVerifyUnknownKidFloodIsRateLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := f.clock.Now()
	good := f.ci.Mint(t, f.ci.Claims(now, audience, mainRef))
	if _, err := f.v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	base := f.ci.JWKSFetches()
	if base != 1 {
		t.Fatalf("%d JWKS fetches for the first token, want 1", base)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		tok := f.ci.MintWith(t, f.ci.Claims(now, audience, mainRef), jose.RS256, key, "made-up-"+string(rune('a'+i%26)))
		if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, federation.ErrNoMatch) {
			t.Fatalf("Verify = %v, want a refusal", err)
		}
	}
	if n := f.ci.JWKSFetches() - base; n > 1 {
		t.Fatalf("50 unknown kids caused %d JWKS fetches, want at most 1", n)
	}
	f.clock.Advance(federation.DefaultMinRefetchInterval + time.Second)
	before := f.ci.JWKSFetches()
	tok := f.ci.MintWith(t, f.ci.Claims(f.clock.Now(), audience, mainRef), jose.RS256, key, "made-up-later")
	_, _ = f.v.Verify(context.Background(), tok)
	if n := f.ci.JWKSFetches() - before; n != 1 {
		t.Fatalf("after the interval an unknown kid caused %d fetches, want 1", n)
	}
}

func TestVerifyDeletedPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.ci.Mint(t, map[string]any{"iss": f.ci.URL, "aud": "staging", "sub": "repo:acme/app:environment:staging",
		"iat": f.clock.Now().Unix(), "exp": f.clock.Now().Add(time.Minute).Unix()})
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.policies.mu.Lock()
	f.policies.list = f.policies.list[:4]
	f.policies.mu.Unlock()
	if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, federation.ErrNoMatch) {
		t.Fatalf("Verify after the policy was deleted = %v, want a refusal", err)
	}
}
