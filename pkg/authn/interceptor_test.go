package authn_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

const (
	procWhoami = "/test.v1.TestService/Whoami"
	procPublic = "/test.v1.TestService/Public"
	procStream = "/test.v1.TestService/Stream"
)

// fakeVerifier accepts "good" (as alice), answers "down" as an outage and
// refuses every other token with a reason that must not reach the client.
type fakeVerifier struct{ calls atomic.Int64 }

const refusalDetail = "signature mismatch LEAKBAIT"

func (f *fakeVerifier) Verify(_ context.Context, raw string) (*authn.Claims, error) {
	f.calls.Add(1)
	switch raw {
	case "good":
		return &authn.Claims{Subject: "alice", Scopes: []string{"read", "write"}}, nil
	case "down":
		return nil, fmt.Errorf("%w: jwks endpoint LEAKBAIT down", authn.ErrUnavailable)
	default:
		return nil, fmt.Errorf("%w: %s", authn.ErrInvalidToken, refusalDetail)
	}
}

// describeCaller is what every test procedure answers: who the interceptor
// says is calling.
func describeCaller(ctx context.Context) string {
	c, ok := authn.ClaimsFromContext(ctx)
	if !ok {
		return "anonymous"
	}
	return c.Subject + " " + strings.Join(c.Scopes, ",")
}

// startTestService serves the test procedures behind an interceptor on v.
func startTestService(t *testing.T, v authn.TokenVerifier) *httptest.Server {
	t.Helper()
	opts := connect.WithInterceptors(authn.NewInterceptor(v, authn.WithPublicProcedures(procPublic)))
	unary := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		return connect.NewResponse(wrapperspb.String(describeCaller(ctx))), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procWhoami, connect.NewUnaryHandler(procWhoami, unary, opts))
	mux.Handle(procPublic, connect.NewUnaryHandler(procPublic, unary, opts))
	mux.Handle(procStream, connect.NewServerStreamHandler(procStream,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue], s *connect.ServerStream[wrapperspb.StringValue]) error {
			return s.Send(wrapperspb.String(describeCaller(ctx)))
		}, opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// call invokes procedure with the given Authorization header values and
// returns the answer or the error.
func call(t *testing.T, srv *httptest.Server, procedure string, authorization []string) (string, error) {
	t.Helper()
	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+procedure)
	req := connect.NewRequest(wrapperspb.String(""))
	for _, a := range authorization {
		req.Header().Add("Authorization", a)
	}
	if procedure != procStream {
		resp, err := client.CallUnary(context.Background(), req)
		if err != nil {
			return "", err
		}
		return resp.Msg.GetValue(), nil
	}
	stream, err := client.CallServerStream(context.Background(), req)
	if err != nil {
		return "", err
	}
	defer stream.Close()
	var got []string
	for stream.Receive() {
		got = append(got, stream.Msg().GetValue())
	}
	return strings.Join(got, ";"), stream.Err()
}

func TestInterceptor(t *testing.T) {
	t.Parallel()
	const (
		noToken      = `Bearer`
		invalidToken = `Bearer error="invalid_token"`
	)
	tests := []struct {
		name          string
		procedure     string
		authorization []string
		// want is the handler's answer; empty when the call must fail.
		want          string
		wantCode      connect.Code
		wantChallenge string
		// wantVerified is how many times the verifier must be asked.
		wantVerified int64
	}{
		{name: "no header", procedure: procWhoami, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "wrong scheme", procedure: procWhoami, authorization: []string{"Basic YWxpY2U6cHc="}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "token in the scheme's place", procedure: procWhoami, authorization: []string{"good"}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "scheme without token", procedure: procWhoami, authorization: []string{"Bearer"}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "empty token", procedure: procWhoami, authorization: []string{"Bearer "}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "token with a space", procedure: procWhoami, authorization: []string{"Bearer go od"}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "two Authorization headers", procedure: procWhoami, authorization: []string{"Bearer good", "Bearer good"}, wantCode: connect.CodeUnauthenticated, wantChallenge: noToken},
		{name: "refused token", procedure: procWhoami, authorization: []string{"Bearer forged"}, wantCode: connect.CodeUnauthenticated, wantChallenge: invalidToken, wantVerified: 1},
		{name: "malformed token", procedure: procWhoami, authorization: []string{"Bearer not.a.jwt!"}, wantCode: connect.CodeUnauthenticated, wantChallenge: invalidToken, wantVerified: 1},
		{name: "valid token", procedure: procWhoami, authorization: []string{"Bearer good"}, want: "alice read,write", wantVerified: 1},
		{name: "scheme in lower case", procedure: procWhoami, authorization: []string{"bearer good"}, want: "alice read,write", wantVerified: 1},
		{name: "verification unavailable", procedure: procWhoami, authorization: []string{"Bearer down"}, wantCode: connect.CodeUnavailable, wantVerified: 1},
		{name: "public procedure without a token", procedure: procPublic, want: "anonymous"},
		{name: "public procedure ignores a refused token", procedure: procPublic, authorization: []string{"Bearer forged"}, want: "anonymous"},
		{name: "public procedure ignores a valid token", procedure: procPublic, authorization: []string{"Bearer good"}, want: "anonymous"},
		{name: "stream without a token", procedure: procStream, wantCode: connect.CodeUnauthenticated},
		{name: "stream with a refused token", procedure: procStream, authorization: []string{"Bearer forged"}, wantCode: connect.CodeUnauthenticated, wantVerified: 1},
		{name: "stream with a valid token", procedure: procStream, authorization: []string{"Bearer good"}, want: "alice read,write", wantVerified: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := &fakeVerifier{}
			srv := startTestService(t, v)
			got, err := call(t, srv, tt.procedure, tt.authorization)
			if n := v.calls.Load(); n != tt.wantVerified {
				t.Errorf("verifier called %d times, want %d", n, tt.wantVerified)
			}
			if tt.wantCode == 0 {
				if err != nil || got != tt.want {
					t.Fatalf("got %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %q, %v; want a %v error", got, err, tt.wantCode)
			}
			if ce.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", ce.Code(), tt.wantCode)
			}
			wantMessage := authn.UnauthenticatedMessage
			if tt.wantCode == connect.CodeUnavailable {
				wantMessage = "token verification is temporarily unavailable"
			}
			if ce.Message() != wantMessage {
				t.Errorf("message = %q, want %q", ce.Message(), wantMessage)
			}
			if strings.Contains(err.Error(), "LEAKBAIT") {
				t.Errorf("the verifier's reason reached the client: %v", err)
			}
			if tt.wantChallenge != "" {
				if h := ce.Meta().Get("WWW-Authenticate"); h != tt.wantChallenge {
					t.Errorf("WWW-Authenticate = %q, want %q", h, tt.wantChallenge)
				}
			}
		})
	}
}

// TestInterceptorWithVerifier runs the interceptor over a real Verifier: a
// handler finds the verified claims in its context, custom ones included.
func TestInterceptorWithVerifier(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t, oidctest.WithES256())
	v, _ := newVerifier(t, p, nil)
	type tenantClaims struct {
		Tenant string `json:"tenant"`
	}
	mux := http.NewServeMux()
	mux.Handle(procWhoami, connect.NewUnaryHandler(procWhoami,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			claims, ok := authn.ClaimsFromContext(ctx)
			if !ok {
				return nil, connect.NewError(connect.CodeInternal, errors.New("no claims in the context"))
			}
			var extra tenantClaims
			if err := claims.Decode(&extra); err != nil {
				return nil, connect.NewError(connect.CodeInternal, err)
			}
			return connect.NewResponse(wrapperspb.String(claims.Subject + "@" + extra.Tenant)), nil
		},
		connect.WithInterceptors(authn.NewInterceptor(v))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	c := p.AccessClaims("alice")
	c["tenant"] = "acme"
	got, err := call(t, srv, procWhoami, []string{"Bearer " + p.Sign(c, nil)})
	if err != nil || got != "alice@acme" {
		t.Fatalf("valid token: %q, %v", got, err)
	}
	c["tenant"] = "evil-corp"
	c["iss"] = "https://evil.example"
	_, err = call(t, srv, procWhoami, []string{"Bearer " + p.Sign(c, nil)})
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("token from another issuer: %v, want Unauthenticated", err)
	}
}

// TestInterceptorOnAClientDoesNothing installs the interceptor on a client
// by mistake: its calls, which carry no token, still go out.
func TestInterceptorOnAClientDoesNothing(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle(procWhoami, connect.NewUnaryHandler(procWhoami,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			return connect.NewResponse(wrapperspb.String(describeCaller(ctx))), nil
		}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	v := &fakeVerifier{}
	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+procWhoami,
		connect.WithInterceptors(authn.NewInterceptor(v)))
	resp, err := client.CallUnary(context.Background(), connect.NewRequest(wrapperspb.String("")))
	if err != nil || resp.Msg.GetValue() != "anonymous" {
		t.Fatalf("call through a client with the interceptor: %v, %v", resp, err)
	}
	if n := v.calls.Load(); n != 0 {
		t.Errorf("verifier called %d times on the client side", n)
	}
}

func TestInterceptorWithNilLoggerLogsNothing(t *testing.T) {
	t.Parallel()
	v := &fakeVerifier{}
	mux := http.NewServeMux()
	mux.Handle(procWhoami, connect.NewUnaryHandler(procWhoami,
		func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
			return connect.NewResponse(wrapperspb.String(describeCaller(ctx))), nil
		},
		connect.WithInterceptors(authn.NewInterceptor(v, authn.WithLogger(nil)))))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for token, want := range map[string]connect.Code{"": connect.CodeUnauthenticated, "forged": connect.CodeUnauthenticated, "down": connect.CodeUnavailable} {
		if _, err := call(t, srv, procWhoami, []string{"Bearer " + token}); connect.CodeOf(err) != want {
			t.Errorf("token %q: %v, want %v", token, err, want)
		}
	}
}
