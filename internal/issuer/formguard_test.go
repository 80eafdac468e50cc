package issuer_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// eventLog is an audit recorder that keeps every event in memory.
type eventLog struct {
	mu     sync.Mutex
	events []audit.Event
}

func (l *eventLog) Record(_ context.Context, e audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

func (l *eventLog) RecordRefusal(ctx context.Context, e audit.Event) error { return l.Record(ctx, e) }
func (l *eventLog) Ref(string) string                                      { return "" }
func (l *eventLog) RecordWith(ctx context.Context, e audit.Event, write func(context.Context, *audit.Event) error) error {
	if err := write(ctx, nil); err != nil {
		return err
	}
	return l.Record(ctx, e)
}

// take returns the events recorded since the last take.
func (l *eventLog) take() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// unguardedRoutes are the patterns that take posts without the form guard:
// protocol endpoints, which clients and other sites post to by design.
// A new pattern that takes posts must be guarded or be added here.
var unguardedRoutes = []string{"/authorize", "/oauth/end_session", "/oauth/token", "/"}

// TestEveryFormPostIsGuarded walks every route of the provider's mux that
// takes a POST and proves that each refuses a cross-origin post, a post
// without the CSRF token and an oversize body the same way: the same
// status and the same audit event, from the one guard.
func TestEveryFormPostIsGuarded(t *testing.T) {
	t.Parallel()
	events := &eventLog{}
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.Audit = events })

	var posts []string
	for _, r := range h.iss.Routes() {
		method, path, hasMethod := strings.Cut(r.Pattern, " ")
		switch {
		case !hasMethod:
			if !slices.Contains(unguardedRoutes, r.Pattern) {
				t.Errorf("route %q takes every method and is not a known protocol endpoint: guard its posts", r.Pattern)
			}
		case method == http.MethodPost && !r.Guarded:
			t.Errorf("form post %q is not behind the form guard", r.Pattern)
		case method == http.MethodPost:
			posts = append(posts, path)
		case r.Guarded:
			t.Errorf("route %q is guarded but takes no posts", r.Pattern)
		}
	}
	// Today's form posts, so that a table that lost its routes cannot pass
	// by walking none.
	for _, want := range []string{"/login", "/login/mfa", "/login/mfa/enroll", "/login/mfa/continue", "/login/enrol", "/logout", "/device",
		"/device/decision", "/login/passkey/begin", "/login/passkey/finish", "/login/passkey/register", "/login/passkey/skip",
		"/login/mfa/passkey", "/login/mfa/passkey/enroll"} {
		if !slices.Contains(posts, want) {
			t.Errorf("no guarded POST %s in the routes %v", want, posts)
		}
	}

	// A browser with a CSRF cookie.
	b := issuertest.NewBrowser(t)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/device", nil)
	csrf := b.Do(t, req).Form.Get("csrf")
	if csrf == "" {
		t.Fatal("no CSRF token on the device page")
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(t *testing.T, path string, json bool, body []byte, token string, header http.Header) int {
		t.Helper()
		if !json {
			body = append([]byte("csrf="+token+"&"), body...)
		}
		req, _ := http.NewRequest(http.MethodPost, h.url+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if json {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-CSRF-Token", token)
		}
		req.Header.Set("Origin", h.url)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		for k, v := range header {
			req.Header[k] = v
		}
		req.AddCookie(&http.Cookie{Name: "nsauth_csrf", Value: csrf})
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	oversize := bytes.Repeat([]byte("a"), 2<<20)
	for _, path := range posts {
		json := path == "/login/passkey/begin" || path == "/account/passkeys/begin"
		small := []byte("x=1")
		if json {
			small = []byte(`{}`)
		}
		t.Run(path, func(t *testing.T) {
			events.take()
			for _, tc := range []struct {
				name   string
				body   []byte
				token  string
				header http.Header
				status int
				reason string
			}{
				{"cross-origin", small, csrf, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden, "csrf"},
				{"cross-site fetch", small, csrf, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden, "csrf"},
				{"no CSRF token", small, "", nil, http.StatusForbidden, "csrf"},
				{"oversize body", oversize, csrf, nil, http.StatusRequestEntityTooLarge, "too_large"},
			} {
				if got := post(t, path, json, tc.body, tc.token, tc.header); got != tc.status {
					t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.status)
				}
				got := events.take()
				want := audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, Reason: tc.reason, Target: path}
				if len(got) != 1 || got[0].Type != want.Type || got[0].Outcome != want.Outcome || got[0].Reason != want.Reason || got[0].Target != want.Target {
					t.Errorf("%s: audit events %+v, want one %+v", tc.name, got, want)
				}
			}
			// The same post, same-origin with its token, passes the guard:
			// the refusals above are the guard's.
			if got := post(t, path, json, small, csrf, nil); got == http.StatusForbidden || got == http.StatusRequestEntityTooLarge {
				t.Errorf("an untampered post: HTTP %d", got)
			}
			for _, e := range events.take() {
				if e.Reason == "csrf" || e.Reason == "too_large" {
					t.Errorf("an untampered post was refused by the guard: %+v", e)
				}
			}
		})
	}
}
