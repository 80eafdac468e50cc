package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/nsauth/nsauth/pkg/authn"
)

// TestDefaultClientsDoNotFollowRedirects points each component, with its
// default HTTP client, at a server that redirects to a second one. The
// second server must receive nothing: a followed 307 or 308 would re-post
// the token and the client's credentials to it.
func TestDefaultClientsDoNotFollowRedirects(t *testing.T) {
	t.Parallel()
	components := []struct {
		name string
		// call uses the component against base and returns its error.
		call func(ctx context.Context, base string) error
		// wantUnavailable: the refusal must read as "cannot judge now",
		// never as a verdict on the token.
		wantUnavailable bool
	}{
		{"RemoteKeySet", func(ctx context.Context, base string) error {
			ks, err := authn.NewRemoteKeySet(authn.RemoteKeySetConfig{URL: authn.StaticURL(base + "/jwks")})
			if err != nil {
				return err
			}
			_, err = ks.Lookup(ctx, "some-key")
			return err
		}, true},
		{"Introspector", func(ctx context.Context, base string) error {
			in, err := authn.NewIntrospector(authn.IntrospectorConfig{
				URL: authn.StaticURL(base + "/introspect"), ClientID: "resource-server", ClientSecret: "s3cret",
			})
			if err != nil {
				return err
			}
			_, err = in.Verify(ctx, "opaque-token")
			return err
		}, true},
		{"Discover", func(ctx context.Context, base string) error {
			_, err := authn.Discover(ctx, base, nil)
			return err
		}, false},
		{"NewFromIssuer", func(ctx context.Context, base string) error {
			_, err := authn.NewFromIssuer(ctx, base, authn.VerifierConfig{Audiences: []string{"api"}})
			return err
		}, false},
	}
	for _, c := range components {
		for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
			t.Run(c.name+"/"+strconv.Itoa(status), func(t *testing.T) {
				t.Parallel()
				var elsewhere atomic.Int64
				target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					elsewhere.Add(1)
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(`{"active":true,"sub":"alice","keys":[]}`))
				}))
				t.Cleanup(target.Close)
				redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, target.URL+r.URL.Path, status)
				}))
				t.Cleanup(redirector.Close)

				err := c.call(context.Background(), redirector.URL)
				if err == nil {
					t.Fatal("a redirect was accepted")
				}
				if errors.Is(err, authn.ErrInvalidToken) {
					t.Errorf("err = %v: a redirect is not a verdict on the token", err)
				}
				if c.wantUnavailable && !errors.Is(err, authn.ErrUnavailable) {
					t.Errorf("err = %v, want ErrUnavailable", err)
				}
				if n := elsewhere.Load(); n != 0 {
					t.Errorf("the redirect target received %d requests, want 0", n)
				}
			})
		}
	}
}
