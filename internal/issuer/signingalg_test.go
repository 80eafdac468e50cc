package issuer_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// jwksAt reads the provider's published keys with go-jose, the oracle
// the tests below verify signatures with.
func jwksAt(t *testing.T, base string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(base + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

// verifyWith checks token's signature against set with go-jose, allowing
// only alg, and returns the kid that signed it.
func verifyWith(t *testing.T, set jose.JSONWebKeySet, token string, alg jose.SignatureAlgorithm) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("parsing a token as %s: %v", alg, err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d published keys", kid, len(keys))
	}
	if keys[0].Algorithm != string(alg) {
		t.Fatalf("kid %q is published as %q, the token says %s", kid, keys[0].Algorithm, alg)
	}
	if _, err := jws.Verify(keys[0].Key); err != nil {
		t.Fatalf("a %s token does not verify with its published key: %v", alg, err)
	}
	return kid
}

func discoveredAlgs(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Algs
}

// TestSigningAlgorithms issues, refreshes, introspects and presents the
// tokens of a provider configured with each signing algorithm: every
// token is signed with it, verifies with the published key (go-jose as
// the oracle), and is accepted where the provider itself reads one (the
// userinfo endpoint, an end-session id_token_hint).
func TestSigningAlgorithms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		alg jose.SignatureAlgorithm
		kty string
	}{
		{jose.RS256, "RSA"},
		{jose.ES256, "EC"},
		{jose.EdDSA, "OKP"},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, sqlite(), func(c *issuer.Config) { c.SigningAlgorithm = string(tc.alg) })
			set := jwksAt(t, h.url)
			if len(set.Keys) != 1 || set.Keys[0].Algorithm != string(tc.alg) {
				t.Fatalf("published keys %+v, want one %s key", set.Keys, tc.alg)
			}
			raw, _ := http.Get(h.url + "/keys")
			var kty struct {
				Keys []struct {
					Kty string `json:"kty"`
					D   string `json:"d"`
				} `json:"keys"`
			}
			_ = json.NewDecoder(raw.Body).Decode(&kty)
			raw.Body.Close()
			if len(kty.Keys) != 1 || kty.Keys[0].Kty != tc.kty || kty.Keys[0].D != "" {
				t.Fatalf("published key: kty %+v, want %s and no private part", kty.Keys, tc.kty)
			}
			if got := discoveredAlgs(t, h.url); !slices.Equal(got, []string{string(tc.alg)}) {
				t.Fatalf("discovery's id_token_signing_alg_values_supported = %v", got)
			}

			tr := h.tokens(url.Values{"scope": {"openid profile offline_access"}})
			for name, tok := range map[string]string{"access token": tr.AccessToken, "ID token": tr.IDToken} {
				if hdr, _ := jwtParts(t, tok); hdr["alg"] != string(tc.alg) {
					t.Fatalf("%s alg %v, want %s", name, hdr["alg"], tc.alg)
				}
				verifyWith(t, set, tok, tc.alg)
			}
			if status, info := h.userinfo(tr.AccessToken); status != http.StatusOK || info["sub"] != h.alice.ID {
				t.Fatalf("userinfo with a %s access token: HTTP %d %v", tc.alg, status, info)
			}
			if got := h.introspect(tr.AccessToken); got["active"] != true {
				t.Fatalf("introspection of a %s access token: %v", tc.alg, got)
			}
			if tr.RefreshToken == "" {
				t.Fatal("no refresh token")
			}
			rt := h.refresh(tr.RefreshToken)
			if rt.status != http.StatusOK {
				t.Fatalf("refresh: HTTP %d %s", rt.status, rt.Error)
			}
			verifyWith(t, set, rt.AccessToken, tc.alg)
			verifyWith(t, set, rt.IDToken, tc.alg)

			// The provider reads its own ID token as an id_token_hint:
			// a valid one is taken, one with its signature broken is not.
			parts := strings.Split(rt.IDToken, ".")
			forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
			b := issuertest.NewBrowser(t)
			good := b.Do(t, endSessionRequest(t, h.url, "", url.Values{"id_token_hint": {rt.IDToken}}))
			bad := b.Do(t, endSessionRequest(t, h.url, "", url.Values{"id_token_hint": {forged}}))
			if good.Response.StatusCode == bad.Response.StatusCode {
				t.Fatalf("end-session answers a valid %s id_token_hint as it does a forged one: HTTP %d", tc.alg, good.Response.StatusCode)
			}
		})
	}
}

// TestSigningAlgorithmChange restarts a provider that signed with RS256
// as ES256 on the same store (the operator changed
// NSAUTH_SIGNING_ALGORITHM): the ES256 key is published at once but
// signs only after the prepublication delay, so that verifiers fetch it
// first; the RS256 key stays published until the last token it signed
// has expired, and tokens signed before the change keep verifying.
func TestSigningAlgorithmChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), nil) // RS256
	before := h.tokens(nil)
	rsaKid := verifyWith(t, jwksAt(t, h.url), before.AccessToken, jose.RS256)

	// The same store, restarted with ES256 (a new address: a new process).
	var trail *auditTrail
	iss, issuerURL := startIssuer(t, issuer.Config{Store: h.st, Now: h.clock.Now, SigningAlgorithm: "ES256"},
		func(c *issuer.Config) { trail = withAudit(t, c) })
	after := *h
	after.iss, after.url = iss, issuerURL

	set := jwksAt(t, after.url)
	var ecKid string
	for _, k := range set.Keys {
		if k.Algorithm == "ES256" {
			ecKid = k.KeyID
		}
	}
	if len(set.Keys) != 2 || set.Key(rsaKid) == nil || ecKid == "" {
		t.Fatalf("after the change: published %+v, want the RS256 key and a new ES256 one", set.Keys)
	}
	if got := discoveredAlgs(t, after.url); !slices.Equal(got, []string{"RS256", "ES256"}) {
		t.Fatalf("discovery's algorithms %v, want the signing key's first", got)
	}
	events, _ := trail.records(t)
	var reasons []string
	for _, e := range events {
		if e.Type == audit.SigningKeyRotated {
			reasons = append(reasons, e.Reason+" "+e.Target)
		}
	}
	if !slices.Equal(reasons, []string{"algorithm_changed " + ecKid}) {
		t.Fatalf("key events %v, want one algorithm_changed for %s", reasons, ecKid)
	}
	if kid := verifyWith(t, set, after.tokens(nil).AccessToken, jose.RS256); kid != rsaKid {
		t.Fatalf("before the ES256 key activates, a token was signed by %q, want the RS256 key", kid)
	}

	after.clock.Advance(16 * time.Minute) // past the prepublication delay
	set = jwksAt(t, after.url)
	fresh := after.tokens(nil)
	if kid := verifyWith(t, set, fresh.AccessToken, jose.ES256); kid != ecKid {
		t.Fatalf("after activation, signed by %q, want the ES256 key %q", kid, ecKid)
	}
	verifyWith(t, set, fresh.IDToken, jose.ES256)
	if kid := verifyWith(t, set, before.AccessToken, jose.RS256); kid != rsaKid {
		t.Fatal("a token signed before the change no longer verifies")
	}
	if got := discoveredAlgs(t, after.url); !slices.Equal(got, []string{"ES256", "RS256"}) {
		t.Fatalf("discovery's algorithms %v, want ES256 then RS256", got)
	}

	// The RS256 key leaves once its last token (15 min, signed up to the
	// activation) has expired, plus two minutes of slack.
	after.clock.Advance(17 * time.Minute)
	set = jwksAt(t, after.url)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != ecKid {
		t.Fatalf("after the old key's tokens expired: published %+v, want only %s", set.Keys, ecKid)
	}
	keys, err := h.st.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Algorithm != "ES256" {
		t.Fatalf("the store holds %d unexpired keys, want the ES256 one", len(keys))
	}
	if got := discoveredAlgs(t, after.url); !slices.Equal(got, []string{"ES256"}) {
		t.Fatalf("discovery's algorithms %v, want ES256 alone", got)
	}
}
