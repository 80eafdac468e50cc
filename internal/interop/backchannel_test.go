//go:build interop

package interop_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// backchannelEvent is the event claim of a logout token (OpenID Connect
// Back-Channel Logout 1.0).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// backchannelReceiver is an app's back-channel logout URI: it keeps the
// logout tokens POSTed to it.
type backchannelReceiver struct {
	URL    string
	tokens chan string
}

func newBackchannelReceiver(t *testing.T) *backchannelReceiver {
	t.Helper()
	b := &backchannelReceiver{tokens: make(chan string, 8)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("logout_token") == "" {
			http.Error(w, "want a POSTed logout_token", http.StatusBadRequest)
			return
		}
		b.tokens <- r.PostForm.Get("logout_token")
	}))
	t.Cleanup(srv.Close)
	b.URL = srv.URL + "/backchannel-logout"
	return b
}

// verifyLogoutToken waits for a logout token and checks it as an app must
// (Back-Channel Logout 1.0 §2.6): typ, signature by one of the provider's
// keys, iss, aud, iat, the event, a sid, no nonce. It returns what is wrong,
// or "".
func (b *backchannelReceiver) verifyLogoutToken(t *testing.T, d *deployment, clientID string) string {
	t.Helper()
	var raw string
	select {
	case raw = <-b.tokens:
	case <-time.After(15 * time.Second):
		return "no logout token arrived within 15 s"
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "not a signed JWT: " + err.Error()
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		return "typ " + typ
	}
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	var keys jose.JSONWebKeySet
	if err := getJSON(d.Issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return err.Error()
	}
	if err := getJSON(disc.JWKSURI, &keys); err != nil {
		return err.Error()
	}
	var body []byte
	for _, k := range keys.Key(jws.Signatures[0].Protected.KeyID) {
		if body, err = jws.Verify(k); err == nil {
			break
		}
	}
	if body == nil {
		return "the signature is not by the provider's keys"
	}
	var c struct {
		Iss    string                     `json:"iss"`
		Aud    any                        `json:"aud"`
		Iat    int64                      `json:"iat"`
		Sid    string                     `json:"sid"`
		Nonce  *string                    `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return err.Error()
	}
	switch {
	case c.Iss != d.Issuer:
		return "iss " + c.Iss
	case !audiences(c.Aud).equal(clientID):
		return "aud is not " + clientID
	case c.Iat == 0 || c.Sid == "" || c.Nonce != nil:
		return "iat, sid or nonce wrong"
	case c.Events[backchannelEvent] == nil:
		return "no back-channel logout event"
	}
	return ""
}
