package cli_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

var completeURLPattern = regexp.MustCompile(`(?m)^    (https?://\S+)$`)

// TestBuiltinDeviceLogin is docs/cli.md's device session against `nsauth
// serve` with its built-in provider: the user opens the URL the terminal
// shows, enters the code, signs in as the administrator and approves; the
// terminal's next poll brings the tokens.
func TestBuiltinDeviceLogin(t *testing.T) {
	t.Parallel()
	e := newBuiltinEnv(t)
	clk := &deviceClock{now: time.Now()}
	errOut := &syncBuffer{}
	clk.onWait = func(n int) bool {
		if n != 1 {
			return true
		}
		m := completeURLPattern.FindStringSubmatch(errOut.String())
		code := userCodePattern.FindStringSubmatch(errOut.String())
		if m == nil || code == nil {
			t.Errorf("no URL or code shown:\n%s", errOut.String())
			return true
		}
		b := issuertest.NewBrowser(t)
		entry := b.Open(t, m[1])
		if entry.Response.StatusCode != http.StatusOK || entry.Form.Get("csrf") == "" {
			t.Fatalf("code entry page: HTTP %d\n%s", entry.Response.StatusCode, entry.Body)
		}
		post := func(path string, form url.Values) *issuertest.Page {
			u, _ := entry.URL.Parse(path)
			req, _ := http.NewRequest(http.MethodPost, u.String(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return b.Do(t, req)
		}
		login := post("/device", url.Values{"csrf": {entry.Form.Get("csrf")}, "user_code": {code[1]}})
		approval := b.Submit(t, login, "admin", adminPassword)
		if approval.Form.Get("ticket") == "" {
			t.Fatalf("no approval page after signing in: HTTP %d\n%s", approval.Response.StatusCode, approval.Body)
		}
		res := post("/device/decision", url.Values{"ticket": {approval.Form.Get("ticket")}, "csrf": {approval.Form.Get("csrf")}, "decision": {"approve"}})
		if res.Response.StatusCode != http.StatusOK {
			t.Fatalf("approving: HTTP %d\n%s", res.Response.StatusCode, res.Body)
		}
		return true
	}
	r := runDevice(context.Background(), e, clk, errOut)
	t.Logf("stderr:\n%s", r.errOut)
	if r.code != 0 {
		t.Fatalf("login --device: exit %d\n%s", r.code, r.errOut)
	}
	mustContain(t, "stderr", r.errOut, "and check that it shows the code ", "Logged in as Administrator until ")
	ent := e.entry()
	if _, err := e.checkToken(ent.AccessToken); err != nil {
		t.Errorf("CheckToken refuses the device login's token: %v", err)
	}
}
