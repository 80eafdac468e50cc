package upstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/internal/upstream"
)

// httpsProvider is a provider served over TLS whose discovery document
// names its own https endpoints, except those that overrides sets (to
// the URL of a plain-http server, as a misconfigured or downgraded
// document would).
type httpsProvider struct {
	srv       *httptest.Server
	overrides map[string]string
	// deviceVerification is the verification_uri its device endpoint
	// answers with; empty means its own https one.
	deviceVerification string
}

func newHTTPSProvider(t *testing.T, overrides map[string]string) *httpsProvider {
	t.Helper()
	p := &httpsProvider{overrides: overrides}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		base := p.srv.URL
		doc := map[string]string{"issuer": base}
		for field, path := range map[string]string{
			"authorization_endpoint":        "/authorize",
			"token_endpoint":                "/token",
			"jwks_uri":                      "/keys",
			"userinfo_endpoint":             "/userinfo",
			"revocation_endpoint":           "/revoke",
			"introspection_endpoint":        "/introspect",
			"end_session_endpoint":          "/end_session",
			"device_authorization_endpoint": "/device",
		} {
			doc[field] = base + path
			if v, ok := p.overrides[field]; ok {
				doc[field] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, _ *http.Request) {
		uri := p.deviceVerification
		if uri == "" {
			uri = p.srv.URL + "/activate"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": uri, "expires_in": 600})
	})
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// broker is the broker's view of p, with a client secret to lose.
func (p *httpsProvider) broker(t *testing.T) *upstream.Provider {
	t.Helper()
	client := p.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	up, err := upstream.New(upstream.Config{BaseURL: p.srv.URL, ClientID: "cli", ClientSecret: "the-client-secret", HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// eavesdropper is a plain-http server that counts what reaches it: what
// anyone on the path would have read.
func eavesdropper(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"at","token_type":"Bearer","refresh_token":"rt","expires_in":60}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

// TestHTTPSIssuerRefusesHTTPEndpoints: a provider with an https issuer
// whose discovery document names an http endpoint is refused, naming the
// field, and the broker then sends nothing (its client secret, a code, a
// refresh token, a browser) to that endpoint, whichever it is.
func TestHTTPSIssuerRefusesHTTPEndpoints(t *testing.T) {
	t.Parallel()
	for _, field := range []string{
		"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint",
		"introspection_endpoint", "end_session_endpoint", "device_authorization_endpoint",
	} {
		t.Run(field, func(t *testing.T) {
			t.Parallel()
			plain, reached := eavesdropper(t)
			p := newHTTPSProvider(t, map[string]string{field: plain + "/" + field})
			up := p.broker(t)
			err := up.Init(context.Background())
			if !errors.Is(err, upstream.ErrInsecureEndpoint) || !strings.Contains(err.Error(), field) {
				t.Errorf("Init = %v; want ErrInsecureEndpoint naming %s", err, field)
			}
			if up.Ready() {
				t.Error("the broker is ready with the refused document")
			}
			// Every call the broker makes on a user's behalf fails, and
			// none reaches the http endpoint.
			ctx := context.Background()
			if _, err := up.AuthorizeURL(upstream.AuthorizeRequest{State: "s", RedirectURI: "http://127.0.0.1:1/cb", Scope: "openid"}); err == nil {
				t.Error("AuthorizeURL succeeded")
			}
			if _, err := up.Exchange(ctx, "a-code", "http://127.0.0.1:1/cb", ""); err == nil {
				t.Error("Exchange succeeded")
			}
			if _, err := up.Refresh(ctx, "a-refresh-token"); err == nil {
				t.Error("Refresh succeeded")
			}
			if _, err := up.Revoke(ctx, "a-refresh-token"); err == nil {
				t.Error("Revoke succeeded")
			}
			if _, err := up.StartDevice(ctx, "openid"); err == nil {
				t.Error("StartDevice succeeded")
			}
			if n := reached.Load(); n != 0 {
				t.Fatalf("%d request(s) reached the http %s", n, field)
			}
		})
	}
}

// TestHTTPSIssuerKeepsDocumentWhenRefetchNamesHTTP: a running broker that
// refetches a document now naming an http token endpoint keeps the one it
// had, and goes on posting its secret to the https endpoint only.
func TestHTTPSIssuerKeepsDocumentWhenRefetchNamesHTTP(t *testing.T) {
	t.Parallel()
	p := newHTTPSProvider(t, nil)
	up := p.broker(t)
	if err := up.Init(context.Background()); err != nil {
		t.Fatalf("Init with an all-https document: %v", err)
	}
	plain, reached := eavesdropper(t)
	p.overrides = map[string]string{"token_endpoint": plain + "/token"}
	if err := up.Init(context.Background()); !errors.Is(err, upstream.ErrInsecureEndpoint) {
		t.Fatalf("refetch = %v, want ErrInsecureEndpoint", err)
	}
	md, err := up.Metadata()
	if err != nil || md.TokenEndpoint != p.srv.URL+"/token" {
		t.Fatalf("after the refused refetch: %v, token endpoint %q; want the previous https one", err, md.TokenEndpoint)
	}
	_, _ = up.Refresh(context.Background(), "a-refresh-token")
	if n := reached.Load(); n != 0 {
		t.Fatalf("%d request(s) reached the http token endpoint", n)
	}
}

// TestHTTPSIssuerRefusesHTTPVerificationURI: the device login's
// verification URI, where users are sent, must be https under an https
// issuer too.
func TestHTTPSIssuerRefusesHTTPVerificationURI(t *testing.T) {
	t.Parallel()
	p := newHTTPSProvider(t, nil)
	up := p.broker(t)
	if err := up.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := up.StartDevice(context.Background(), "openid"); err != nil {
		t.Fatalf("StartDevice with an https verification URI: %v", err)
	}
	p.deviceVerification = "http://phish.example.test/activate"
	_, err := up.StartDevice(context.Background(), "openid")
	if !errors.Is(err, upstream.ErrInsecureEndpoint) || !errors.Is(err, upstream.ErrUnavailable) || !strings.Contains(err.Error(), "verification_uri") {
		t.Fatalf("StartDevice = %v; want ErrUnavailable and ErrInsecureEndpoint naming verification_uri", err)
	}
}

// TestHTTPIssuerMayUseHTTPEndpoints: the rule is https under https only; a
// loopback http issuer (tests, a local setup) keeps its http endpoints.
func TestHTTPIssuerMayUseHTTPEndpoints(t *testing.T) {
	t.Parallel()
	up, base := brokerOfDocument(t, func(base string) string {
		return fmt.Sprintf(`{"issuer":%q,"authorization_endpoint":"%s/authorize","token_endpoint":"%s/token","jwks_uri":"%s/keys","revocation_endpoint":"%s/revoke"}`,
			base, base, base, base, base)
	})
	if err := up.Init(context.Background()); err != nil {
		t.Fatalf("Init of an http issuer with http endpoints: %v", err)
	}
	if md, _ := up.Metadata(); md.RevocationEndpoint != base+"/revoke" {
		t.Fatalf("revocation endpoint = %q, want it kept", md.RevocationEndpoint)
	}
}
