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
}

// Attacks returns the token-verification battery against p (RFC 8725,
// RFC 9068, and the published CVEs of Go JOSE libraries). attackerURL is a
// server the tokens point at through key-location headers; it must receive
// no request. p's current key must be RS256 and the verifier's allowlist
// RS256 and ES256.
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
	key := p.SigningKey()
	sign := func(claims map[string]any, headers map[string]any) string { return SignWith(key, claims, headers) }
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

	published := p.PublishedKey("ES256")
	if published == nil {
		panic("oidctest: Attacks needs a published ES256 key; call AddKey(\"ES256\") first")
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
		{"alg none", hdr(map[string]any{"alg": "none", "kid": key.ID}) + "." + payload + "."},
		{"alg None", hdr(map[string]any{"alg": "None", "kid": key.ID}) + "." + payload + "."},
		{"alg NONE", hdr(map[string]any{"alg": "NONE", "kid": key.ID}) + "." + payload + "."},
		{"alg nOnE", hdr(map[string]any{"alg": "nOnE", "kid": key.ID}) + "." + payload + "."},
		{"alg none with the original signature", hdr(map[string]any{"alg": "none", "kid": key.ID}) + "." + payload + "." + sig},
		{"alg missing", hdr(map[string]any{"kid": key.ID}) + "." + payload + "." + sig},
		{"HS256 keyed with the public key PEM", hs256(pubPEM, hdr(map[string]any{"alg": "HS256", "kid": key.ID}), payload)},
		{"HS256 keyed with the public key DER", hs256(pubDER, hdr(map[string]any{"alg": "HS256", "kid": key.ID}), payload)},
		{"HS512 keyed with the public key PEM", hs256(pubPEM, hdr(map[string]any{"alg": "HS512", "kid": key.ID}), payload)},
		{"algorithm outside the allowlist (RS384)", SignWith(&Key{ID: key.ID, Algorithm: "RS384", Private: key.Private}, valid(), nil)},
		{"algorithm outside the allowlist (PS256)", SignWith(&Key{ID: key.ID, Algorithm: "PS256", Private: key.Private}, valid(), nil)},
		{"right kid, wrong RSA key", SignWith(otherRSA, valid(), nil)},
		{"right kid, ES256 key", SignWith(ecWrong, valid(), nil)},
		{"ES256 signed by another key under a published kid", SignWith(&Key{ID: published.ID, Algorithm: "ES256", Private: NewKey("ES256").Private}, valid(), nil)},
		{"ECDSA signature of zeros", esHeader + "." + payload + "." + fixed(big.NewInt(0), big.NewInt(0))},
		{"ECDSA r and s equal to the curve order", esHeader + "." + payload + "." + fixed(order, order)},
		{"ECDSA r=1 s=1", esHeader + "." + payload + "." + fixed(big.NewInt(1), big.NewInt(1))},
		{"ECDSA signature too short", esHeader + "." + payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 10))},
		{"jku header to attacker", sign(valid(), map[string]any{"jku": attackerURL + "/jwks"})},
		{"x5u header to attacker", sign(valid(), map[string]any{"x5u": attackerURL + "/cert.pem"})},
		{"embedded jwk header", SignWith(otherRSA, valid(), map[string]any{"jwk": otherRSA.Public()})},
		{"x5c header", sign(valid(), map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(pubDER)}})},
		{"crit header", sign(valid(), map[string]any{"crit": []string{"exp"}, "exp": now.Unix()})},
		{"b64 false", sign(valid(), map[string]any{"b64": false, "crit": []string{"b64"}})},
		{"kid path traversal", sign(valid(), map[string]any{"kid": "../../../../etc/passwd"})},
		{"kid SQL injection", sign(valid(), map[string]any{"kid": "' OR '1'='1' --"})},
		{"kid 10 KB", sign(valid(), map[string]any{"kid": strings.Repeat("k", 10<<10)})},
		{"kid control characters", sign(valid(), map[string]any{"kid": "a\x00b\r\nc"})},
		{"kid not a string", sign(valid(), map[string]any{"kid": 42})},
		{"exp missing", sign(with("exp", nil), nil)},
		{"exp in the past", sign(with("exp", now.Add(-time.Hour).Unix()), nil)},
		{"exp as a string", sign(with("exp", "9999999999"), nil)},
		{"exp as a boolean", sign(with("exp", true), nil)},
		{"exp null", sign(with("exp", json.RawMessage("null")), nil)},
		{"exp negative", sign(with("exp", -1), nil)},
		{"exp absurdly large", sign(with("exp", json.RawMessage("1e400")), nil)},
		{"nbf in the future", sign(with("nbf", now.Add(time.Hour).Unix()), nil)},
		{"nbf as a string", sign(with("nbf", "0"), nil)},
		{"iat in the future", sign(with("iat", now.Add(time.Hour).Unix()), nil)},
		{"iat as an object", sign(with("iat", map[string]any{}), nil)},
		{"iss missing", sign(with("iss", nil), nil)},
		{"iss with a trailing slash", sign(with("iss", p.Issuer+"/"), nil)},
		{"iss in upper case", sign(with("iss", strings.ToUpper(p.Issuer)), nil)},
		{"iss with another scheme", sign(with("iss", strings.Replace(p.Issuer, "http://", "https://", 1)), nil)},
		{"iss as a list", sign(with("iss", []string{p.Issuer}), nil)},
		{"aud missing", sign(with("aud", nil), nil)},
		{"aud empty string", sign(with("aud", ""), nil)},
		{"aud empty list", sign(with("aud", []string{}), nil)},
		{"aud wrong", sign(with("aud", "https://other.example"), nil)},
		{"aud a number", sign(with("aud", 1), nil)},
		{"aud an object", sign(with("aud", map[string]any{p.Audience: true}), nil)},
		{"aud a list with a number", sign(with("aud", []any{p.Audience, 1}), nil)},
		{"sub missing", sign(with("sub", nil), nil)},
		{"sub empty", sign(with("sub", ""), nil)},
		{"sub a number", sign(with("sub", 7), nil)},
		{"ID token presented as access token", sign(map[string]any{"iss": p.Issuer, "sub": "attacker", "aud": p.ClientID, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nonce": "n"}, nil)},
		{"refresh token presented as access token", "rt-" + strings.Repeat("a", 48)},
		{"typ of an ID token (JWT) where at+jwt is required", sign(valid(), map[string]any{"typ": "id_token+jwt"})},
		{"duplicate sub claim", SignRaw(key, rsHeaderJSON, []byte(strings.Replace(string(validJSON), `"sub":"attacker"`, `"sub":"attacker","sub":"admin"`, 1)))},
		{"duplicate exp claim", SignRaw(key, rsHeaderJSON, []byte(strings.Replace(string(validJSON), `"exp":`, `"exp":1,"exp":`, 1)))},
		{"trailing data after the payload", SignRaw(key, rsHeaderJSON, append(append([]byte{}, validJSON...), []byte(`{"sub":"admin"}`)...))},
		{"case-variant sub claim", sign(with("SUB", "admin"), nil)},
		{"duplicate alg header", SignRaw(key, []byte(`{"alg":"RS256","alg":"none","kid":"`+key.ID+`"}`), validJSON)},
		{"duplicate kid header", SignRaw(key, []byte(`{"alg":"RS256","kid":"`+key.ID+`","kid":"other"}`), validJSON)},
		{"padding on the payload", header + "." + payload + "=" + "." + sig},
		{"padding on the signature", header + "." + payload + "." + sig + "=="},
		{"whitespace inside", header + "." + payload[:10] + " " + payload[10:] + "." + sig},
		{"newline inside", header + ".\n" + payload + "." + sig},
		{"leading space", " " + good},
		{"standard base64 alphabet", header + "." + strings.NewReplacer("-", "+", "_", "/").Replace(payload) + "." + strings.NewReplacer("-", "+", "_", "/").Replace(sig)},
		{"extra segment", good + "." + sig},
		{"two segments", header + "." + payload},
		{"empty signature", header + "." + payload + "."},
		{"JWS JSON serialization", `{"payload":"` + payload + `","protected":"` + header + `","signature":"` + sig + `"}`},
		{"JWE compact", hdr(map[string]any{"alg": "RSA-OAEP", "enc": "A256GCM", "kid": key.ID}) + ".AAAA.AAAA.AAAA.AAAA"},
		{"nested token (cty JWT)", sign(map[string]any{"token": good}, map[string]any{"cty": "JWT"})},
		{"compressed payload (zip DEF)", sign(valid(), map[string]any{"zip": "DEF"})},
		{"payload not an object", sign(nil, nil)},
		{"oversized token (20 KB)", sign(with("pad", strings.Repeat("x", 20<<10)), nil)},
		{"expired and badly signed", header + "." + payloadJSON(with("exp", now.Add(-time.Hour).Unix())) + "." + sig},
		{"empty token", ""},
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
