package cli_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// columns squeezes the padding of tabular output to one space.
func columns(s string) string { return regexp.MustCompile(` {2,}`).ReplaceAllString(s, " ") }

// TestNotAnAPIServer: a server that answers, but not as an nsauth or
// Neosync API, is named as such, whichever command meets it.
func TestNotAnAPIServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		https   bool // dial the plain-HTTP server with https://
		want    func(apiURL string) string
	}{
		{"501 from a static web server", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html;charset=utf-8")
			w.WriteHeader(http.StatusNotImplemented)
			_, _ = w.Write([]byte("<h1>Error response</h1><p>Error code: 501</p><p>Message: Unsupported method ('POST').</p>"))
		}, false, func(u string) string {
			return u + " answered HTTP 501: it does not look like an nsauth/Neosync API server (check --api-url)"
		}},
		{"404 page", http.NotFound, false, func(u string) string {
			return u + " answered HTTP 404: it does not look like an nsauth/Neosync API server (check --api-url)"
		}},
		{"web app answering everything with HTML", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte("<!doctype html><title>Neosync</title>"))
		}, false, func(u string) string {
			return u + " answered HTTP 200 with text/html: it does not look like an nsauth/Neosync API server (check --api-url)"
		}},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://api.example.com"+r.URL.Path, http.StatusMovedPermanently)
		}, false, func(u string) string {
			return u + " answered HTTP 301, a redirect to https://api.example.com/mgmt.v1alpha1.AuthService/"
		}},
		{"plain HTTP dialled with https", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
		}, true, func(u string) string {
			return u + " does not speak TLS: did you mean http://" + strings.TrimPrefix(u, "https://") + "?"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			t.Cleanup(srv.Close)
			e := &env{t: t, apiURL: srv.URL, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
			if tc.https {
				e.apiURL = "https://" + strings.TrimPrefix(srv.URL, "http://")
			}
			want := tc.want(e.apiURL)
			ctx := context.Background()

			r := e.run(ctx, nil, "login", "--no-browser", "--timeout", "10s")
			if r.code != 1 || !strings.Contains(r.errOut, want) {
				t.Errorf("login: exit %d, stderr %q; want 1 and %q", r.code, r.errOut, want)
			}
			r = e.run(ctx, nil, "status")
			if r.code != 1 || !strings.Contains(columns(r.out), "Server: reached, but "+want) || !strings.Contains(r.errOut, want) {
				t.Errorf("status: exit %d\n%s%s\nwant 1 and %q", r.code, r.out, r.errOut, want)
			}
			mustNotContain(t, "status", r.out, "not reachable")
			// Not logged in: token checks the server before saying "log in".
			r = e.run(ctx, nil, "token")
			if r.code != 1 || !strings.Contains(r.errOut, want) {
				t.Errorf("token, not logged in: exit %d, stderr %q; want 1 and %q", r.code, r.errOut, want)
			}
			// An expired token: the refresh (in pkg/tokensource) meets it.
			ent := storeEntry(e, "expired-access-token", time.Now().Add(-time.Minute))
			ent.RefreshToken = "a-refresh-token"
			if err := e.store().Save(ent); err != nil {
				t.Fatal(err)
			}
			r = e.run(ctx, nil, "token")
			if r.code != 1 || !strings.Contains(r.errOut, want) {
				t.Errorf("token refreshing: exit %d, stderr %q; want 1 and %q", r.code, r.errOut, want)
			}
			// A fresh token: CheckToken meets it.
			if err := e.store().Save(storeEntry(e, "fresh-access-token", time.Now().Add(time.Hour))); err != nil {
				t.Fatal(err)
			}
			r = e.run(ctx, nil, "whoami")
			if r.code != 1 || !strings.Contains(r.errOut, want) {
				t.Errorf("whoami: exit %d, stderr %q; want 1 and %q", r.code, r.errOut, want)
			}
			if ent := e.entry(); ent.Refused() || ent.AccessToken != "fresh-access-token" {
				t.Errorf("a server that is not the API server made the client forget its session: %v", ent)
			}
		})
	}
}
