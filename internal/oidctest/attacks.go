package oidctest

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"time"
)

// Attack is a hostile bearer token. Every one must be refused as
// unauthenticated, with no request to anyone but (at most, within its rate
// limit) the provider's JWKS endpoint.
type Attack struct {
	// Name says what the token tries.
	Name string
	// Token is the raw bearer token.
	Token string
	// RefusedBy names the check of pkg/authn's verifier that must refuse
	// the token ("algorithm", "signature", "audience", …; the verifier's
	// debug log says "check" and tests read it), when the verifier requires
	// access tokens typed at+jwt (RFC 9068). Asserting it keeps a case from
	// passing only because an unrelated check refused its token first.
	RefusedBy string
	// RefusedByUntyped is the check that must refuse the token when the
	// verifier also accepts untyped tokens, if it is not RefusedBy.
	RefusedByUntyped string
}

// CheckFor is the check that must refuse a when the verifier does, or does
// not, require access tokens typed at+jwt.
func (a Attack) CheckFor(typeRequired bool) string {
	if !typeRequired && a.RefusedByUntyped != "" {
		return a.RefusedByUntyped
	}
	return a.RefusedBy
}

// Attacks returns the token-verification battery against p (RFC 8725,
// RFC 9068, and the published CVEs of Go JOSE libraries). attackerURL is a
// server the tokens point at through key-location headers; it must receive
// no request. p's current key must be RS256 and the verifier's allowlist
// RS256 and ES256. Signed tokens are typed at+jwt unless their type is the
// point, so that each reaches the check it is about whether or not the
// verifier requires the type.
func (p *Provider) Attacks(attackerURL string) []Attack {
	now := time.Now()
	valid := func() map[string]any { return p.AccessClaims("attacker") }
	with := func(k string, v any) map[string]any {
		c := valid()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	key := p.Keys.Current()
	// typed adds typ at+jwt to headers that do not set a typ.
	typed := func(headers map[string]any) map[string]any {
		h := map[string]any{"typ": "at+jwt"}
		for k, v := range headers {
			h[k] = v
		}
		return h
	}
	sign := func(claims map[string]any, headers map[string]any) string {
		return SignWith(key, claims, typed(headers))
	}
	good := sign(valid(), nil)
	parts := strings.Split(good, ".")
	header, payload, sig := parts[0], parts[1], parts[2]
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	payloadJSON := func(c map[string]any) string { return b64(c) }
	hdr := func(h map[string]any) string { return b64(h) }
	hs256 := func(secret []byte, h, pl string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(h + "." + pl))
		return h + "." + pl + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(key.Private.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	published := p.Keys.Published("ES256")
	if published == nil {
		panic("oidctest: Attacks needs a published ES256 key; call Keys.Add(\"ES256\") first")
	}
	ecWrong := NewKey("ES256")
	ecWrong.ID = key.ID // right kid, wrong key (and the wrong type)
	otherRSA := NewKey("RS256")
	otherRSA.ID = key.ID

	esHeader := hdr(map[string]any{"alg": "ES256", "kid": published.ID, "typ": "at+jwt"})
	order := published.Private.(*ecdsa.PrivateKey).Curve.Params().N
	fixed := func(r, s *big.Int) string {
		b := make([]byte, 64)
		r.FillBytes(b[:32])
		s.FillBytes(b[32:])
		return base64.RawURLEncoding.EncodeToString(b)
	}
	rsHeaderJSON := []byte(`{"alg":"RS256","kid":"` + key.ID + `","typ":"at+jwt"}`)
	validJSON := []byte(mustJSON(valid()))

	attacks := []Attack{
		{"alg none", hdr(map[string]any{"alg": "none", "kid": key.ID}) + "." + payload + ".", "encoding", ""},
		{"alg None", hdr(map[string]any{"alg": "None", "kid": key.ID}) + "." + payload + "." + sig, "algorithm", ""},
		{"alg NONE", hdr(map[string]any{"alg": "NONE", "kid": key.ID}) + "." + payload + "." + sig, "algorithm", ""},
		{"alg nOnE", hdr(map[string]any{"alg": "nOnE", "kid": key.ID}) + "." + payload + "." + sig, "algorithm", ""},
		{"alg none with the original signature", hdr(map[string]any{"alg": "none", "kid": key.ID}) + "." + payload + "." + sig, "algorithm", ""},
		{"alg missing", hdr(map[string]any{"kid": key.ID}) + "." + payload + "." + sig, "algorithm", ""},
		{"HS256 keyed with the public key PEM", hs256(pubPEM, hdr(map[string]any{"alg": "HS256", "kid": key.ID}), payload), "algorithm", ""},
		{"HS256 keyed with the public key DER", hs256(pubDER, hdr(map[string]any{"alg": "HS256", "kid": key.ID}), payload), "algorithm", ""},
		{"HS512 keyed with the public key PEM", hs256(pubPEM, hdr(map[string]any{"alg": "HS512", "kid": key.ID}), payload), "algorithm", ""},
		{"algorithm outside the allowlist (RS384)", SignWith(&Key{ID: key.ID, Algorithm: "RS384", Private: key.Private}, valid(), typed(nil)), "algorithm", ""},
		{"algorithm outside the allowlist (PS256)", SignWith(&Key{ID: key.ID, Algorithm: "PS256", Private: key.Private}, valid(), typed(nil)), "algorithm", ""},
		{"right kid, wrong RSA key", SignWith(otherRSA, valid(), typed(nil)), "signature", ""},
		{"right kid, ES256 key", SignWith(ecWrong, valid(), typed(nil)), "key", ""},
		{"ES256 signed by another key under a published kid", SignWith(&Key{ID: published.ID, Algorithm: "ES256", Private: NewKey("ES256").Private}, valid(), typed(nil)), "signature", ""},
		{"ECDSA signature of zeros", esHeader + "." + payload + "." + fixed(big.NewInt(0), big.NewInt(0)), "signature", ""},
		{"ECDSA r and s equal to the curve order", esHeader + "." + payload + "." + fixed(order, order), "signature", ""},
		{"ECDSA r=1 s=1", esHeader + "." + payload + "." + fixed(big.NewInt(1), big.NewInt(1)), "signature", ""},
		{"ECDSA signature too short", esHeader + "." + payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 10)), "signature", ""},
		{"jku header to attacker", sign(valid(), map[string]any{"jku": attackerURL + "/jwks"}), "header", ""},
		{"x5u header to attacker", sign(valid(), map[string]any{"x5u": attackerURL + "/cert.pem"}), "header", ""},
		{"embedded jwk header", SignWith(otherRSA, valid(), typed(map[string]any{"jwk": otherRSA.Public()})), "header", ""},
		{"x5c header", sign(valid(), map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(pubDER)}}), "header", ""},
		{"crit header", sign(valid(), map[string]any{"crit": []string{"exp"}, "exp": now.Unix()}), "header", ""},
		{"b64 false", sign(valid(), map[string]any{"b64": false, "crit": []string{"b64"}}), "header", ""},
		{"kid path traversal", sign(valid(), map[string]any{"kid": "../../../../etc/passwd"}), "key", ""},
		{"kid SQL injection", sign(valid(), map[string]any{"kid": "' OR '1'='1' --"}), "header", ""},
		{"kid 10 KB", sign(valid(), map[string]any{"kid": strings.Repeat("k", 10<<10)}), "header", ""},
		{"kid control characters", sign(valid(), map[string]any{"kid": "a\x00b\r\nc"}), "header", ""},
		{"kid not a string", sign(valid(), map[string]any{"kid": 42}), "header", ""},
		{"exp missing", sign(with("exp", nil), nil), "expiry", ""},
		{"exp in the past", sign(with("exp", now.Add(-time.Hour).Unix()), nil), "expiry", ""},
		{"exp as a string", sign(with("exp", "9999999999"), nil), "claims", ""},
		{"exp as a boolean", sign(with("exp", true), nil), "claims", ""},
		{"exp null", sign(with("exp", json.RawMessage("null")), nil), "claims", ""},
		{"exp negative", sign(with("exp", -1), nil), "claims", ""},
		{"exp absurdly large", sign(with("exp", json.RawMessage("1e400")), nil), "claims", ""},
		{"nbf in the future", sign(with("nbf", now.Add(time.Hour).Unix()), nil), "not yet valid", ""},
		{"nbf as a string", sign(with("nbf", "0"), nil), "claims", ""},
		{"iat in the future", sign(with("iat", now.Add(time.Hour).Unix()), nil), "not yet valid", ""},
		{"iat as an object", sign(with("iat", map[string]any{}), nil), "claims", ""},
		{"iss missing", sign(with("iss", nil), nil), "issuer", ""},
		{"iss with a trailing slash", sign(with("iss", p.Issuer+"/"), nil), "issuer", ""},
		{"iss in upper case", sign(with("iss", strings.ToUpper(p.Issuer)), nil), "issuer", ""},
		{"iss with another scheme", sign(with("iss", strings.Replace(p.Issuer, "http://", "https://", 1)), nil), "issuer", ""},
		{"iss as a list", sign(with("iss", []string{p.Issuer}), nil), "claims", ""},
		{"aud missing", sign(with("aud", nil), nil), "audience", ""},
		{"aud empty string", sign(with("aud", ""), nil), "audience", ""},
		{"aud empty list", sign(with("aud", []string{}), nil), "audience", ""},
		{"aud wrong", sign(with("aud", "https://other.example"), nil), "audience", ""},
		{"aud a number", sign(with("aud", 1), nil), "claims", ""},
		{"aud an object", sign(with("aud", map[string]any{p.Audience: true}), nil), "claims", ""},
		{"aud a list with a number", sign(with("aud", []any{p.Audience, 1}), nil), "claims", ""},
		{"sub missing", sign(with("sub", nil), nil), "subject", ""},
		{"sub empty", sign(with("sub", ""), nil), "subject", ""},
		{"sub a number", sign(with("sub", 7), nil), "claims", ""},
		{"ID token presented as access token", SignWith(key, map[string]any{"iss": p.Issuer, "sub": "attacker", "aud": p.ClientID, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nonce": "n"}, map[string]any{"typ": "JWT"}), "token type", "audience"},
		{"refresh token presented as access token", "rt-" + strings.Repeat("a", 48), "encoding", ""},
		{"typ of an ID token (JWT) where at+jwt is required", sign(valid(), map[string]any{"typ": "id_token+jwt"}), "token type", ""},
		{"duplicate sub claim", SignRaw(key, rsHeaderJSON, []byte(strings.Replace(string(validJSON), `"sub":"attacker"`, `"sub":"attacker","sub":"admin"`, 1))), "claims", ""},
		{"duplicate exp claim", SignRaw(key, rsHeaderJSON, []byte(strings.Replace(string(validJSON), `"exp":`, `"exp":1,"exp":`, 1))), "claims", ""},
		{"trailing data after the payload", SignRaw(key, rsHeaderJSON, append(append([]byte{}, validJSON...), []byte(`{"sub":"admin"}`)...)), "claims", ""},
		{"case-variant sub claim", sign(with("SUB", "admin"), nil), "claims", ""},
		{"duplicate alg header", SignRaw(key, []byte(`{"alg":"RS256","alg":"none","kid":"`+key.ID+`"}`), validJSON), "header", ""},
		{"duplicate kid header", SignRaw(key, []byte(`{"alg":"RS256","kid":"`+key.ID+`","kid":"other"}`), validJSON), "header", ""},
		{"padding on the payload", header + "." + payload + "=" + "." + sig, "encoding", ""},
		{"padding on the signature", header + "." + payload + "." + sig + "==", "encoding", ""},
		{"whitespace inside", header + "." + payload[:10] + " " + payload[10:] + "." + sig, "encoding", ""},
		{"newline inside", header + ".\n" + payload + "." + sig, "encoding", ""},
		{"leading space", " " + good, "encoding", ""},
		{"standard base64 alphabet", header + "." + strings.NewReplacer("-", "+", "_", "/").Replace(payload) + "." + strings.NewReplacer("-", "+", "_", "/").Replace(sig), "encoding", ""},
		{"extra segment", good + "." + sig, "encoding", ""},
		{"two segments", header + "." + payload, "encoding", ""},
		{"empty signature", header + "." + payload + ".", "encoding", ""},
		{"JWS JSON serialization", `{"payload":"` + payload + `","protected":"` + header + `","signature":"` + sig + `"}`, "encoding", ""},
		{"JWE compact", hdr(map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": key.ID}) + ".AAAA.AAAA.AAAA.AAAA", "encoding", ""},
		{"nested token (cty JWT)", sign(map[string]any{"token": good}, map[string]any{"cty": "JWT"}), "header", ""},
		{"compressed payload (zip DEF)", sign(valid(), map[string]any{"zip": "DEF"}), "header", ""},
		{"payload not an object", sign(nil, nil), "claims", ""},
		{"oversized token (20 KB)", sign(with("pad", strings.Repeat("x", 20<<10)), nil), "size", ""},
		{"expired and badly signed", header + "." + payloadJSON(with("exp", now.Add(-time.Hour).Unix())) + "." + sig, "signature", ""},
		{"empty token", "", "encoding", ""},
	}
	return attacks
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
