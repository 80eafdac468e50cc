//go:build interop

package interop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/pkg/tokenstore"
)

// newConnectorChecks is a checklist whose tally reads
// "connector checks: N passed of M (upstream, backend)"; like the RP
// checks, every failed check fails the test.
func newConnectorChecks(t *testing.T, label string) *checklist {
	t.Helper()
	c := &checklist{library: label}
	t.Cleanup(func() { t.Log(strings.Replace(c.Tally(), "RP checks:", "connector checks:", 1)) })
	return c
}

// connectorBrowser plays the user in headless Chromium through nsauth's
// pages and an upstream's.
type connectorBrowser struct {
	c *issuertest.Chromium
	d *connectorDeployment
	// upstreamUser and upstreamPassword fill an upstream's own login page
	// (zitadel's example), when it shows one.
	upstreamUser, upstreamPassword string
}

// pageState is where the browser stopped: Kind is "done" (at the URL
// awaited), "connector" (nsauth's login page again, after pressing the
// button), "device-code", "approve", "totp", "offer", "message", "page"
// (another page of nsauth's), "other" (elsewhere: an upstream's page) or
// "timeout"; Text is the page's text.
type pageState struct {
	Kind, Loc, Text string
	// Error is the login page's error (#login-error).
	Error string
}

func (s pageState) String() string {
	return fmt.Sprintf("%s at %s:\n%s", s.Kind, redactQuery(s.Loc), tail(s.Text, 15))
}

// redactQuery drops a URL's query, which may hold a code or a state.
func redactQuery(u string) string {
	before, _, _ := strings.Cut(u, "?")
	return before
}

// stateJS classifies the page the browser shows.
func (b *connectorBrowser) stateJS(display, done string) string {
	q := func(s string) string { j, _ := json.Marshal(s); return string(j) }
	return `(() => {
	if (document.readyState !== "complete") return "loading";
	// nsauth's way to an upstream and its bounce of the upstream's
	// cross-site redirect back: pages that move on by themselves.
	if (document.querySelector('meta[http-equiv="refresh"]')) return "loading";
	const here = location.href;
	if (here.startsWith(` + q(done) + `)) return "done";
	if (here.startsWith(` + q(b.d.Issuer+"/") + `)) {
		if ([...document.querySelectorAll("button")].some(e => e.textContent.includes(` + q("Continue with "+display) + `))) return "connector";
		if (document.querySelector("#user_code")) return "device-code";
		if (document.querySelector("#approve")) return "approve";
		if (document.querySelector("#code")) return "totp";
		if (document.querySelector("#passkey-skip")) return "offer";
		if (document.querySelector("#message")) return "message";
		return "page";
	}
	if (document.querySelector("#username") && document.querySelector("#password")) return "upstream-login";
	return "other";
})()`
}

// signIn opens u (or, when u is empty, goes on from the page shown) and
// plays the user: "Continue with display" on nsauth's login page, the
// device code's "Continue", the upstream's login page; it returns where
// the browser stopped (done: at a URL under done).
func (b *connectorBrowser) signIn(t *testing.T, u, display, done string) pageState {
	t.Helper()
	ctx := b.c.Ctx
	if u != "" {
		if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
			t.Logf("navigating: %v", err)
		}
	}
	js := b.stateJS(display, done)
	pressed, codes, upstreamLogins := 0, 0, 0
	var st pageState
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		kind, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil || kind == "loading" {
			continue
		}
		st = b.read(kind)
		switch kind {
		case "connector":
			if pressed > 0 {
				return st // the login page again: an error, or the button did nothing
			}
			pressed++
			_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
				const e = [...document.querySelectorAll("button")].find(e => e.textContent.includes(`+jsString("Continue with "+display)+`));
				if (!e) return false; e.click(); return true; })()`))
		case "device-code":
			if codes > 0 {
				return st
			}
			codes++
			_ = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("form button[type=submit]")))
		case "upstream-login":
			if upstreamLogins > 0 || b.upstreamUser == "" {
				return pageState{Kind: "other", Loc: st.Loc, Text: st.Text}
			}
			upstreamLogins++
			_ = chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS("#username"), b.upstreamUser),
				chromedp.SendKeys(chromedp.CSS("#password"), b.upstreamPassword),
				chromedp.Click(chromedp.CSS("button[type=submit]")))
		case "other":
			// An upstream's page on the way, or one where it stopped.
		default:
			return st
		}
	}
	if st.Kind == "" || st.Kind == "other" {
		st.Kind = "timeout"
	}
	return st
}

func (b *connectorBrowser) read(kind string) pageState {
	loc, _ := chromedp.Run(b.c.Ctx, chromedp.Location())
	text, _ := chromedp.Run(b.c.Ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	loginErr, _ := chromedp.Run(b.c.Ctx, chromedp.Evaluate[string](`(document.querySelector("#login-error") || {}).innerText || ""`))
	return pageState{Kind: kind, Loc: loc, Text: text, Error: loginErr}
}

// waitKind waits for the page shown to be of kind.
func (b *connectorBrowser) waitKind(t *testing.T, display, done, kind string) pageState {
	t.Helper()
	js := b.stateJS(display, done)
	var st pageState
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		k, err := chromedp.Run(b.c.Ctx, chromedp.Evaluate[string](js))
		if err != nil || k == "loading" {
			continue
		}
		st = b.read(k)
		if k == kind {
			return st
		}
	}
	return st
}

// forget clears the browser's cookies: the next sign-in starts without an
// nsauth session.
func (b *connectorBrowser) forget(t *testing.T) {
	t.Helper()
	b.c.Do(t, "clearing the browser's cookies", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	}))
}

func jsString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}

// cliLogin runs `nsauth login` (the built server binary as the terminal
// client) and signs in through the connector in the browser; it returns
// the tokens the command stored, or false when it did not log in.
func (b *connectorBrowser) cliLogin(t *testing.T, l *checklist, display string) (tokenstore.Entry, string, bool) {
	t.Helper()
	ctx := context.Background()
	configDir := t.TempDir()
	errOut := &lockedBuffer{}
	done := make(chan cliResult, 1)
	go func() {
		done <- runServerBinary(ctx, b.d.deployment, configDir, errOut, "login", "--no-browser", "--timeout", "2m")
	}()
	authURL := waitLoginURL(t, errOut, done)
	au, _ := url.Parse(authURL)
	st := b.signIn(t, authURL, display, au.Query().Get("redirect_uri"))
	l.Check(t, "nsauth login: Continue with "+display+" comes back to the terminal's callback", st.Kind == "done", "%s", st)
	var r cliResult
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		l.Check(t, "nsauth login finishes", false, "it did not finish:\n%s", errOut.String())
		return tokenstore.Entry{}, configDir, false
	}
	if !l.Check(t, "nsauth login finishes", r.code == 0, "exit %d\n%s", r.code, tail(r.errOut, 10)) {
		return tokenstore.Entry{}, configDir, false
	}
	store, err := tokenstore.New(tokenstore.Config{Dir: configDir})
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := tokenstore.NormalizeAPIURL(b.d.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := store.Load(apiURL)
	if !l.Check(t, "nsauth login stored its tokens", err == nil && entry.IDToken != "" && entry.RefreshToken != "", "%v", err) {
		return tokenstore.Entry{}, configDir, false
	}
	return *entry, configDir, true
}

// appSignIn is an authorization of app (confidential, redirect URI cb)
// with PKCE and prompt=login, through the connector; it returns where the
// browser stopped and the code exchange's ID token claims when it reached
// the app.
type appSignIn struct {
	State  pageState
	Claims map[string]any
	Tokens *oauth2.Token
}

func (b *connectorBrowser) appSignIn(t *testing.T, l *checklist, what string, app appCredentials, cb *appCallback, scope, display string) appSignIn {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	state := randomHex(8)
	params := url.Values{
		"client_id": {app.ClientID}, "response_type": {"code"}, "scope": {scope}, "redirect_uri": {cb.URL},
		"state": {state}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"}, "prompt": {"login"},
	}
	res := appSignIn{State: b.signIn(t, b.d.authorizeURL(t, params), display, cb.URL)}
	if res.State.Kind != "done" {
		return res
	}
	return b.redeem(t, l, what, app, cb, state, verifier, res)
}

// finish goes on from the page shown to the app (after a second factor or
// a passkey offer) and redeems the code.
func (b *connectorBrowser) redeem(t *testing.T, l *checklist, what string, app appCredentials, cb *appCallback, state, verifier string, res appSignIn) appSignIn {
	t.Helper()
	q := cb.wait(t)
	if !l.Check(t, what+": the app gets a code and its state", q.Get("code") != "" && q.Get("state") == state, "%v", redactCode(q)) {
		return res
	}
	var disc struct {
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	getJSONOrFail(t, b.d.Issuer+"/.well-known/openid-configuration", &disc)
	cfg := &oauth2.Config{ClientID: app.ClientID, ClientSecret: app.ClientSecret, RedirectURL: cb.URL,
		Endpoint: oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint}}
	tok, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if !l.Check(t, what+": the app exchanges the code", err == nil, "%v", err) {
		return res
	}
	res.Tokens = tok
	idToken, _ := tok.Extra("id_token").(string)
	res.Claims, _ = payload(idToken)
	return res
}

// claimStrings is a claim holding a list of strings.
func claimStrings(claims map[string]any, name string) []string {
	var out []string
	list, _ := claims[name].([]any)
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// enrolTOTP runs `nsauth users totp enroll USERNAME`, answering its
// question with the code of the previous 30-second step (so that a login
// right after may use the current one), and returns the secret.
func (cd *connectorDeployment) enrolTOTP(t *testing.T, username string) (string, error) {
	t.Helper()
	cmd := exec.Command(cd.bin, "users", "totp", "enroll", username)
	cmd.Env = cd.env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	errOut := &lockedBuffer{}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(stdout)
	var secret string
	for sc.Scan() {
		if strings.Contains(sc.Text(), "type this key into the app") && sc.Scan() {
			secret = strings.TrimSpace(sc.Text())
			break
		}
	}
	if secret != "" {
		code, _ := totpCode(secret, time.Now().Add(-30*time.Second))
		_, _ = io.WriteString(stdin, code+"\n")
	}
	_ = stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil || secret == "" {
		return "", fmt.Errorf("nsauth users totp enroll %s: %v (key printed: %v)\n%s", username, err, secret != "", tail(errOut.String(), 10))
	}
	return secret, nil
}

func totpCode(secret string, at time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}
