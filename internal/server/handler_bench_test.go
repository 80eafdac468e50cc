package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/authservice"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/internal/upstream"
	"github.com/nsauth/nsauth/pkg/authn"
)

// BenchmarkHandler drives the server's root handler in memory, without a
// network, for the three calls nsauth means to serve near a bare
// connect-go handler's speed, and that bare handler (constant answers, the
// same Connect options) beside it: the difference per call, in time and
// allocations, is what nsauth's interceptors and handlers add. Run with
// -benchmem.
func BenchmarkHandler(b *testing.B) {
	p := oidctest.New(b)
	ctx := context.Background()
	broker, err := upstream.New(upstream.Config{BaseURL: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret})
	if err != nil {
		b.Fatal(err)
	}
	if err := broker.Init(ctx); err != nil {
		b.Fatal(err)
	}
	keys, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(p.Server.URL + oidctest.PathJWKS)})
	if err != nil {
		b.Fatal(err)
	}
	// A revocation set is consulted on every call, as the built-in
	// provider's verifier does.
	provider, err := authn.NewProviderWithKeys(p.Issuer, keys)
	if err != nil {
		b.Fatal(err)
	}
	verifier, err := provider.Verifier(authn.Config{Audiences: []string{p.Audience}, Revocations: &authn.RevocationSet{}})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := authservice.New(authservice.Config{Enabled: true, Broker: broker})
	if err != nil {
		b.Fatal(err)
	}
	nsauth, err := server.NewHandler(server.Config{
		Service: svc,
		Authn:   authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{PublicProcedures: authservice.PublicProcedures}),
		RateLimits: []server.RateLimit{{
			Procedures: []string{mgmtv1alpha1connect.AuthServiceLoginCliProcedure},
			PerMinute:  1 << 20, // on, as in production, but never in the way
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	token := p.AccessToken()
	challenge, method := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256"
	authorize := &mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "bench-state-0123456789abcdef", RedirectUri: "http://127.0.0.1:4242/api/auth/callback",
		Scope: "openid profile offline_access", CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}
	calls := []struct {
		name      string
		procedure string
		msg       proto.Message
	}{
		{"GetAuthStatus", mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure, &mgmtv1alpha1.GetAuthStatusRequest{}},
		{"CheckToken", mgmtv1alpha1connect.AuthServiceCheckTokenProcedure, &mgmtv1alpha1.CheckTokenRequest{}},
		{"GetAuthorizeUrl", mgmtv1alpha1connect.AuthServiceGetAuthorizeUrlProcedure, authorize},
	}

	// The bare handler answers what nsauth answers.
	bare := &constantService{}
	for _, c := range calls {
		rec := serve(b, nsauth, c.procedure, c.msg, token)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: HTTP %d %s", c.name, rec.Code, rec.Body)
		}
		bare.learn(b, c.procedure, rec.Body.Bytes())
	}
	mux := http.NewServeMux()
	mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(bare, server.HandlerOptions(server.DefaultMaxRequestBytes)...))
	ceiling := http.MaxBytesHandler(mux, server.DefaultMaxRequestBytes)

	for _, c := range calls {
		for _, h := range []struct {
			name    string
			handler http.Handler
		}{{"nsauth", nsauth}, {"bare", ceiling}} {
			b.Run(c.name+"/"+h.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if rec := serve(b, h.handler, c.procedure, c.msg, token); rec.Code != http.StatusOK {
						b.Fatalf("HTTP %d", rec.Code)
					}
				}
			})
		}
	}
}

func serve(b *testing.B, h http.Handler, procedure string, msg proto.Message, token string) *httptest.ResponseRecorder {
	body, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, procedure, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type constantService struct {
	mgmtv1alpha1connect.UnimplementedAuthServiceHandler
	status    mgmtv1alpha1.GetAuthStatusResponse
	check     mgmtv1alpha1.CheckTokenResponse
	authorize mgmtv1alpha1.GetAuthorizeUrlResponse
}

func (s *constantService) learn(b *testing.B, procedure string, body []byte) {
	var m proto.Message
	switch procedure {
	case mgmtv1alpha1connect.AuthServiceGetAuthStatusProcedure:
		m = &s.status
	case mgmtv1alpha1connect.AuthServiceCheckTokenProcedure:
		m = &s.check
	default:
		m = &s.authorize
	}
	if err := proto.Unmarshal(body, m); err != nil {
		b.Fatal(err)
	}
}

func (s *constantService) GetAuthStatus(context.Context, *connect.Request[mgmtv1alpha1.GetAuthStatusRequest]) (*connect.Response[mgmtv1alpha1.GetAuthStatusResponse], error) {
	return connect.NewResponse(&s.status), nil
}

func (s *constantService) CheckToken(context.Context, *connect.Request[mgmtv1alpha1.CheckTokenRequest]) (*connect.Response[mgmtv1alpha1.CheckTokenResponse], error) {
	return connect.NewResponse(&s.check), nil
}

func (s *constantService) GetAuthorizeUrl(context.Context, *connect.Request[mgmtv1alpha1.GetAuthorizeUrlRequest]) (*connect.Response[mgmtv1alpha1.GetAuthorizeUrlResponse], error) {
	return connect.NewResponse(&s.authorize), nil
}
