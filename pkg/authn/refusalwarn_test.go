package authn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/pkg/authn"
)

// syncBuffer is a bytes.Buffer safe for the handlers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// take returns the log lines written since the last call, as level and
// check, and the raw text.
func (s *syncBuffer) take(t *testing.T) ([]string, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	raw := s.b.String()
	s.b.Reset()
	var lines []string
	for line := range strings.Lines(raw) {
		var e struct{ Level, Check string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, e.Level+" "+e.Check)
	}
	return lines, raw
}

// TestRefusalsWarnWhileNothingIsAccepted: a verifier that refuses every
// token it sees logs each check's refusal at warning level once a minute;
// once tokens are accepted, refusals go back to debug level.
func TestRefusalsWarnWhileNothingIsAccepted(t *testing.T) {
	t.Parallel()
	p := oidctest.New(t)
	v, _ := newVerifier(t, p, nil)
	other := oidctest.New(t) // signs with keys v does not know
	clock := &fakeClock{t: time.Now()}
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	interceptor := authn.NewInterceptorFromConfig(v, authn.InterceptorConfig{Logger: logger, Now: clock.Now})
	unary := func(ctx context.Context, _ *connect.Request[wrapperspb.StringValue]) (*connect.Response[wrapperspb.StringValue], error) {
		return connect.NewResponse(wrapperspb.String("")), nil
	}
	mux := http.NewServeMux()
	mux.Handle(procWhoami, connect.NewUnaryHandler(procWhoami, unary, connect.WithInterceptors(interceptor)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := connect.NewClient[wrapperspb.StringValue, wrapperspb.StringValue](srv.Client(), srv.URL+procWhoami)
	call := func(token string) {
		req := connect.NewRequest(wrapperspb.String(""))
		req.Header().Set("Authorization", "Bearer "+token)
		_, _ = client.CallUnary(context.Background(), req)
	}
	garbage := "not-a-jwt"
	unknownKey := other.AccessToken()

	steps := []struct {
		name    string
		advance time.Duration
		tokens  []string
		want    []string // level and check of each line, in order
	}{
		{name: "first refusals by each check warn, repeats are debug",
			tokens: []string{garbage, garbage, unknownKey, unknownKey},
			want:   []string{"WARN encoding", "DEBUG encoding", "WARN key", "DEBUG key"}},
		{name: "within the minute, still debug", advance: 59 * time.Second,
			tokens: []string{garbage},
			want:   []string{"DEBUG encoding"}},
		{name: "a minute later, warn again", advance: 2 * time.Second,
			tokens: []string{garbage, garbage},
			want:   []string{"WARN encoding", "DEBUG encoding"}},
		{name: "an accepted token quiets the warnings", advance: 2 * time.Minute,
			tokens: []string{p.AccessToken(), garbage, unknownKey},
			want:   []string{"DEBUG encoding", "DEBUG key"}},
		{name: "a minute without acceptance warns again", advance: 61 * time.Second,
			tokens: []string{unknownKey},
			want:   []string{"WARN key"}},
	}
	for _, step := range steps {
		clock.Advance(step.advance)
		for _, tok := range step.tokens {
			call(tok)
		}
		got, raw := logs.take(t)
		if strings.Join(got, ", ") != strings.Join(step.want, ", ") {
			t.Fatalf("%s: log lines %q, want %q\n%s", step.name, got, step.want, raw)
		}
		for _, tok := range step.tokens {
			if strings.Contains(raw, tok) {
				t.Fatalf("%s: a token was logged:\n%s", step.name, raw)
			}
		}
	}
}
