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

// FuzzCallbackHandler sends arbitrary requests to the callback handler,
// each followed by the real callback. The handler must never panic; must
// end the login (hand Wait an outcome) only for a GET on its path, to its
// own Host, with the exact state, and then deliver a code only if the
// request carried that code and no error; must answer a callback with any
// other state with the same page whatever the request carried, and leave
// the one-shot for the real callback; and must never reflect provider text
// unescaped.
func FuzzCallbackHandler(f *testing.F) {
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "error=access_denied&error_description=%3Cscript%3Ealert(1)%3C/script%3E&state="+fuzzState)
	f.Add("POST", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "evil.example:4242", "/api/auth/callback", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback/", "code=abc&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+fuzzState+"&state=x")
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state=x&state="+fuzzState)
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state=")
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "code=abc&state="+strings.ToLower(fuzzState))
	f.Add("GET", "127.0.0.1:4242", "/api/auth/callback", "error=access_denied&error_description=%3Cscript%3E&state=x")
	// The page every callback with another state gets: the one for a
	// callback that carries nothing at all.
	ignored, _ := fuzzServe(newFuzzListener(), http.MethodGet, "127.0.0.1:4242", DefaultPath, "")
	f.Fuzz(func(t *testing.T, method, host, path, rawQuery string) {
		l := newFuzzListener()
		rec, got := fuzzServe(l, method, host, path, rawQuery)
		q, _ := url.ParseQuery(rawQuery)
		callback := method == http.MethodGet && strings.ToLower(host) == "127.0.0.1:4242" && path == DefaultPath
		ownState := q.Get("state") == fuzzState
		switch {
		case got != nil && !(callback && ownState):
			t.Fatalf("%s %s%s?%s ended the login: %q, %v", method, host, path, rawQuery, got.code, got.err)
		case got == nil && callback && ownState:
			t.Fatalf("%s %s%s?%s, the login's own response, did not end it", method, host, path, rawQuery)
		case got != nil && got.err == nil && (got.code == "" || got.code != q.Get("code") || q.Has("error")):
			t.Fatalf("%s %s%s?%s delivered code %q", method, host, path, rawQuery, got.code)
		case callback && !ownState && (rec.Code != http.StatusBadRequest || rec.Body.String() != ignored.Body.String()):
			t.Fatalf("a callback with another state got %d and a page of its own:\n%s", rec.Code, rec.Body.String())
		}

		// The real callback comes next: it ends the login unless the
		// request above already did.
		next, again := fuzzServe(l, http.MethodGet, "127.0.0.1:4242", DefaultPath, "code=real&state="+fuzzState)
		switch {
		case got == nil && (again == nil || again.err != nil || again.code != "real"):
			t.Fatalf("after %s %s%s?%s the real callback did not deliver its code: %+v", method, host, path, rawQuery, again)
		case got != nil && (again != nil || next.Code != http.StatusGone):
			t.Fatalf("after the login ended, another callback got %d and ended it again: %+v", next.Code, again)
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

func newFuzzListener() *Listener {
	return &Listener{
		cfg:          Config{Path: DefaultPath, State: fuzzState},
		expectedHost: []string{"127.0.0.1:4242"},
		result:       make(chan outcome, 1),
	}
}

// fuzzServe sends one request to l's handler and returns the answer and
// the outcome it handed to Wait, if any.
func fuzzServe(l *Listener, method, host, path, rawQuery string) (*httptest.ResponseRecorder, *outcome) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Method, req.Host, req.URL.Path, req.URL.RawQuery = method, host, path, rawQuery
	rec := httptest.NewRecorder()
	l.serveHTTP(rec, req)
	select {
	case o := <-l.result:
		return rec, &o
	default:
		return rec, nil
	}
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
