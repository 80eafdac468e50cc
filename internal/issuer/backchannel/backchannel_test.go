package backchannel_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/backchannel"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/pkg/noredirect"
)

const issuer = "https://id.example.com"

var now = time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)

// key is an op.SigningKey over an RSA key of the test.
type key struct{ priv *rsa.PrivateKey }

func (k key) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k key) Key() any                                    { return k.priv }
func (k key) ID() string                                  { return "kid-1" }

type signer struct{ key key }

func (s signer) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

var testKey = func() key {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return key{priv}
}()

// trail keeps the events recorded.
type trail struct {
	mu     sync.Mutex
	events []audit.Event
	added  chan struct{}
}

func newTrail() *trail { return &trail{added: make(chan struct{}, 100)} }

func (t *trail) Record(_ context.Context, e audit.Event) error {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
	t.added <- struct{}{}
	return nil
}
func (t *trail) RecordRefusal(ctx context.Context, e audit.Event) error { return t.Record(ctx, e) }
func (t *trail) Ref(s string) string                                    { return "ref:" + s }
func (t *trail) RecordWith(ctx context.Context, e audit.Event, write func(context.Context, *audit.Event) error) error {
	if err := write(ctx, nil); err != nil {
		return err
	}
	return t.Record(ctx, e)
}

func (t *trail) all() []audit.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events)
}

// receiver is an app's back-channel logout endpoint: it verifies each
// token with the provider's key and answers status.
type receiver struct {
	t      *testing.T
	status func(try int) int
	mu     sync.Mutex
	claims []map[string]any
	tries  int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.tries++
	try := rc.tries
	rc.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		rc.t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	claims, err := verify(r.PostFormValue("logout_token"), &testKey.priv.PublicKey)
	if err != nil {
		rc.t.Errorf("logout token: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.claims = append(rc.claims, claims)
	rc.mu.Unlock()
	w.WriteHeader(rc.status(try))
}

func (rc *receiver) got() (int, []map[string]any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.tries, slices.Clone(rc.claims)
}

// verify checks a logout token's signature with pub and its type, and
// returns its claims.
func verify(token string, pub *rsa.PublicKey) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders["typ"]; typ != backchannel.TokenType {
		return nil, errors.New("typ is not logout+jwt")
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	return claims, json.Unmarshal(payload, &claims)
}

// waits is an injected After that records each wait and returns at once.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) after(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- now
	return c
}

func newSender(t *testing.T, tr *trail, w *waits, mod func(*backchannel.Config)) *backchannel.Sender {
	t.Helper()
	cfg := backchannel.Config{Issuer: issuer, Keys: signer{testKey}, Events: events.New(tr, nil, nil),
		Now: func() time.Time { return now }, After: w.after}
	if mod != nil {
		mod(&cfg)
	}
	s, err := backchannel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitIdle(t *testing.T, s *backchannel.Sender) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("deliveries still running: %v", err)
	}
}

var logout = backchannel.Logout{ClientID: "neosync", Subject: "user-1", SessionID: "grant-1"}

// TestDeliveries: each answer of the app leads to its number of tries,
// waits and one outcome.
func TestDeliveries(t *testing.T) {
	t.Parallel()
	backoffs := []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}
	for _, tc := range []struct {
		name   string
		status func(try int) int
		tries  int
		waits  []time.Duration
		reason string // "" for sent
	}{
		{"accepted at once", func(int) int { return http.StatusOK }, 1, nil, ""},
		{"204 accepted", func(int) int { return http.StatusNoContent }, 1, nil, ""},
		{"down, then up", func(try int) int { return map[bool]int{true: 503, false: 200}[try < 3] }, 3, backoffs[:2], ""},
		{"down for good: retried, then given up", func(int) int { return http.StatusServiceUnavailable }, 5, backoffs, "status_503"},
		{"too many requests is retried", func(int) int { return http.StatusTooManyRequests }, 5, backoffs, "status_429"},
		{"refused: not retried", func(int) int { return http.StatusBadRequest }, 1, nil, "status_400"},
		{"redirect: not followed nor retried", func(int) int { return http.StatusFound }, 1, nil, "redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &receiver{t: t, status: tc.status}
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			tr, w := newTrail(), &waits{}
			s := newSender(t, tr, w, nil)
			l := logout
			l.URI = srv.URL + "/api/auth/backchannel"
			s.Send(context.Background(), l)
			waitIdle(t, s)

			tries, claims := rc.got()
			if tries != tc.tries {
				t.Errorf("%d tries, want %d", tries, tc.tries)
			}
			if !slices.Equal(w.d, tc.waits) {
				t.Errorf("waits %v, want %v", w.d, tc.waits)
			}
			jtis := map[any]bool{}
			for _, c := range claims {
				checkClaims(t, c)
				jtis[c["jti"]] = true
			}
			if len(jtis) != len(claims) {
				t.Errorf("%d tokens share jtis", len(claims))
			}
			evs := tr.all()
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(evs), evs)
			}
			e := evs[0]
			wantType, wantOutcome := audit.BackchannelSent, audit.Success
			if tc.reason != "" {
				wantType, wantOutcome = audit.BackchannelFailed, audit.Failure
			}
			if e.Type != wantType || e.Outcome != wantOutcome || e.Reason != tc.reason || e.ClientID != "neosync" ||
				e.Subject != "user-1" || e.Refs[audit.RefGrant] != "ref:grant-1" || e.ClientAddr != "" {
				t.Errorf("event %+v", e)
			}
		})
	}
}

func checkClaims(t *testing.T, c map[string]any) {
	t.Helper()
	ev, _ := c["events"].(map[string]any)
	member, ok := ev[backchannel.EventLogout].(map[string]any)
	if c["iss"] != issuer || c["aud"] != "neosync" || c["sub"] != "user-1" || c["sid"] != "grant-1" ||
		c["iat"] != float64(now.Unix()) || c["exp"] != float64(now.Add(2*time.Minute).Unix()) ||
		c["jti"] == "" || c["jti"] == nil || !ok || len(member) != 0 || c["nonce"] != nil || len(ev) != 1 {
		t.Errorf("logout token claims %v", c)
	}
}

// TestUnreachable: an app whose server is gone is tried every time, then
// given up, and so is one that does not answer in time.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	for _, tc := range []struct{ name, uri, reason string }{
		{"connection refused", goneURL, "unreachable"},
		{"no answer in time", slow.URL, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, w := newTrail(), &waits{}
			s := newSender(t, tr, w, func(c *backchannel.Config) { c.HTTPClient = noredirect.NewClient(nil, 50*time.Millisecond) })
			l := logout
			l.URI = tc.uri
			s.Send(context.Background(), l)
			waitIdle(t, s)
			if len(w.d) != backchannel.DefaultTries-1 {
				t.Errorf("waited %d times, want %d", len(w.d), backchannel.DefaultTries-1)
			}
			if evs := tr.all(); len(evs) != 1 || evs[0].Type != audit.BackchannelFailed || evs[0].Reason != tc.reason {
				t.Errorf("events %+v", evs)
			}
		})
	}
}

// TestSendNeverBlocks: Send returns while the app hangs, and once the
// bounded queue is full a logout is given up at once.
func TestSendNeverBlocks(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(srv.Close)
	tr, w := newTrail(), &waits{}
	s := newSender(t, tr, w, func(c *backchannel.Config) { c.Workers, c.QueueSize = 1, 1 })
	l := logout
	l.URI = srv.URL
	start := time.Now()
	s.Send(context.Background(), l) // taken by the worker
	<-arrived
	s.Send(context.Background(), l) // queued
	s.Send(context.Background(), l) // the queue is full
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %s", d)
	}
	select {
	case <-tr.added:
	case <-time.After(10 * time.Second):
		t.Fatal("the logout that found the queue full was not given up")
	}
	if evs := tr.all(); len(evs) != 1 || evs[0].Type != audit.BackchannelFailed || evs[0].Reason != "queue_full" {
		t.Errorf("events %+v", evs)
	}
	close(release)
	waitIdle(t, s)
	sent := 0
	for _, e := range tr.all() {
		if e.Type == audit.BackchannelSent {
			sent++
		}
	}
	if sent != 2 {
		t.Errorf("%d sent, want 2", sent)
	}
}

// lockedBuffer is a log destination safe for the workers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTokenNeverLogged: the failed tries and the outcome are logged at
// debug, and no part of any token sent appears in the log.
func TestTokenNeverLogged(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sent = append(sent, r.PostFormValue("logout_token"))
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr := newTrail()
	s := newSender(t, tr, &waits{}, func(c *backchannel.Config) {
		c.Log = log
		c.Events = events.New(tr, nil, log)
	})
	l := logout
	l.URI = srv.URL
	s.Send(context.Background(), l)
	waitIdle(t, s)
	out := logs.String()
	if !strings.Contains(out, "back-channel logout given up") || !strings.Contains(out, "trying again") {
		t.Errorf("the log lacks the tries and the outcome:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != backchannel.DefaultTries {
		t.Fatalf("%d tokens sent", len(sent))
	}
	for _, token := range sent {
		for _, part := range strings.Split(token, ".")[1:] {
			if strings.Contains(out, part) {
				t.Fatalf("the log contains a logout token:\n%s", out)
			}
		}
	}
}
