package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/pprof"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/bench/standin"
	"github.com/nsauth/nsauth/internal/config"
)

// CheckTokenExternal is CheckToken with nsauth as a broker in front of an
// external provider, each call a token of that provider not seen before:
// what a deployment that brokers another provider's tokens pays for a
// fresh token. The provider is a [standin.Issuer]: discovery and a JWKS,
// its tokens signed here, with the bench's signing algorithm.
const CheckTokenExternal = "CheckToken (external provider, distinct)"

// externalAudience and externalClientID are what the broker is
// configured with, and what the external provider's tokens name.
const (
	externalAudience = "https://api.bench.invalid"
	externalClientID = "bench-cli"
)

// broker is nsauth configured for an external provider: AUTH_BASEURL and
// the rest of Neosync's settings, as a deployment that brokers another
// provider runs it.
type broker struct {
	url  string
	pool *tokenPool
	stop func()
}

// externalBroker starts the external provider and the broker in front of
// it at first need, with a pool of tg.distinctTokens of its tokens.
func (tg *target) externalBroker(ctx context.Context) (*broker, error) {
	tg.brokerOnce.Do(func() {
		tg.broker, tg.brokerErr = startBroker(ctx, tg.algorithm, tg.distinctTokens)
	})
	return tg.broker, tg.brokerErr
}

func startBroker(ctx context.Context, alg string, tokens int) (_ *broker, err error) {
	raw, err := newRawSignature(alg)
	if err != nil {
		return nil, err
	}
	ext, err := standin.Start(raw.priv, alg, externalAudience, externalClientID)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ext.Close()
		}
	}()
	minted, err := ext.Mint(tokens)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"AUTH_BASEURL":                 ext.URL(),
		"AUTH_AUDIENCE":                externalAudience,
		"AUTH_CLI_CLIENT_ID":           externalClientID,
		"AUTH_SIGNATURE_ALGORITHM":     alg,
		"NSAUTH_RATE_LIMIT_PER_MINUTE": "0",
	}
	cfg, err := config.Load(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("bench: configuring the broker: %w", err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.LogLevel = slog.LevelError
	srv, err := app.New(ctx, cfg, app.Deps{})
	if err != nil {
		return nil, fmt.Errorf("bench: starting the broker: %w", err)
	}
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go pprof.Do(serveCtx, pprof.Labels("side", "nsauth"), func(ctx context.Context) { served <- srv.Serve(ctx) })
	return &broker{
		url:  srv.URL(),
		pool: &tokenPool{tokens: minted},
		stop: func() {
			cancel()
			if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
				slog.Debug("bench: the broker stopped", "error", err)
			}
			_ = ext.Close()
		},
	}, nil
}
