package loopback

import (
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

const fuzzState = "Zm9vYmFyYmF6cXV4cXV1eA"

// FuzzCallbackHandler sends arbitrary requests to the callback handler: it
// must never panic, must deliver a code only for a GET on its path, to its
// own Host, with the exact state, and must never reflect provider text
// unescaped.
func FuzzCallbackHandler(f *testing.F) {
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E&state="+fuzzState)
	f.Add("POST", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "evil.example:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback/", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState+"&state=x")
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state=")
	f.Fuzz(func(t *testing.T, method, host, path, rawQuery string) {
		l := &Listener{
			cfg:          Config{Path: DefaultPath, State: fuzzState},
			expectedHost: []string{"127.0.0.1:4242"},
			result:       make(chan outcome, 1),
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.Host, req.URL.Path, req.URL.RawQuery = method, host, path, rawQuery
		rec := httptest.NewRecorder()
		l.serveHTTP(rec, req)
		var got *outcome
		select {
		case o := <-l.result:
			got = &o
		default:
		}
		q, _ := url.ParseQuery(rawQuery)
		if got != nil && got.err == nil {
			if method != http.MethodGet || strings.ToLower(host) != "127.0.0.1:4242" || path != DefaultPath || q.Get("state") != fuzzState || got.code == "" {
				t.Fatalf("delivered a code for %s %s%s?%s", method, host, path, rawQuery)
			}
		}
		// When the provider's text is shown, it is shown escaped (as
		// html/template escapes text: "+" too).
		var pe *ProviderError
		d := q.Get("error_description")
		if got != nil && errors.As(got.err, &pe) && strings.ContainsAny(d, "<>&\"'") &&
			len(d) <= maxDescription && utf8.ValidString(d) && !strings.ContainsRune(d, 0) {
			escaped := strings.ReplaceAll(template.HTMLEscapeString(d), "+", "&#43;")
			if !strings.Contains(rec.Body.String(), escaped) {
				t.Fatalf("provider text %q not shown escaped:\n%s", d, rec.Body.String())
			}
		}
		if rec.Header().Get("Content-Security-Policy") == "" {
			t.Fatal("a page went out without its Content-Security-Policy")
		}
	})
}

// FuzzParsePasted: a pasted URL yields a code only with the exact state on
// the callback path.
func FuzzParsePasted(f *testing.F) {
	redirect := "http://127.0.0.1:4242/api/auth/callback"
	f.Add(redirect + "?code=abc&state=" + fuzzState)
	f.Add(redirect + "?error=access_denied&state=" + fuzzState)
	f.Add("http://127.0.0.1:4242/other?code=abc&state=" + fuzzState)
	f.Add("not a url")
	f.Fuzz(func(t *testing.T, pasted string) {
		code, err := ParsePasted(pasted, redirect, fuzzState)
		if err != nil {
			return
		}
		u, perr := url.Parse(pasted)
		if perr != nil || u.Path != "/api/auth/callback" || u.Query().Get("state") != fuzzState || code == "" {
			t.Fatalf("ParsePasted(%q) = %q, nil", pasted, code)
		}
	})
}
