package cli_test

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// defaultIssuer is the issuer of a built-in provider started with no
// issuer on serverURL, an http://127.0.0.1:PORT the test harness listens
// on: http://localhost:PORT.
func defaultIssuer(serverURL string) string {
	return strings.Replace(serverURL, "://127.0.0.1:", "://localhost:", 1)
}

// TestServeDefaultIssuer: `nsauth serve` with no issuer set, on loopback,
// is http://localhost:PORT, a host name browsers accept as a passkey's
// relying party, so the login page offers passkeys; the CLI's login with
// its loopback redirect URI (http://127.0.0.1:…) still completes against
// it. Whenever the issuer is loopback, the start banner and the log say
// that the device login's URL opens on this machine only, and name the
// setting that changes it; an issuer other devices reach gets no such note.
func TestServeDefaultIssuer(t *testing.T) {
	t.Parallel()
	const (
		banner       = "opens on this machine only, so nsauth login --device\n          needs a browser here. To log in from other devices, set NSAUTH_ISSUER (--issuer)\n"
		logLine      = "set NSAUTH_ISSUER (--issuer) to a URL other devices reach"
		noPasskeys   = `"msg":"passkeys are unavailable"`
		passkeyOffer = "Sign in with a passkey"
	)
	for _, tc := range []struct {
		name string
		args []string
		// issuer is the issuer wanted, PORT standing for the listen port.
		issuer string
		// passkeys says whether passkeys are offered; local, whether the
		// device URL is said to open on this machine only.
		passkeys, local bool
		// login runs a CLI login through the login page, which must be
		// reachable at the issuer.
		login bool
	}{
		{name: "no settings", issuer: "http://localhost:PORT", passkeys: true, local: true, login: true},
		{name: "every interface, issuer given", args: []string{"--listen", "0.0.0.0:0", "--issuer", "https://auth.example.com"},
			issuer: "https://auth.example.com", passkeys: true},
		{name: "IPv6 loopback keeps its address", args: []string{"--listen", "[::1]:0"}, issuer: "http://[::1]:PORT", local: true, login: true},
		{name: "an IP address given", args: []string{"--issuer", "http://127.0.0.1:9"}, issuer: "http://127.0.0.1:9", local: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"NSAUTH_ADMIN_PASSWORD": biAdminPassword, "NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
			s := startBuiltinServe(t, env, nil, tc.args...)
			u, err := url.Parse(s.url)
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll(tc.issuer, "PORT", u.Port())
			if s.issuer != want {
				t.Fatalf("banner issuer %q, want %q", s.issuer, want)
			}
			logs := s.errOut.String()
			if got := strings.Contains(logs, "  device: "+want+"/device "+banner); got != tc.local {
				t.Errorf("banner says the device URL is loopback: %v, want %v:\n%s", got, tc.local, logs)
			}
			if got := strings.Contains(logs, logLine) && strings.Contains(logs, `"device_url":"`+want+`/device"`); got != tc.local {
				t.Errorf("log says the device URL is loopback: %v, want %v:\n%s", got, tc.local, logs)
			}
			if got := !strings.Contains(logs, noPasskeys); got != tc.passkeys {
				t.Errorf("passkeys available: %v, want %v:\n%s", got, tc.passkeys, logs)
			}
			if !tc.login {
				return
			}
			s.waitReady(t)
			authURL := s.authorize(t, oauth2.GenerateVerifier())
			if !strings.HasPrefix(authURL, want+"/authorize?") {
				t.Fatalf("authorize URL %q is not under the issuer %s", authURL, want)
			}
			page := issuertest.NewBrowser(t).Open(t, authURL)
			if got := strings.Contains(page.Body, passkeyOffer); got != tc.passkeys {
				t.Errorf("login page offers passkeys: %v, want %v:\n%s", got, tc.passkeys, page.Body)
			}
			tok := s.login(t) // redirected to http://127.0.0.1:4242/api/auth/callback
			check, err := s.checkToken(tok.GetAccessToken())
			if err != nil {
				t.Fatalf("CheckToken: %v", err)
			}
			if check.GetIssuer() != want {
				t.Errorf("token issuer %q, want %q", check.GetIssuer(), want)
			}
		})
	}
}

// TestServeDefaultIssuerChanged: data last served under the issuer earlier
// versions derived (http://127.0.0.1:PORT) starts under the new default with
// a warning that says what changed, what it means for tokens, and the setting
// that keeps the old issuer; an issuer changed by hand gets the general
// warning instead.
func TestServeDefaultIssuerChanged(t *testing.T) {
	t.Parallel()
	const (
		changed = `"msg":"the default issuer changed from previous_issuer to issuer, so that browsers offer passkeys`
		keep    = `set NSAUTH_ISSUER (--issuer) to previous_issuer`
		general = `"msg":"this data was last served under another issuer URL`
	)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(listen)
	env := map[string]string{"NSAUTH_ADMIN_PASSWORD": biAdminPassword, "NSAUTH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	for _, step := range []struct {
		name    string
		args    []string
		want    []string
		wantNot []string
	}{
		{"first start, under the former default", []string{"--issuer", "http://127.0.0.1:" + port}, nil, []string{changed, general}},
		{"the new default", nil, []string{changed, keep, `"previous_issuer":"http://127.0.0.1:` + port + `"`, `"issuer":"http://localhost:` + port + `"`}, []string{general}},
		{"the former one again, by hand", []string{"--issuer", "http://127.0.0.1:" + port}, []string{general}, []string{changed}},
	} {
		s := startBuiltinServe(t, env, nil, append([]string{"--listen", listen}, step.args...)...)
		if s.srv.Stop(t) != 0 {
			t.Fatalf("%s: the server did not stop cleanly:\n%s", step.name, s.errOut.String())
		}
		logs := s.errOut.String()
		for _, w := range step.want {
			if !strings.Contains(logs, w) {
				t.Errorf("%s: the log lacks %q:\n%s", step.name, w, logs)
			}
		}
		for _, w := range step.wantNot {
			if strings.Contains(logs, w) {
				t.Errorf("%s: the log has %q:\n%s", step.name, w, logs)
			}
		}
	}
}
