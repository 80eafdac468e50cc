package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
)

// caller makes one timed call of a scenario. Each worker of a cell has
// its own; it returns errExhausted when its prepared credentials are used
// up.
type caller func(ctx context.Context) error

// errExhausted ends a worker whose prepared codes ran out before the cell's
// time did.
var errExhausted = errors.New("bench: prepared codes used up")

// codesPerSecond is how many codes a cell that consumes them prepares per
// second of its duration: above what the built-in provider's token
// endpoint (a few SQLite writes per code) redeems on a small machine. A
// cell that runs out ends early; its rate is still calls over the time
// they took.
const codesPerSecond = 600

// newCallers prepares a cell's callers: one per worker, sharing what can
// be shared (a token, a pool of codes). side says which server they call:
// nsauth, or the ceiling (for the scenarios [hasCeiling] accepts).
func newCallers(ctx context.Context, tg *target, side int, scenario, proto string, httpClient *http.Client, concurrency int, d time.Duration) ([]caller, error) {
	if scenario == ProviderClientCredentials || scenario == RawVerify {
		return signingCallers(ctx, tg, side, scenario, httpClient, concurrency)
	}
	var opts []connect.ClientOption
	if proto == "grpc" {
		opts = append(opts, connect.WithGRPC())
	}
	baseURL := tg.url
	var external *broker
	if scenario == CheckTokenExternal {
		b, err := tg.externalBroker(ctx)
		if err != nil {
			return nil, err
		}
		external, baseURL = b, b.url
	}
	if side == sideCeiling {
		if !hasCeiling(scenario) {
			return nil, fmt.Errorf("%s has no ceiling", scenario)
		}
		baseURL = tg.ceiling.url
	}
	client := mgmtv1alpha1connect.NewAuthServiceClient(httpClient, baseURL, opts...)
	same := func(c caller) []caller {
		out := make([]caller, concurrency)
		for i := range out {
			out[i] = c
		}
		return out
	}
	checkToken := func(ctx context.Context, token string) error {
		req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		_, err := client.CheckToken(ctx, req)
		return err
	}
	switch scenario {
	case GetAuthStatus:
		return same(func(ctx context.Context) error {
			_, err := client.GetAuthStatus(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthStatusRequest{}))
			return err
		}), nil

	case CheckTokenCached:
		return same(func(ctx context.Context) error { return checkToken(ctx, tg.token) }), nil

	case CheckTokenInvalid:
		token := forged(tg.token)
		return same(func(ctx context.Context) error {
			err := checkToken(ctx, token)
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				return nil
			}
			return fmt.Errorf("invalid token not refused: %w", err)
		}), nil

	case CheckTokenDistinct:
		pool, err := tg.distinctPool(ctx)
		if err != nil {
			return nil, err
		}
		return same(func(ctx context.Context) error { return checkToken(ctx, pool.take(side)) }), nil

	case CheckTokenExternal:
		return same(func(ctx context.Context) error { return checkToken(ctx, external.pool.take(side)) }), nil

	case GetAuthorizeURL:
		req := authorizeRequest()
		return same(func(ctx context.Context) error {
			_, err := client.GetAuthorizeUrl(ctx, connect.NewRequest(req))
			return err
		}), nil

	case LoginCli, ProviderCodeDirect:
		// The warm-up takes one code per worker.
		grants, err := tg.mintCodes(ctx, int(d.Seconds()*codesPerSecond)+concurrency)
		if err != nil {
			return nil, err
		}
		pool := make(chan grant, len(grants))
		for _, g := range grants {
			pool <- g
		}
		close(pool)
		if scenario == LoginCli {
			return same(func(ctx context.Context) error {
				g, ok := <-pool
				if !ok {
					return errExhausted
				}
				_, err := client.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: g.code, RedirectUri: benchRedirectURI, CodeVerifier: &g.verifier}))
				return err
			}), nil
		}
		// The same grant LoginCli makes, sent straight to the provider: the
		// difference is the broker's own cost.
		return same(func(ctx context.Context) error {
			g, ok := <-pool
			if !ok {
				return errExhausted
			}
			_, err := tg.postToken(ctx, httpClient, exchangeForm(g))
			return err
		}), nil

	case RefreshCli, ProviderTokenDirect:
		// Refresh tokens rotate: each worker follows its own chain.
		grants, err := tg.mintCodes(ctx, concurrency)
		if err != nil {
			return nil, err
		}
		callers := make([]caller, concurrency)
		for i, g := range grants {
			tok, err := tg.postToken(ctx, httpClient, exchangeForm(g))
			if err != nil {
				return nil, err
			}
			rt := tok.RefreshToken
			if rt == "" {
				return nil, errors.New("the provider issued no refresh token")
			}
			if scenario == RefreshCli {
				callers[i] = func(ctx context.Context) error {
					resp, err := client.RefreshCli(ctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: rt}))
					if err != nil {
						return err
					}
					rt = resp.Msg.GetAccessToken().GetRefreshToken()
					return nil
				}
				continue
			}
			callers[i] = func(ctx context.Context) error {
				tok, err := tg.postToken(ctx, httpClient, refreshForm(rt))
				if err != nil {
					return err
				}
				rt = tok.RefreshToken
				return nil
			}
		}
		return callers, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}
