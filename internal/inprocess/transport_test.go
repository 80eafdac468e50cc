package inprocess_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/inprocess"
)

// roundTripFunc is a fallback transport that records what it was given.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newTransport(t *testing.T, cfg inprocess.Config) *inprocess.Transport {
	t.Helper()
	tr, err := inprocess.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "in-process") }

func TestNewRefusesWhatIsNotAnOrigin(t *testing.T) {
	t.Parallel()
	for _, origin := range []string{
		"", "127.0.0.1:8080", "ftp://example.com", "https://", "https://user@example.com",
		"https://example.com/path", "https://example.com?q", "https://example.com?", "https://example.com#f", "mailto:a@example.com",
	} {
		t.Run(origin, func(t *testing.T) {
			t.Parallel()
			if _, err := inprocess.New(inprocess.Config{Origin: origin, Handler: http.HandlerFunc(ok)}); err == nil {
				t.Fatalf("New accepted origin %q", origin)
			}
		})
	}
	t.Run("no handler", func(t *testing.T) {
		t.Parallel()
		if _, err := inprocess.New(inprocess.Config{Origin: "https://example.com"}); err == nil {
			t.Fatal("New accepted a nil handler")
		}
	})
	t.Run("trailing slash is the origin", func(t *testing.T) {
		t.Parallel()
		if _, err := inprocess.New(inprocess.Config{Origin: "https://example.com/", Handler: http.HandlerFunc(ok)}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHandlesTheOriginExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		origin string
		url    string
		want   bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/.well-known/openid-configuration", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8081/keys", false},
		{"http://127.0.0.1:8080", "https://127.0.0.1:8080/keys", false},
		{"http://127.0.0.1:8080", "http://localhost:8080/keys", false},
		{"http://127.0.0.1:8080", "http://127.0.0.1/keys", false},
		{"http://127.0.0.1:8080", "http://[::1]:8080/keys", false},
		{"https://auth.example.com", "https://auth.example.com/keys", true},
		{"https://auth.example.com", "https://auth.example.com:443/keys", true},
		{"https://auth.example.com", "https://AUTH.example.COM/keys", true},
		{"https://auth.example.com", "HTTPS://auth.example.com/keys", true},
		{"https://auth.example.com:443", "https://auth.example.com/keys", true},
		{"https://auth.example.com", "https://auth.example.com:8443/keys", false},
		{"https://auth.example.com", "http://auth.example.com/keys", false},
		{"https://auth.example.com", "http://auth.example.com:443/keys", false},
		{"https://auth.example.com", "https://auth.example.com.evil.test/keys", false},
		{"https://auth.example.com", "https://evil.test/auth.example.com", false},
		{"https://auth.example.com", "https://sub.auth.example.com/keys", false},
		{"https://auth.example.com", "/keys", false},
		{"http://auth.example.com", "http://auth.example.com:80/keys", true},
	}
	for _, tt := range tests {
		t.Run(tt.origin+" "+tt.url, func(t *testing.T) {
			t.Parallel()
			tr := newTransport(t, inprocess.Config{Origin: tt.origin, Handler: http.HandlerFunc(ok)})
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Handles(u); got != tt.want {
				t.Fatalf("Handles(%s) = %v, want %v", tt.url, got, tt.want)
			}
		})
	}
}

func TestServesTheRequestAsAServerWould(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var gotBody string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	client := &http.Client{Transport: newTransport(t, inprocess.Config{Origin: "https://auth.example.com", Handler: h})}
	req, err := http.NewRequest(http.MethodPost, "https://auth.example.com/oauth/token?x=1&y=%2F", strings.NewReader("grant_type=refresh_token"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Basic Y2xpZW50OnNlY3JldA==")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)

	switch {
	case got == nil:
		t.Fatal("the handler was not called")
	case got.Method != http.MethodPost || got.URL.Path != "/oauth/token" || got.URL.RawQuery != "x=1&y=%2F":
		t.Errorf("handler got %s %s?%s", got.Method, got.URL.Path, got.URL.RawQuery)
	case got.URL.Scheme != "" || got.URL.Host != "":
		t.Errorf("handler got an absolute URL %s, as no server does", got.URL)
	case got.RequestURI != "/oauth/token?x=1&y=%2F":
		t.Errorf("RequestURI = %q", got.RequestURI)
	case got.Host != "auth.example.com":
		t.Errorf("Host = %q", got.Host)
	case got.RemoteAddr != inprocess.RemoteAddr:
		t.Errorf("RemoteAddr = %q", got.RemoteAddr)
	case got.TLS == nil:
		t.Error("an https origin's request has no TLS state")
	case got.Header.Get("Authorization") != "Basic Y2xpZW50OnNlY3JldA==" || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
		t.Errorf("request headers lost: %v", got.Header)
	case strings.Join(got.Header.Values("X-Multi"), ",") != "1,2":
		t.Errorf("repeated header = %q", got.Header.Values("X-Multi"))
	case gotBody != "grant_type=refresh_token":
		t.Errorf("request body = %q", gotBody)
	}
	switch {
	case resp.StatusCode != http.StatusCreated || resp.Status != "201 Created":
		t.Errorf("status = %q", resp.Status)
	case resp.Header.Get("Content-Type") != "application/json":
		t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
	case strings.Join(resp.Header.Values("Set-Cookie"), ";") != "a=1;b=2":
		t.Errorf("Set-Cookie = %q", resp.Header.Values("Set-Cookie"))
	case string(body) != `{"ok":true}` || resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") != "11":
		t.Errorf("body = %q (length %d, header %q)", body, resp.ContentLength, resp.Header.Get("Content-Length"))
	case resp.Request != req:
		t.Error("the response does not point at the request")
	}
}

func TestResponseDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		method      string
		handler     http.HandlerFunc
		status      int
		body        string
		contentType string
	}{
		{"no write at all", http.MethodGet, func(http.ResponseWriter, *http.Request) {}, 200, "", ""},
		{"write without status", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html>") }, 200, "<html>", "text/html; charset=utf-8"},
		{"header after the status is not sent", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusTeapot)
			w.Header().Set("Content-Type", "late/type")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "x")
		}, http.StatusTeapot, "x", ""},
		{"informational status is not the response", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusContinue)
			w.WriteHeader(http.StatusAccepted)
		}, http.StatusAccepted, "", ""},
		{"HEAD has no body", http.MethodHead, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "body") }, 200, "", "text/plain; charset=utf-8"},
		{"no content", http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, 204, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: tt.handler})
			req, _ := http.NewRequest(tt.method, "http://127.0.0.1:1/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || string(body) != tt.body || resp.Header.Get("Content-Type") != tt.contentType {
				t.Fatalf("got %d %q (Content-Type %q), want %d %q (%q)", resp.StatusCode, body, resp.Header.Get("Content-Type"), tt.status, tt.body, tt.contentType)
			}
		})
	}
}

func TestOtherOriginsGoToTheFallback(t *testing.T) {
	t.Parallel()
	var handled, fellBack atomic.Int32
	fallback := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		fellBack.Add(1)
		return &http.Response{StatusCode: http.StatusTeapot, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	})
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { handled.Add(1) })
	client := &http.Client{Transport: newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:8080", Handler: h, Fallback: fallback})}
	for _, u := range []string{"http://127.0.0.1:8081/keys", "https://127.0.0.1:8080/keys", "http://localhost:8080/keys"} {
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Fatalf("%s: status %d, want the fallback's", u, resp.StatusCode)
		}
	}
	if handled.Load() != 0 || fellBack.Load() != 3 {
		t.Fatalf("handler called %d times, fallback %d; want 0 and 3", handled.Load(), fellBack.Load())
	}
}

// closeRecorder records whether a request body was closed.
type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestOtherOriginsAreRefusedWithoutFallback(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:8080", Handler: http.HandlerFunc(ok)})
	body := &closeRecorder{Reader: strings.NewReader("token=x")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/oauth/introspect", body)
	resp, err := tr.RoundTrip(req)
	if !errors.Is(err, inprocess.ErrOtherOrigin) || resp != nil {
		t.Fatalf("RoundTrip = %v, %v; want ErrOtherOrigin", resp, err)
	}
	if !body.closed.Load() {
		t.Error("the refused request's body was not closed")
	}
}

func TestResponseBodyIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 1024
	tests := []struct {
		name    string
		writes  []int
		wantErr bool
	}{
		{"at the bound", []int{limit}, false},
		{"in pieces up to the bound", []int{1000, 24}, false},
		{"one byte over", []int{limit + 1}, true},
		{"over in pieces", []int{1000, 25}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var writeErr error
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for _, n := range tt.writes {
					if _, err := w.Write([]byte(strings.Repeat("a", n))); err != nil {
						writeErr = err
						return
					}
				}
			})
			tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h, MaxResponseBytes: limit})
			req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/keys", nil)
			resp, err := tr.RoundTrip(req)
			if tt.wantErr {
				if !errors.Is(err, inprocess.ErrResponseTooLarge) || !errors.Is(writeErr, inprocess.ErrResponseTooLarge) {
					t.Fatalf("RoundTrip = %v (handler's write: %v); want ErrResponseTooLarge for both", err, writeErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if len(b) != limit {
				t.Fatalf("body is %d bytes, want %d", len(b), limit)
			}
		})
	}
	t.Run("default bound", func(t *testing.T) {
		t.Parallel()
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(make([]byte, inprocess.DefaultMaxResponseBytes+1))
		})
		tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, inprocess.ErrResponseTooLarge) {
			t.Fatalf("RoundTrip = %v, want ErrResponseTooLarge", err)
		}
	})
}

func TestContextEndsTheRequest(t *testing.T) {
	t.Parallel()
	t.Run("canceled while the handler runs", func(t *testing.T) {
		t.Parallel()
		entered, handlerSawCancel := make(chan struct{}), make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
			close(handlerSawCancel)
			_, _ = io.WriteString(w, "too late")
		})
		tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/slow", nil)
		errc := make(chan error, 1)
		go func() {
			resp, err := tr.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-entered
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("RoundTrip = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("RoundTrip did not return after cancellation")
		}
		select {
		case <-handlerSawCancel:
		case <-time.After(10 * time.Second):
			t.Fatal("the handler never saw the cancellation")
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		t.Parallel()
		var called atomic.Bool
		h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called.Store(true) })
		tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("RoundTrip = %v, want context.Canceled", err)
		}
		if called.Load() {
			t.Fatal("the handler ran for a canceled request")
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		t.Parallel()
		h := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		client := &http.Client{Timeout: 50 * time.Millisecond, Transport: newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})}
		start := time.Now()
		_, err := client.Get("http://127.0.0.1:1/")
		var ue *url.Error
		if !errors.As(err, &ue) || !ue.Timeout() {
			t.Fatalf("Get = %v, want a client timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("the timeout took %s", d)
		}
	})
}

func TestRequestBodyIsClosed(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: http.HandlerFunc(ok)})
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !body.closed.Load() {
		t.Fatal("the request body was not closed")
	}
}

func TestHandlerPanicFailsTheRequestOnly(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })
	tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("RoundTrip = %v, want an error for the panic", err)
	}
}

func TestInvalidStatusFailsTheRequest(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(42) })
	tr := newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip accepted status 42")
	}
}

// TestConcurrentRequests runs many requests at once (for the race
// detector): each gets its own response.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Query().Get("n")) })
	client := &http.Client{Transport: newTransport(t, inprocess.Config{Origin: "http://127.0.0.1:1", Handler: h})}
	errc := make(chan error, 64)
	for i := range 64 {
		go func() {
			n := strings.Repeat("x", i)
			resp, err := client.Get("http://127.0.0.1:1/?n=" + n)
			if err != nil {
				errc <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != n {
				err = errors.New("got another request's response")
			}
			errc <- err
		}()
	}
	for range 64 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
