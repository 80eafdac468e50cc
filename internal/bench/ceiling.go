package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/pprof"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/server"
	"github.com/nsauth/nsauth/pkg/authn"
)

// ceiling is a bare connect-go server for the same AuthService: constant
// answers, no interceptors, no provider, but the same HTTP server
// (server.Serve: HTTP/1.1 and h2c, timeouts, header limit), the same
// Connect options (server.HandlerOptions: read limit, no compression under
// 1 KiB) and the same request size limit around the mux. What nsauth does
// beyond it is what nsauth costs; the ratio of the two throughputs says how
// close to the ceiling it is.
type ceiling struct {
	url  string
	stop func()
}

// ceilingService answers every call it serves with the answer nsauth gave
// to the bench's own request at start, so both servers send the same
// bytes. CheckToken refuses one token, the forged one of the invalid-token
// scenario, as nsauth does, and accepts any other unread.
type ceilingService struct {
	mgmtv1alpha1connect.UnimplementedAuthServiceHandler
	status    *mgmtv1alpha1.GetAuthStatusResponse
	check     *mgmtv1alpha1.CheckTokenResponse
	authorize *mgmtv1alpha1.GetAuthorizeUrlResponse
	refused   string // the Authorization header CheckToken refuses
}

func (c *ceilingService) GetAuthStatus(context.Context, *connect.Request[mgmtv1alpha1.GetAuthStatusRequest]) (*connect.Response[mgmtv1alpha1.GetAuthStatusResponse], error) {
	return connect.NewResponse(c.status), nil
}

func (c *ceilingService) GetAuthorizeUrl(context.Context, *connect.Request[mgmtv1alpha1.GetAuthorizeUrlRequest]) (*connect.Response[mgmtv1alpha1.GetAuthorizeUrlResponse], error) {
	return connect.NewResponse(c.authorize), nil
}

func (c *ceilingService) CheckToken(_ context.Context, req *connect.Request[mgmtv1alpha1.CheckTokenRequest]) (*connect.Response[mgmtv1alpha1.CheckTokenResponse], error) {
	if req.Header().Get("Authorization") == c.refused {
		err := connect.NewError(connect.CodeUnauthenticated, errors.New(authn.UnauthenticatedMessage))
		err.Meta().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		return nil, err
	}
	return connect.NewResponse(c.check), nil
}

// hasCeiling reports whether scenario has a ceiling: the bare server for
// the AuthService's calls, the raw signature of the provider's algorithm
// for a client-credentials token (see signingCallers). The others that
// need a provider (a code exchange, a refresh) have none: a constant
// answer would measure nothing nsauth could approach.
func hasCeiling(scenario string) bool {
	switch scenario {
	case GetAuthStatus, CheckTokenCached, CheckTokenDistinct, CheckTokenInvalid, GetAuthorizeURL, CheckTokenExternal,
		// The raw signature of the provider's algorithm: what a token costs
		// at the least.
		ProviderClientCredentials:
		return true
	}
	return false
}

// startCeiling asks nsauth once for each answer the ceiling repeats (for
// CheckToken, about tg.token), then
// starts the ceiling on a loopback port of its own. Its goroutines carry
// the profiler label side=ceiling.
func startCeiling(ctx context.Context, tg *target) (*ceiling, error) {
	svc := &ceilingService{}
	status, err := tg.api.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
	if err != nil {
		return nil, fmt.Errorf("bench: ceiling: GetAuthStatus: %w", err)
	}
	svc.status = status.Msg
	authorize, err := tg.api.GetAuthorizeUrl(ctx, connect.NewRequest(authorizeRequest()))
	if err != nil {
		return nil, fmt.Errorf("bench: ceiling: GetAuthorizeUrl: %w", err)
	}
	svc.authorize = authorize.Msg
	req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
	req.Header().Set("Authorization", "Bearer "+tg.token)
	check, err := tg.api.CheckToken(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("bench: ceiling: CheckToken: %w", err)
	}
	svc.check = check.Msg
	svc.refused = "Bearer " + forged(tg.token)

	maxBytes := tg.maxRequestBytes
	mux := http.NewServeMux()
	mux.Handle(mgmtv1alpha1connect.NewAuthServiceHandler(svc, server.HandlerOptions(maxBytes)...))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: ceiling: %w", err)
	}
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go pprof.Do(serveCtx, pprof.Labels("side", "ceiling"), func(ctx context.Context) {
		served <- server.Serve(ctx, ln, http.MaxBytesHandler(mux, maxBytes), server.ServeOptions{})
	})
	return &ceiling{
		url:  "http://" + ln.Addr().String(),
		stop: func() { cancel(); <-served },
	}, nil
}
