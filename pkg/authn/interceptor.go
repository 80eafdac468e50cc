package authn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"
)

// UnauthenticatedMessage is the one message clients receive for every
// refused token, whatever the reason, so that the answer tells an attacker
// nothing about which check failed.
const UnauthenticatedMessage = "missing or invalid access token"

type claimsKey struct{}

// ClaimsFromContext returns the claims an [Interceptor] stored for the
// current request, and false for public procedures or when no interceptor
// ran. They are the request's own: changing them affects no other request.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// ContextWithClaims returns a copy of ctx carrying c. It is for tests and
// for servers that verify tokens by other means. Claims built by hand have
// no payload: their [Claims.Decode] returns an error.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// InterceptorConfig configures an [Interceptor]. The zero value requires
// a token on every procedure and logs nothing.
type InterceptorConfig struct {
	// PublicProcedures names procedures (such as
	// "/mgmt.v1alpha1.AuthService/GetAuthStatus") that need no token.
	// Their handlers run without claims in the context, whatever the
	// request's Authorization header says; the header is not even read.
	PublicProcedures []string
	// Logger receives why tokens were refused and why none could be
	// judged. Tokens themselves are never logged. Each refusal is logged
	// at debug level with the check that refused it and a detail; while
	// no token has been accepted for a minute (a verifier refusing every
	// token it sees: a wrong audience or issuer, say), the first refusal
	// by each check in a minute is logged at warning level instead.
	// Tokens that cannot be judged (keys unavailable) are logged at
	// warning level. Nil logs nothing.
	Logger *slog.Logger
	// Now is the clock of that once-a-minute bound. Defaults to time.Now.
	Now func() time.Time

	// requirements are the procedures' requirements, set by Require.
	requirements map[string][]Requirement
}

// NewInterceptorFromConfig returns an Interceptor that checks tokens with
// v, which must not be nil, as cfg says, and with what opts add to cfg
// (such as [Require] for the scopes and groups a procedure needs).
func NewInterceptorFromConfig(v TokenVerifier, cfg InterceptorConfig, opts ...InterceptorOption) *Interceptor {
	for _, o := range opts {
		o(&cfg)
	}
	i := &Interceptor{verifier: v, public: make(map[string]bool), logger: cfg.Logger, required: cfg.requirements}
	for _, p := range cfg.PublicProcedures {
		if _, guarded := i.required[p]; !guarded {
			i.public[p] = true
		}
	}
	if i.logger == nil {
		i.logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	i.warner = newRefusalWarner(now)
	return i
}

// InterceptorOption configures an [Interceptor], as [Require] does. Pass
// options to [NewInterceptorFromConfig].
type InterceptorOption func(*InterceptorConfig)

// WithPublicProcedures names procedures (such as
// "/mgmt.v1alpha1.AuthService/GetAuthStatus") that need no token. Their
// handlers run without claims in the context, whatever the request's
// Authorization header says; the header is not even read. Without it
// (or with no names), every procedure needs a token.
//
// Deprecated: use [InterceptorConfig].PublicProcedures.
func WithPublicProcedures(procedures ...string) InterceptorOption {
	return func(c *InterceptorConfig) {
		c.PublicProcedures = append(c.PublicProcedures, procedures...)
	}
}

// WithLogger makes the interceptor log why tokens were refused, as
// [InterceptorConfig].Logger says. Without it, or with a nil logger,
// nothing is logged.
//
// Deprecated: use [InterceptorConfig].Logger.
func WithLogger(l *slog.Logger) InterceptorOption {
	return func(c *InterceptorConfig) {
		if l != nil {
			c.Logger = l
		}
	}
}

// Interceptor is a Connect interceptor that requires a valid bearer token on
// every procedure except the public ones. Refused tokens get
// CodeUnauthenticated with [UnauthenticatedMessage] and a
// `WWW-Authenticate: Bearer` header (RFC 6750 §3); when keys cannot be
// obtained it answers CodeUnavailable. A valid token that lacks a scope or
// group the procedure requires ([Require]) gets CodePermissionDenied.
type Interceptor struct {
	verifier TokenVerifier
	public   map[string]bool
	required map[string][]Requirement
	logger   *slog.Logger
	warner   *refusalWarner
}

// NewInterceptor returns an Interceptor that checks tokens with v, which
// must not be nil.
//
// Deprecated: use [NewInterceptorFromConfig], configured as the
// [Verifier] is, with a struct.
func NewInterceptor(v TokenVerifier, opts ...InterceptorOption) *Interceptor {
	return NewInterceptorFromConfig(v, InterceptorConfig{}, opts...)
}

// WrapUnary implements [connect.Interceptor]. Installed on a client, it
// does nothing: it guards handlers only.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient || i.public[req.Spec().Procedure] {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Spec().Procedure, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements [connect.Interceptor]; clients are not
// affected.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements [connect.Interceptor].
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if i.public[conn.Spec().Procedure] {
			return next(ctx, conn)
		}
		ctx, err := i.authenticate(ctx, conn.Spec().Procedure, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

func (i *Interceptor) authenticate(ctx context.Context, procedure string, header http.Header) (context.Context, error) {
	raw, ok := BearerToken(header)
	if !ok {
		i.logger.DebugContext(ctx, "request without a bearer token", "procedure", procedure)
		return ctx, unauthenticated(`Bearer`)
	}
	claims, err := i.verifier.Verify(ctx, raw)
	switch {
	case err == nil:
		i.warner.accepted()
		if err := permissionDenied(claims, i.required[procedure]); err != nil {
			i.logger.DebugContext(ctx, "token lacks what the procedure requires", "procedure", procedure, "reason", err.Error())
			return ctx, err
		}
		return ContextWithClaims(ctx, claims), nil
	case errors.Is(err, ErrUnavailable):
		i.logger.WarnContext(ctx, "cannot verify token now", "procedure", procedure, "reason", err.Error())
		return ctx, connect.NewError(connect.CodeUnavailable, errors.New("token verification is temporarily unavailable"))
	default:
		check := refusedBy(err)
		if i.warner.warn(check) {
			i.logger.WarnContext(ctx, "token refused, and no token accepted for a minute: check the verifier's issuer, audience and algorithms against the provider's tokens (more refusals by this check are logged at debug level for a minute)",
				"procedure", procedure, "check", string(check), "reason", err.Error())
		} else {
			i.logger.DebugContext(ctx, "token refused", "procedure", procedure, "check", string(check), "reason", err.Error())
		}
		return ctx, unauthenticated(`Bearer error="invalid_token"`)
	}
}

func unauthenticated(challenge string) error {
	err := connect.NewError(connect.CodeUnauthenticated, errors.New(UnauthenticatedMessage))
	err.Meta().Set("WWW-Authenticate", challenge)
	return err
}

// BearerToken extracts the token from an `Authorization: Bearer <token>`
// header (RFC 6750 §2.1; the scheme is case-insensitive, and one space
// separates it from the token). It reports false when the header is
// missing, repeated, uses another scheme, or carries an empty token or one
// with white space (of any kind, not only spaces and tabs) or control
// characters.
func BearerToken(h http.Header) (string, bool) {
	values := h.Values("Authorization")
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || hasNonTokenRune(token) {
		return "", false
	}
	return token, true
}

// hasNonTokenRune reports whether s holds white space or a control
// character. Tokens are ASCII, so bytes are checked directly (in ASCII,
// exactly those up to the space, and DEL, are either); from the first
// non-ASCII byte on, runes are decoded and judged by package unicode.
func hasNonTokenRune(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return strings.IndexFunc(s[i:], notTokenRune) >= 0
		}
		if c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func notTokenRune(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
