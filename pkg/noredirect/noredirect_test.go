package noredirect_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/pkg/noredirect"
)

func TestNewClientFollowsNoRedirect(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
	}))
	t.Cleanup(target.Close)
	for _, tc := range []struct {
		name   string
		status int
		method string
	}{
		{"302 on GET", http.StatusFound, http.MethodGet},
		{"301 on GET", http.StatusMovedPermanently, http.MethodGet},
		{"307 on POST", http.StatusTemporaryRedirect, http.MethodPost},
		{"308 on POST", http.StatusPermanentRedirect, http.MethodPost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/stolen", tc.status)
			}))
			t.Cleanup(redirector.Close)
			c := noredirect.NewClient(nil, 5*time.Second)
			req, err := http.NewRequest(tc.method, redirector.URL, strings.NewReader("client_secret=s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want the redirect %d itself", resp.StatusCode, tc.status)
			}
			if resp.Header.Get("Location") == "" {
				t.Fatal("the redirect answer lost its Location")
			}
		})
	}
	t.Cleanup(func() {
		if n := reached.Load(); n != 0 {
			t.Errorf("the redirect target was reached %d times", n)
		}
	})
}

func TestNewClient(t *testing.T) {
	t.Parallel()
	rt := &http.Transport{}
	for _, tc := range []struct {
		name    string
		rt      http.RoundTripper
		timeout time.Duration
	}{
		{"default transport", nil, 10 * time.Second},
		{"own transport", rt, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := noredirect.NewClient(tc.rt, tc.timeout)
			if c.Transport != tc.rt || c.Timeout != tc.timeout || c.CheckRedirect == nil {
				t.Fatalf("NewClient(%v, %v) = %+v", tc.rt, tc.timeout, c)
			}
		})
	}
}
