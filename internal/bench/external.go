package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/config"
)

// CheckTokenExternal is CheckToken with nsauth as a broker in front of an
// external provider, each call a token of that provider not seen before:
// what a deployment that brokers another provider's tokens pays for a
// fresh token. The provider is [externalIssuer]: discovery and a JWKS,
// its tokens signed here, with the bench's signing algorithm.
const CheckTokenExternal = "CheckToken (external provider, distinct)"

// externalAudience and externalClientID are what the broker is
// configured with, and what the external provider's tokens name.
const (
	externalAudience = "https://api.bench.invalid"
	externalClientID = "bench-cli"
)

// externalIssuer stands for an external OpenID provider: it serves its
// discovery document and its key set on loopback, and signs access
// tokens (RFC 9068 claims) in this process. It implements no grant: the
// broker only verifies its tokens.
type externalIssuer struct {
	url    string
	signer jose.Signer
	srv    *http.Server
}

func startExternalIssuer(alg string) (*externalIssuer, error) {
	raw, err := newRawSignature(alg)
	if err != nil {
		return nil, err
	}
	kid := randomID()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: raw.priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("bench: external provider: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: external provider: %w", err)
	}
	e := &externalIssuer{url: "http://" + ln.Addr().String(), signer: signer}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: raw.priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}}})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("bench: external provider: %w", err)
	}
	discovery, err := json.Marshal(map[string]any{
		"issuer": e.url, "jwks_uri": e.url + "/jwks",
		"authorization_endpoint": e.url + "/authorize", "token_endpoint": e.url + "/token",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{alg},
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("bench: external provider: %w", err)
	}
	mux := http.NewServeMux()
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}
	}
	mux.Handle("GET /.well-known/openid-configuration", serve(discovery))
	mux.Handle("GET /jwks", serve(jwks))
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return e, nil
}

// mint signs n distinct access tokens for the broker's audience.
func (e *externalIssuer) mint(n int) ([]string, error) {
	now := time.Now()
	out := make([]string, n)
	for i := range out {
		claims, err := json.Marshal(map[string]any{
			"iss": e.url, "sub": "bench-user", "aud": externalAudience, "client_id": externalClientID,
			"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "jti": randomID(), "scope": "openid profile",
		})
		if err != nil {
			return nil, err
		}
		jws, err := e.signer.Sign(claims)
		if err != nil {
			return nil, fmt.Errorf("bench: external provider: %w", err)
		}
		if out[i], err = jws.CompactSerialize(); err != nil {
			return nil, fmt.Errorf("bench: external provider: %w", err)
		}
	}
	return out, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

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
	ext, err := startExternalIssuer(alg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = ext.srv.Close()
		}
	}()
	minted, err := ext.mint(tokens)
	if err != nil {
		return nil, err
	}
	env := map[string]string{
		"AUTH_BASEURL":                 ext.url,
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
			_ = ext.srv.Close()
		},
	}, nil
}
