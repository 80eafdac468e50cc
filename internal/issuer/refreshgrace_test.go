package issuer_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const maxLifetimeDescription = "the session reached its maximum lifetime; log in again"

func TestRefreshTokenMaxLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// every is the time between refreshes, n how many succeed before
		// wait passes and one more is tried.
		every   time.Duration
		n       int
		wait    time.Duration
		wantErr string // the last refresh's error_description; "" for success
	}{
		{"cap reached after many refreshes", 10 * time.Hour, 7, 10 * time.Hour, maxLifetimeDescription},
		{"a refresh just before the cap works", 10 * time.Hour, 7, 2*time.Hour - time.Second, ""},
		{"a refresh after the cap fails at once", 10 * time.Hour, 7, 2 * time.Hour, maxLifetimeDescription},
		{"an idle token expires before the cap", 10 * time.Hour, 1, 25 * time.Hour, "invalid refresh token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				h := newHarness(t, b, func(c *issuer.Config) {
					c.RefreshTokenTTL = 24 * time.Hour
					c.RefreshTokenMaxLifetime = 72 * time.Hour
				})
				tr := h.tokens(nil)
				for i := range tc.n {
					h.clock.Advance(tc.every)
					tr = h.refresh(tr.RefreshToken)
					if tr.status != http.StatusOK {
						t.Fatalf("refresh %d after %s: %d %s (%s)", i+1, time.Duration(i+1)*tc.every, tr.status, tr.Error, tr.ErrorDescription)
					}
				}
				h.clock.Advance(tc.wait)
				last := h.refresh(tr.RefreshToken)
				if tc.wantErr == "" {
					if last.status != http.StatusOK {
						t.Fatalf("last refresh = %d %s (%s), want success", last.status, last.Error, last.ErrorDescription)
					}
					return
				}
				if last.status != http.StatusBadRequest || last.Error != "invalid_grant" || last.ErrorDescription != tc.wantErr {
					t.Fatalf("last refresh = %d %s (%q), want invalid_grant (%q)", last.status, last.Error, last.ErrorDescription, tc.wantErr)
				}
			})
		})
	}
}

func TestMaxLifetimeShorterThanTTLRefused(t *testing.T) {
	t.Parallel()
	st := sqlite().Open(t, store.Options{})
	_, err := issuer.New(ctx, issuer.Config{Issuer: "http://127.0.0.1:1", Store: st, RefreshTokenTTL: 48 * time.Hour, RefreshTokenMaxLifetime: 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "maximum lifetime") {
		t.Fatalf("New = %v, want a refusal naming the maximum lifetime", err)
	}
}

// otherClient registers a second client that may use refresh tokens, and
// returns its credentials.
func (h *harness) otherClient() (id, secret string) {
	h.t.Helper()
	id, secret = "other-client", "other-client-secret"
	if _, err := h.st.EnsureClient(ctx, &store.Client{ID: id, SecretHash: store.HashSecret(secret)}); err != nil {
		h.t.Fatal(err)
	}
	return id, secret
}

// refreshAs refreshes with the credentials of clientID. It is safe to
// call from any goroutine.
func (h *harness) refreshAs(clientID, secret, rt string) (tokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, err := http.NewRequest(http.MethodPost, h.url+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tokenResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return tokenResponse{}, err
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return tokenResponse{}, err
	}
	tr.status = resp.StatusCode
	return tr, nil
}

// TestRefreshReuseGrace: the first refresh rotates first's token into
// second's, whose answer the client is taken to have lost; it then
// presents first's token again.
func TestRefreshReuseGrace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before runs between the rotation and the retry.
		before    func(h *harness, second tokenResponse)
		other     bool // the retry comes from another client
		noGrace   bool
		wantRetry bool // the retry gets second's refresh token; otherwise the family is revoked
	}{
		{name: "retry within grace gets the same refresh token", before: func(h *harness, _ tokenResponse) {
			h.clock.Advance(issuer.DefaultRefreshReuseGrace - time.Second)
		}, wantRetry: true},
		{name: "retry after grace revokes", before: func(h *harness, _ tokenResponse) {
			h.clock.Advance(issuer.DefaultRefreshReuseGrace)
		}},
		{name: "retry after the new token was used revokes", before: func(h *harness, second tokenResponse) {
			if r := h.refresh(second.RefreshToken); r.status != http.StatusOK {
				h.t.Fatalf("using the new token = %d %s", r.status, r.Error)
			}
		}},
		{name: "retry by another client revokes", other: true},
		{name: "retry with grace disabled revokes", noGrace: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				h := newHarness(t, b, func(c *issuer.Config) {
					if tc.noGrace {
						c.RefreshReuseGrace = -1
					}
				})
				first := h.tokens(nil)
				second := h.refresh(first.RefreshToken)
				if second.status != http.StatusOK {
					t.Fatalf("first refresh = %d %s", second.status, second.Error)
				}
				if tc.before != nil {
					tc.before(h, second)
				}
				client, secret := h.client, h.secret
				if tc.other {
					client, secret = h.otherClient()
				}
				retry, err := h.refreshAs(client, secret, first.RefreshToken)
				if err != nil {
					t.Fatal(err)
				}
				if !tc.wantRetry {
					if retry.status != http.StatusBadRequest || retry.Error != "invalid_grant" || retry.RefreshToken != "" {
						t.Fatalf("retry = %d %s %q, want invalid_grant", retry.status, retry.Error, retry.RefreshToken)
					}
					if r := h.refresh(second.RefreshToken); r.Error != "invalid_grant" {
						t.Fatalf("the new token after a refused retry = %d %s, want invalid_grant (family revoked)", r.status, r.Error)
					}
					if h.introspect(second.AccessToken)["active"] != false {
						t.Fatal("an access token of the family is active after a refused retry")
					}
					return
				}
				if retry.status != http.StatusOK || retry.RefreshToken != second.RefreshToken {
					t.Fatalf("retry = %d %s, refresh token same as the lost answer's: %v", retry.status, retry.Error, retry.RefreshToken == second.RefreshToken)
				}
				// A fresh access token of the same grant (session).
				_, lost := jwtParts(t, second.IDToken)
				_, got := jwtParts(t, retry.IDToken)
				if got["sid"] == nil || got["sid"] != lost["sid"] {
					t.Errorf("retry's session %v, the lost answer's %v", got["sid"], lost["sid"])
				}
				if h.introspect(retry.AccessToken)["active"] != true || h.introspect(second.AccessToken)["active"] != true {
					t.Fatal("the family's access tokens are not active after a retry")
				}
				// The family is alive: the new token works, and afterwards
				// the old one is plain reuse again.
				third := h.refresh(retry.RefreshToken)
				if third.status != http.StatusOK {
					t.Fatalf("the new token after a retry = %d %s", third.status, third.Error)
				}
				if again := h.refresh(first.RefreshToken); again.Error != "invalid_grant" {
					t.Fatalf("old token after the new one was used = %d %s, want invalid_grant", again.status, again.Error)
				}
				if r := h.refresh(third.RefreshToken); r.Error != "invalid_grant" {
					t.Fatalf("latest token after reuse = %d %s, want invalid_grant", r.status, r.Error)
				}
			})
		})
	}
}

// TestRefreshReuseGraceConcurrent sends one refresh token many times at
// once, as a client retrying over several connections would: every answer
// carries the same new refresh token and nothing is revoked.
func TestRefreshReuseGraceConcurrent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		rotated bool // refreshed once before the burst
	}{
		{"simultaneous first presentations", false},
		{"simultaneous retries", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
				h := newHarness(t, b, nil)
				first := h.tokens(nil)
				want := ""
				if tc.rotated {
					want = h.refresh(first.RefreshToken).RefreshToken
				}
				const n = 6
				got := make([]tokenResponse, n)
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() { got[i], errs[i] = h.refreshAs(h.client, h.secret, first.RefreshToken) })
				}
				wg.Wait()
				for i := range n {
					if errs[i] != nil {
						t.Fatal(errs[i])
					}
					if got[i].status != http.StatusOK {
						t.Fatalf("presentation %d = %d %s (%s)", i, got[i].status, got[i].Error, got[i].ErrorDescription)
					}
					if want == "" {
						want = got[i].RefreshToken
					}
					if got[i].RefreshToken != want {
						t.Fatalf("presentation %d got another refresh token than the others", i)
					}
				}
				if r := h.refresh(want); r.status != http.StatusOK {
					t.Fatalf("the new token after the burst = %d %s", r.status, r.Error)
				}
			})
		})
	}
}

// TestRefreshGraceLogsNoSecrets runs retries, accepted and refused, with
// debug logging, and looks for every token in the log.
func TestRefreshGraceLogsNoSecrets(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	var trail *auditTrail
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		trail = withAudit(t, c)
	})
	first := h.tokens(nil)
	second := h.refresh(first.RefreshToken)
	retry := h.refresh(first.RefreshToken)
	third := h.refresh(second.RefreshToken)
	refused := h.refresh(first.RefreshToken)
	if retry.RefreshToken != second.RefreshToken || third.status != http.StatusOK || refused.Error != "invalid_grant" {
		t.Fatalf("retry %d, third %d, refused %d %s", retry.status, third.status, refused.status, refused.Error)
	}
	out := logs.String()
	events, records := trail.records(t)
	for _, tr := range []tokenResponse{first, second, retry, third} {
		for _, secret := range []string{tr.AccessToken, tr.RefreshToken, tr.IDToken} {
			if secret != "" && strings.Contains(out, secret) {
				t.Fatalf("the log contains a token:\n%s", out)
			}
			if secret != "" && strings.Contains(records, secret) {
				t.Fatalf("the audit records contain a token:\n%s", records)
			}
		}
	}
	var kinds []string
	for _, e := range events {
		if e.Type == audit.RefreshRotated || e.Type == audit.RefreshReuseDetected {
			kinds = append(kinds, string(e.Type)+":"+e.Reason)
		}
	}
	want := []string{"refresh.rotated:", "refresh.rotated:retry_within_grace", "refresh.rotated:", "refresh.reuse_detected:family_revoked"}
	if !slices.Equal(kinds, want) {
		t.Errorf("refresh events %v, want %v", kinds, want)
	}
	// The retry's event is stored with its access token's record, and
	// names what the retry answered: the same successor, a new access
	// token. The stream carries it as stored.
	key := []byte("an audit key of thirty-two bytes")
	for _, e := range events {
		if e.Type != audit.RefreshRotated || e.Reason != "retry_within_grace" {
			continue
		}
		if e.Refs["successor_hmac"] != audit.Hash(key, retry.RefreshToken) || e.Refs[audit.RefToken] != audit.Hash(key, retry.AccessToken) {
			t.Errorf("the retry's event names another successor or access token: %v", e.Refs)
		}
	}
	if n := strings.Count(trail.stream.String(), "retry_within_grace"); n != 1 {
		t.Errorf("the stream carries %d retry events, want 1:\n%s", n, trail.stream.String())
	}
	for _, want := range []string{"refresh retried within the reuse grace", "refresh token reused"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
