// Package backchannel tells apps that a user's session at them ended,
// by OpenID Connect Back-Channel Logout 1.0: a signed logout token
// (typ logout+jwt) POSTed from the provider to the app's back-channel
// logout URI.
//
// A [Sender] never holds up the sign-out that caused it: [Sender.Send]
// queues the logout in memory and returns, and a few workers deliver the
// queue in the background, each logout tried up to Config.Tries times
// with a backoff that doubles (4 s, 8 s, 16 s, 32 s by default: about a
// minute), then given up. The queue is bounded; a logout that finds it
// full is given up at once. Each logout's outcome is one event
// (audit.BackchannelSent or audit.BackchannelFailed); the token itself is
// never logged nor recorded.
//
// Deliveries follow no redirect, read at most a few kilobytes of the
// answer and time out. A logout queued when the process stops is lost:
// the queue is not persisted, as the specification allows (the app's own
// session expires in time).
package backchannel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/pkg/noredirect"
)

// Defaults of [Config].
const (
	// DefaultTries is the default of Config.Tries.
	DefaultTries = 5
	// DefaultBackoff is the default of Config.Backoff.
	DefaultBackoff = 4 * time.Second
	// DefaultTimeout bounds one delivery (connection, request and
	// answer) with the default HTTP client.
	DefaultTimeout = 10 * time.Second
	// DefaultQueueSize is the default of Config.QueueSize.
	DefaultQueueSize = 1024
	// DefaultWorkers is the default of Config.Workers.
	DefaultWorkers = 4
)

// TokenLifetime is how long a logout token is valid: long enough for a
// slow receiver, short enough that a captured one is soon worthless.
const TokenLifetime = 2 * time.Minute

// TokenType is the `typ` header of logout tokens (Back-Channel Logout
// 1.0 §2.4), which no other token of the provider carries.
const TokenType = "logout+jwt"

// EventLogout is the member of a logout token's `events` claim.
const EventLogout = "http://schemas.openid.net/event/backchannel-logout"

// maxAnswer bounds what is read of an app's answer: it is discarded, but
// reading it lets the connection be reused.
const maxAnswer = 4 << 10

// Logout is one app to tell that a session ended.
type Logout struct {
	// ClientID is the app: the logout token's aud.
	ClientID string
	// URI is the app's back-channel logout URI.
	URI string
	// Subject is the user: the logout token's sub.
	Subject string
	// SessionID is the session as the app's ID tokens name it (their
	// sid: the grant id): the logout token's sid.
	SessionID string
}

// Signer gives the key that signs at this moment; the provider's
// op.Storage (storage.Storage) is one.
type Signer interface {
	SigningKey(ctx context.Context) (op.SigningKey, error)
}

// Config configures a [Sender].
type Config struct {
	// Issuer is the provider's issuer URL: the logout token's iss.
	// Required.
	Issuer string
	// Keys signs logout tokens. Required.
	Keys Signer
	// Events records each logout's outcome. Nil records nothing.
	Events *events.Recorder
	// HTTPClient delivers logout tokens. It must not follow redirects and
	// must time out. Nil means a client that follows none and times out
	// after DefaultTimeout (package noredirect).
	HTTPClient *http.Client
	// Now is the clock of the tokens' iat and exp. Default time.Now.
	Now func() time.Time
	// After waits between tries, as time.After does (the default); tests
	// inject their own.
	After func(time.Duration) <-chan time.Time
	// Tries is how many times a logout is tried before it is given up.
	// Zero means DefaultTries.
	Tries int
	// Backoff is the wait after the first failed try; each later wait is
	// twice the one before. Zero means DefaultBackoff.
	Backoff time.Duration
	// QueueSize bounds the logouts waiting for a worker. Zero means
	// DefaultQueueSize.
	QueueSize int
	// Workers is how many logouts are delivered at once. Zero means
	// DefaultWorkers.
	Workers int
	// Log receives the reasons of failed tries (never a token). Nil
	// logs nothing.
	Log *slog.Logger
}

// Sender delivers logout tokens in the background. Its methods are safe
// for concurrent use.
type Sender struct {
	cfg Config

	mu      sync.Mutex
	pending []Logout
	workers int // running, at most cfg.Workers
	idle    *sync.Cond
}

// New returns the Sender of cfg.
func New(cfg Config) (*Sender, error) {
	if cfg.Issuer == "" || cfg.Keys == nil {
		return nil, errors.New("backchannel: an issuer and signing keys are required")
	}
	if cfg.Events == nil {
		cfg.Events = events.New(nil, nil, nil)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = noredirect.NewClient(nil, DefaultTimeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Tries <= 0 {
		cfg.Tries = DefaultTries
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg}
	s.idle = sync.NewCond(&s.mu)
	return s, nil
}

// Send queues l for delivery and returns at once. When the queue is full,
// l is given up (its failure recorded) without waiting. ctx carries the
// trace of the sign-out; its cancellation does not stop the delivery.
func (s *Sender) Send(ctx context.Context, l Logout) {
	ctx = context.WithoutCancel(ctx)
	s.mu.Lock()
	if len(s.pending) >= s.cfg.QueueSize {
		s.mu.Unlock()
		s.record(ctx, l, "queue_full")
		return
	}
	s.pending = append(s.pending, l)
	if s.workers < s.cfg.Workers {
		s.workers++
		go s.work(ctx)
	}
	s.mu.Unlock()
}

// Wait blocks until nothing is queued or being delivered, or ctx ends.
func (s *Sender) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.idle.Broadcast()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.workers > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.idle.Wait()
	}
	return nil
}

// work delivers queued logouts until the queue is empty. A worker leaves
// only after finding the queue empty under the lock Send queues under, so
// no logout is left without one.
func (s *Sender) work(ctx context.Context) {
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.workers--
			if s.workers == 0 {
				s.idle.Broadcast()
			}
			s.mu.Unlock()
			return
		}
		l := s.pending[0]
		s.pending[0] = Logout{}
		s.pending = s.pending[1:]
		s.mu.Unlock()
		s.deliver(ctx, l)
	}
}

// deliver tries l until it is accepted, refused for good, or out of
// tries, and records the outcome.
func (s *Sender) deliver(ctx context.Context, l Logout) {
	wait := s.cfg.Backoff
	reason := ""
	for try := 1; ; try++ {
		var retry bool
		reason, retry = s.try(ctx, l)
		if reason == "" || !retry || try == s.cfg.Tries {
			break
		}
		s.cfg.Log.DebugContext(ctx, "back-channel logout failed; trying again", "client_id", l.ClientID, "reason", reason,
			"try", try, "wait", wait)
		<-s.cfg.After(wait)
		wait *= 2
	}
	s.record(ctx, l, reason)
}

// try delivers l once. It returns "" when the app accepted the token, or
// the reason it did not and whether trying again may help.
func (s *Sender) try(ctx context.Context, l Logout) (reason string, retry bool) {
	token, err := s.Token(ctx, l)
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "signing a logout token failed", "error", err)
		return "signing", true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URI, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return "bad_uri", false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout", true
		}
		return "unreachable", true
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return "", false
	case c >= 300 && c < 400:
		return "redirect", false
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return "status_" + strconv.Itoa(c), true
	default:
		// The app refused the token (Back-Channel Logout 1.0 §2.8: 400
		// when it could not log out): the same token again would be
		// refused again.
		return "status_" + strconv.Itoa(c), false
	}
}

// record emits the outcome of l: sent when reason is "", failed with
// reason otherwise. No request caused it, so it names no client address.
func (s *Sender) record(ctx context.Context, l Logout, reason string) {
	e := audit.Event{Type: audit.BackchannelSent, Outcome: audit.Success, Subject: l.Subject, ClientID: l.ClientID,
		Refs: s.cfg.Events.Refs(audit.RefGrant, l.SessionID)}
	if reason != "" {
		e.Type, e.Outcome, e.Reason = audit.BackchannelFailed, audit.Failure, reason
	}
	if err := s.cfg.Events.System(ctx, e); err != nil {
		s.cfg.Log.ErrorContext(ctx, "recording a back-channel logout failed", "error", err)
	}
}

// logoutClaims are a logout token's claims (Back-Channel Logout 1.0
// §2.4): never a nonce, so it cannot pass for an ID token.
type logoutClaims struct {
	Issuer    string                    `json:"iss"`
	Audience  string                    `json:"aud"`
	IssuedAt  int64                     `json:"iat"`
	Expiry    int64                     `json:"exp"`
	ID        string                    `json:"jti"`
	Subject   string                    `json:"sub,omitempty"`
	SessionID string                    `json:"sid,omitempty"`
	Events    map[string]map[string]any `json:"events"`
}

// Token returns a new logout token for l, signed with the key that signs
// now: for l.ClientID, naming l.Subject and l.SessionID, valid for
// TokenLifetime, with a fresh jti.
func (s *Sender) Token(ctx context.Context, l Logout) (string, error) {
	if l.Subject == "" && l.SessionID == "" {
		return "", errors.New("a logout token names a subject or a session")
	}
	key, err := s.cfg.Keys.SigningKey(ctx)
	if err != nil {
		return "", fmt.Errorf("loading the signing key: %w", err)
	}
	now := s.cfg.Now()
	payload, err := json.Marshal(logoutClaims{
		Issuer: s.cfg.Issuer, Audience: l.ClientID, IssuedAt: now.Unix(), Expiry: now.Add(TokenLifetime).Unix(),
		ID: store.NewID(), Subject: l.Subject, SessionID: l.SessionID,
		Events: map[string]map[string]any{EventLogout: {}},
	})
	if err != nil {
		return "", fmt.Errorf("encoding the logout token: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: jose.JSONWebKey{Key: key.Key(), KeyID: key.ID()}},
		(&jose.SignerOptions{}).WithType(TokenType),
	)
	if err != nil {
		return "", fmt.Errorf("preparing the signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signing the logout token: %w", err)
	}
	return jws.CompactSerialize()
}
