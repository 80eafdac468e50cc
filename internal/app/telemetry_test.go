package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/telemetry/telemetrytest"
)

// TestSpansReachTheCollector runs the CLI login flow against the built-in
// provider with tracing pointed at an OTLP/HTTP endpoint served here, and
// checks what arrives: the RPC spans, the token endpoint's span as a
// grandchild of LoginCli's (through the broker's client span, in process),
// the trace id in the server's log line for the call, and no secret in
// any span.
func TestSpansReachTheCollector(t *testing.T) {
	t.Parallel()
	col := telemetrytest.New(t)
	env := builtinEnv(t)
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = col.URL
	s := servetest.Start(t, servetest.Options{Env: env, Args: []string{"--log-level", "debug"}})
	api := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, s.URL)
	ctx := context.Background()

	const state = "telemetry-test-state-3f9a"
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: state, RedirectUri: redirectURI, Scope: scope, CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl: %v", err)
	}
	loc := issuertest.NewBrowser(t).Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
	code := loc.Query().Get("code")
	login, err := api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli: %v", err)
	}
	tok := login.Msg.GetAccessToken()
	check := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	check.Header().Set("Authorization", "Bearer "+tok.GetAccessToken())
	if _, err := api.CheckToken(ctx, check); err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	refreshed, err := api.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: tok.GetRefreshToken()}))
	if err != nil {
		t.Fatalf("RefreshCli: %v", err)
	}
	// Stopping flushes the spans: after it, all have arrived.
	if code := s.Stop(t); code != 0 {
		t.Fatalf("nsauth serve exited with %d:\n%s", code, s.Logs.String())
	}
	spans, resource := col.Spans(), col.Resource()

	byID := map[string]*tracepb.Span{}
	for _, sp := range spans {
		byID[telemetrytest.ID(sp.GetSpanId())] = sp
	}
	parent := func(sp *tracepb.Span) *tracepb.Span { return byID[telemetrytest.ID(sp.GetParentSpanId())] }
	find := func(name string, kind tracepb.Span_SpanKind) *tracepb.Span {
		for _, sp := range spans {
			if sp.GetName() == name && sp.GetKind() == kind {
				return sp
			}
		}
		return nil
	}
	var names []string
	for _, sp := range spans {
		names = append(names, sp.GetKind().String()+" "+sp.GetName())
	}

	t.Run("resource names the service", func(t *testing.T) {
		for _, a := range resource {
			if a.GetKey() == "service.name" && a.GetValue().GetStringValue() == "nsauth" {
				return
			}
		}
		t.Errorf("no service.name=nsauth in the resource %v", resource)
	})

	loginSpan := find("mgmt.v1alpha1.AuthService/LoginCli", tracepb.Span_SPAN_KIND_SERVER)
	for _, want := range []string{"GetAuthorizeUrl", "LoginCli", "CheckToken", "RefreshCli"} {
		t.Run("RPC span "+want, func(t *testing.T) {
			if find("mgmt.v1alpha1.AuthService/"+want, tracepb.Span_SPAN_KIND_SERVER) == nil {
				t.Errorf("no server span for %s among %q", want, names)
			}
		})
	}
	t.Run("browser requests to the provider have spans", func(t *testing.T) {
		if find("GET /authorize", tracepb.Span_SPAN_KIND_SERVER) == nil {
			t.Errorf("no span GET /authorize among %q", names)
		}
	})
	t.Run("token endpoint span is a grandchild of LoginCli", func(t *testing.T) {
		if loginSpan == nil {
			t.Fatalf("no LoginCli span among %q", names)
		}
		for _, sp := range spans {
			if sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER || !strings.HasPrefix(sp.GetName(), "POST ") || !strings.HasSuffix(sp.GetName(), "/token") {
				continue
			}
			client := parent(sp)
			if client == nil || client.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
				continue
			}
			if rpc := parent(client); rpc == loginSpan {
				return
			}
		}
		t.Errorf("no token endpoint server span under a client span under LoginCli among %q", names)
	})
	t.Run("log line of the call carries its trace id", func(t *testing.T) {
		if loginSpan == nil {
			t.Fatal("no LoginCli span")
		}
		traceID := telemetrytest.ID(loginSpan.GetTraceId())
		for line := range strings.SplitSeq(s.Logs.String(), "\n") {
			if strings.Contains(line, `"procedure":"/mgmt.v1alpha1.AuthService/LoginCli"`) && strings.Contains(line, `"trace_id":"`+traceID+`"`) {
				return
			}
		}
		t.Errorf("no log line of LoginCli with trace_id %s:\n%s", traceID, s.Logs.String())
	})

	t.Run("provider's log line of the login carries a trace id", func(t *testing.T) {
		for line := range strings.SplitSeq(s.Logs.String(), "\n") {
			if strings.Contains(line, `"msg":"login"`) && strings.Contains(line, `"trace_id":"`) {
				return
			}
		}
		t.Errorf("no login line with a trace_id:\n%s", s.Logs.String())
	})

	secrets := map[string]string{
		"access token":           tok.GetAccessToken(),
		"refresh token":          tok.GetRefreshToken(),
		"ID token":               tok.GetIdToken(),
		"new access token":       refreshed.Msg.GetAccessToken().GetAccessToken(),
		"new refresh token":      refreshed.Msg.GetAccessToken().GetRefreshToken(),
		"authorization code":     code,
		"code verifier":          verifier,
		"code challenge":         challenge,
		"state":                  state,
		"administrator password": adminPassword,
	}
	for name, secret := range secrets {
		t.Run("no "+name+" in spans", func(t *testing.T) {
			if secret == "" {
				t.Skip("not issued")
			}
			for _, sp := range spans {
				if text := telemetrytest.SpanText(sp); strings.Contains(text, secret) {
					t.Errorf("span %q holds the %s:\n%s", sp.GetName(), name, text)
				}
			}
		})
	}
	t.Run("no query string in spans", func(t *testing.T) {
		for _, sp := range spans {
			text := telemetrytest.SpanText(sp)
			for _, marker := range []string{"?", "code_challenge", "client_secret", "password=", "Bearer "} {
				if strings.Contains(text, marker) {
					t.Errorf("span %q holds %q:\n%s", sp.GetName(), marker, text)
				}
			}
		}
	})
}
