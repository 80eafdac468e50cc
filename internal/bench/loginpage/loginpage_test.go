package loginpage_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/bench/loginpage"
)

// fakeProvider is a login page as the built-in provider serves it: the
// password form, or, to a browser with a session, a page that continues
// as the session's user. Each code names the user it was issued to.
func fakeProvider(t *testing.T) *httptest.Server {
	t.Helper()
	passwords := map[string]string{"alice": "alice-pw", "bob": "bob-pw"}
	toClient := func(w http.ResponseWriter, r *http.Request, user string) {
		http.Redirect(w, r, "http://127.0.0.1/callback?code=code-of-"+user, http.StatusSeeOther)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/login?authRequestID=ar1", http.StatusFound)
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err == nil {
			_, _ = w.Write([]byte(`<p>You are signed in as <span class="user" id="session-user">` + html.EscapeString(c.Value) + `</span>.</p>
<form method="post" action="/login/continue"><input type="hidden" name="authRequestID" value="ar1"></form>`))
			return
		}
		_, _ = w.Write([]byte(`<form method="post" action="/login"><input type="hidden" name="authRequestID" value="ar1">
<input name="username"><input type="password" name="password"></form>`))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("username")
		if pw, ok := passwords[user]; !ok || pw != r.PostFormValue("password") {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: user, Path: "/"})
		toClient(w, r, user)
	})
	mux.HandleFunc("POST /login/continue", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("session")
		if err != nil {
			http.Error(w, "no session", http.StatusBadRequest)
			return
		}
		toClient(w, r, c.Value)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestLoginContinuesOnlyItsOwnUser: a browser whose session is alice's
// logs in again as alice from the session, refuses to log in as bob (the
// page would give alice's code), and its Fresh browser logs in as bob with
// bob's password, leaving the first browser's session alone.
func TestLoginContinuesOnlyItsOwnUser(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t)
	ctx := context.Background()
	authorize := srv.URL + "/authorize"
	b := loginpage.New(2, 10*time.Second)

	for _, step := range []struct {
		name      string
		browser   *loginpage.Browser
		user, pw  string
		wantCode  string
		wantError bool
	}{
		{name: "password", browser: b, user: "alice", pw: "alice-pw", wantCode: "code-of-alice"},
		{name: "same user from the session", browser: b, user: "alice", pw: "alice-pw", wantCode: "code-of-alice"},
		{name: "another user in the session's browser", browser: b, user: "bob", pw: "bob-pw", wantError: true},
		{name: "another user in a fresh browser", browser: b.Fresh(), user: "bob", pw: "bob-pw", wantCode: "code-of-bob"},
		{name: "the first browser keeps its session", browser: b, user: "alice", pw: "", wantCode: "code-of-alice"},
	} {
		code, err := step.browser.Login(ctx, authorize, step.user, step.pw)
		if step.wantError {
			if err == nil {
				t.Fatalf("%s: Login as %s returned a code, want an error", step.name, step.user)
			}
			continue
		}
		if err != nil || code != step.wantCode {
			t.Fatalf("%s: Login as %s = %q, %v; want %q", step.name, step.user, code, err, step.wantCode)
		}
	}
}
