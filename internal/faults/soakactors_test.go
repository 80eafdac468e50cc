//go:build soak

package faults_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
)

// soakEndpoint is a replica as the soak's clients see it: the AuthService
// over Connect (HTTP/1.1) and over gRPC (HTTP/2 without TLS), the
// AdminService, and its address for the browser.
type soakEndpoint struct {
	r     *replica
	api   *endpoint // Connect
	grpc  *endpoint // gRPC on HTTP/2
	admin adminv1connect.AdminServiceClient
	web   *http.Client // plain HTTP, no redirects followed
}

// callLog collects every call's latency and outcome, by RPC, for the
// summary's p99 during and between faults and its table of outcomes.
type callLog struct {
	mu    sync.Mutex
	calls []callRecord
}

type callRecord struct {
	rpc   string
	start time.Time
	took  time.Duration
	o     outcome
}

func (l *callLog) add(rpc string, start time.Time, took time.Duration, o outcome) {
	l.mu.Lock()
	l.calls = append(l.calls, callRecord{rpc, start, took, o})
	l.mu.Unlock()
}

// timed runs f, logs it as rpc and returns its outcome.
func (l *callLog) timed(rpc string, ep *replica, f func() error) (outcome, error) {
	epoch := ep.epoch.Load()
	start := time.Now()
	err := f()
	o := classify(ep, epoch, err)
	l.add(rpc, start, time.Since(start), o)
	return o, err
}

// httpStatusError is a server error (5xx) a page or the token endpoint
// answered: HTTP 503 is its Unavailable.
type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d", e.status) }

// classify names a call's outcome as session.record does.
func classify(r *replica, epoch int64, err error) outcome {
	var he *httpStatusError
	switch {
	case err == nil:
		return outcomeOK
	case errors.As(err, &he) && he.status == http.StatusServiceUnavailable:
		return outcome(connect.CodeUnavailable.String())
	case errors.As(err, &he):
		return outcome(he.Error())
	case connect.IsWireError(err):
		return outcome(connect.CodeOf(err).String())
	case r.down.Load() || r.epoch.Load() != epoch:
		return outcomeTransportDown
	default:
		return outcomeTransportUp
	}
}

// tolerated is an outcome a call may have under faults: an answer of
// Unavailable, or a transport error from a replica that was down.
func tolerated(o outcome) bool {
	return o == outcomeOK || o == outcomeTransportDown || o == outcome(connect.CodeUnavailable.String()) ||
		o == outcome(connect.CodeDeadlineExceeded.String())
}

// serverFault is an outcome no call may have, during faults or between:
// the server saying it failed (Internal, HTTP 500) when its database was
// only unreachable, which is Unavailable or HTTP 503 (issue 26).
func serverFault(o outcome) bool {
	return o == outcome(connect.CodeInternal.String()) || (strings.HasPrefix(string(o), "HTTP 5") && o != "HTTP 503")
}

// actorStats are one kind of traffic's results.
type actorStats struct {
	mu         sync.Mutex
	attempts   int
	completed  int
	failed     map[string]int // why attempts failed, by step and outcome
	perUser    map[string]int // completed, by username or client id
	violations []string
}

func newActorStats() *actorStats {
	return &actorStats{failed: map[string]int{}, perUser: map[string]int{}}
}

func (a *actorStats) done(who string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.attempts++
	if err == nil {
		a.completed++
		a.perUser[who]++
		return
	}
	var se *stepError
	if errors.As(err, &se) {
		a.failed[se.step+" "+string(se.o)]++
		switch {
		case serverFault(se.o):
			when := "between faults"
			if se.duringFault {
				when = "during a fault"
			}
			a.violations = append(a.violations, when+": "+err.Error())
		case !tolerated(se.o) && !se.duringFault:
			a.violations = append(a.violations, "between faults: "+err.Error())
		}
		return
	}
	a.failed[err.Error()]++
}

// stepError is a step of a login or command that failed, with the
// outcome of its call; duringFault says a fault was under way or had just
// ended (the step may meet its aftermath: a page whose flow the killed
// replica's restart or the clock's jump made stale).
type stepError struct {
	step        string
	o           outcome
	err         error
	duringFault bool
}

func (e *stepError) Error() string {
	return fmt.Sprintf("%s: %s (%v)", e.step, e.o, e.err)
}

// faultWindows knows when faults were under way, for telling the calls
// made during faults from those between.
type faultWindows struct {
	mu      sync.Mutex
	windows [][2]time.Time
	open    time.Time
}

// settle is how long after a fault ends its calls still count as during
// the fault: clients retrying, pools reconnecting.
const settle = time.Second

func (f *faultWindows) begin() {
	f.mu.Lock()
	f.open = time.Now()
	f.mu.Unlock()
}

func (f *faultWindows) end() {
	f.mu.Lock()
	f.windows = append(f.windows, [2]time.Time{f.open, time.Now().Add(settle)})
	f.open = time.Time{}
	f.mu.Unlock()
}

// during reports whether a call from start to end overlapped a fault
// (with its settling time), or one still open.
func (f *faultWindows) during(start, end time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open.IsZero() && end.After(f.open) {
		return true
	}
	for _, w := range f.windows {
		if end.After(w[0]) && start.Before(w[1]) {
			return true
		}
	}
	return false
}

// recent reports whether a fault is under way or ended within settle.
func (f *faultWindows) recent() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open.IsZero() {
		return true
	}
	return len(f.windows) > 0 && time.Now().Before(f.windows[len(f.windows)-1][1].Add(10*time.Second))
}

// soakClockFile is the replicas' clock: the offset they run ahead of the
// machine, in the file NSAUTH_SOAK_CLOCK_FILE names.
type soakClockFile struct {
	path   string
	mu     sync.Mutex
	offset time.Duration
	// jumps is incremented before the file is written and again once the
	// replicas have read it: a token asked for before the second
	// increment may have been issued on the old clock.
	jumps atomic.Int64
}

func (c *soakClockFile) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *soakClockFile) write(d time.Duration) error {
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(d.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// jump moves the replicas' clock forward by d.
func (c *soakClockFile) jump(d time.Duration) error {
	c.jumps.Add(1)
	c.mu.Lock()
	c.offset += d
	off := c.offset
	c.mu.Unlock()
	err := c.write(off)
	// The replicas read the file every 50 ms; on a loaded machine a
	// poll may come late, and a token asked for meanwhile may be issued
	// on the old clock.
	time.Sleep(time.Second)
	c.jumps.Add(1)
	return err
}

// browser is a cookie-keeping HTTP client whose every request goes to one
// replica, whatever host the provider's pages and redirects name (the
// replicas' shared issuer address is not reachable). Unlike issuertest's,
// its failures are errors: under faults they are expected.
type browser struct {
	client *http.Client
	addr   string
	faults *faultWindows
	log    *callLog
	r      *replica
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

type page struct {
	status   int
	body     string
	form     url.Values
	location string
}

func newBrowser(r *replica, faults *faultWindows, log *callLog) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{addr: r.addr, faults: faults, log: log, r: r}
	b.client = &http.Client{
		Jar:     jar,
		Timeout: callTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Path != "/login" {
				return http.ErrUseLastResponse
			}
			req.URL.Host, req.Host = b.addr, b.addr
			return nil
		},
	}
	return b
}

// do sends a GET (form nil) or a form POST to target, rewritten to the
// browser's replica, as the step named step.
func (b *browser) do(step, target string, form url.Values) (*page, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = "http", b.addr
	method, body := http.MethodGet, io.Reader(nil)
	if form != nil {
		method, body = http.MethodPost, strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	var p *page
	o, err := b.log.timed("page "+step, b.r, func() error {
		resp, err := b.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		p = &page{status: resp.StatusCode, body: string(raw), form: url.Values{}, location: resp.Header.Get("Location")}
		for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
			p.form.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		if resp.StatusCode >= 500 {
			return &httpStatusError{status: resp.StatusCode}
		}
		return nil
	})
	if err != nil {
		return nil, &stepError{step: step, o: o, err: err, duringFault: b.faults.recent()}
	}
	return p, nil
}

// post posts p's hidden fields with fields added to path.
func (b *browser) post(step, path string, p *page, fields url.Values) (*page, error) {
	form := url.Values{}
	for k, v := range p.form {
		form[k] = v
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.do(step, path, form)
}

// unexpected is a step whose page was not the one the flow leads to.
func (b *browser) unexpected(step string, p *page) error {
	body := p.body
	if len(body) > 300 {
		body = body[:300]
	}
	return &stepError{step: step, o: outcome(fmt.Sprintf("HTTP %d", p.status)), err: fmt.Errorf("unexpected page: %q", body), duringFault: b.faults.recent()}
}

// totpCode is RFC 6238's code of secret at step (30 s steps, 6 digits).
func totpCode(secret string, step int64) (string, error) {
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return "", err
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0xf
	return fmt.Sprintf("%06d", (binary.BigEndian.Uint32(sum[off:off+4])&0x7fffffff)%1000000), nil
}

// person is an account with a password and TOTP, which logs in through
// the login page. lastStep is the last TOTP time step it used: a code is
// good once.
type person struct {
	name, password, secret string
	lastStep               int64
}

// soakTraffic is everything the actors share.
type soakTraffic struct {
	endpoints []*soakEndpoint
	faults    *faultWindows
	clock     *soakClockFile
	log       *callLog
}

// authorize asks ep for an authorize URL with PKCE.
func (tr *soakTraffic) authorize(ctx context.Context, ep *soakEndpoint, verifier string) (string, error) {
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	var u string
	o, err := tr.log.timed("GetAuthorizeUrl", ep.r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		resp, err := ep.api.api.GetAuthorizeUrl(cctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
			State: "soak", RedirectUri: redirectURI, Scope: "openid offline_access",
			CodeChallenge: &challenge, CodeChallengeMethod: &method,
		}))
		if err == nil {
			u = resp.Msg.GetUrl()
		}
		return err
	})
	if err != nil {
		return "", &stepError{step: "GetAuthorizeUrl", o: o, err: err, duringFault: tr.faults.recent()}
	}
	return u, nil
}

// exchange is LoginCli of a code.
func (tr *soakTraffic) exchange(ctx context.Context, ep *soakEndpoint, code, verifier string) (*mgmtv1alpha1.AccessToken, error) {
	var tok *mgmtv1alpha1.AccessToken
	o, err := tr.log.timed("LoginCli", ep.r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		resp, err := ep.api.api.LoginCli(cctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: &verifier}))
		if err == nil {
			tok = resp.Msg.GetAccessToken()
		}
		return err
	})
	if err != nil {
		return nil, &stepError{step: "LoginCli", o: o, err: err, duringFault: tr.faults.recent()}
	}
	return tok, nil
}

// checkToken is CheckToken of token on ep, over Connect or gRPC.
func (tr *soakTraffic) checkToken(ctx context.Context, ep *soakEndpoint, grpc bool, token string) (outcome, error) {
	api, rpc := ep.api, "CheckToken"
	if grpc {
		api, rpc = ep.grpc, "CheckToken (gRPC)"
	}
	return tr.checkTokenAs(ctx, ep.r, api, rpc, token)
}

// checkTokenAs is CheckToken through api, logged as rpc.
func (tr *soakTraffic) checkTokenAs(ctx context.Context, r *replica, api *endpoint, rpc, token string) (outcome, error) {
	return tr.log.timed(rpc, r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		req := connect.NewRequest(&mgmtv1alpha1.CheckTokenRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		_, err := api.api.CheckToken(cctx, req)
		return err
	})
}

// personLogin is one login of p through ep's login page: password, then
// the TOTP code of a time step p has not used, then LoginCli and a
// CheckToken of the access token.
func (tr *soakTraffic) personLogin(ctx context.Context, ep *soakEndpoint, p *person) error {
	verifier := oauth2.GenerateVerifier()
	authz, err := tr.authorize(ctx, ep, verifier)
	if err != nil {
		return err
	}
	b := newBrowser(ep.r, tr.faults, tr.log)
	form, err := b.do("authorize", authz, nil)
	if err != nil {
		return err
	}
	if form.status != http.StatusOK || form.form.Get("authRequestID") == "" {
		return b.unexpected("authorize", form)
	}
	mfa, err := b.post("login", "/login", form, url.Values{"username": {p.name}, "password": {p.password}})
	if err != nil {
		return err
	}
	if mfa.status != http.StatusOK || !strings.Contains(mfa.body, `name="method" value="totp"`) {
		return b.unexpected("login", mfa)
	}
	// A code of a step after the last one used, on the replicas' clock.
	for {
		step := tr.clock.now().Unix() / 30
		if step > p.lastStep {
			p.lastStep = step
			break
		}
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	code, err := totpCode(p.secret, p.lastStep)
	if err != nil {
		return err
	}
	res, err := b.post("second factor", "/login/mfa", mfa, url.Values{"method": {"totp"}, "code": {code}})
	if err != nil {
		return err
	}
	if res.status == http.StatusOK && strings.Contains(res.body, `action="/login/passkey/skip"`) {
		if res, err = b.post("passkey offer", "/login/passkey/skip", res, nil); err != nil {
			return err
		}
	}
	loc, err := url.Parse(res.location)
	if (res.status != http.StatusSeeOther && res.status != http.StatusFound) || err != nil || loc.Query().Get("code") == "" {
		return b.unexpected("second factor", res)
	}
	tok, err := tr.exchange(ctx, ep, loc.Query().Get("code"), verifier)
	if err != nil {
		return err
	}
	if o, err := tr.checkToken(ctx, ep, false, tok.GetAccessToken()); err != nil {
		return &stepError{step: "CheckToken after login", o: o, err: err, duringFault: tr.faults.recent()}
	}
	return nil
}

// deviceLogin is one device login of user on ep: StartDeviceLogin, the
// code entered in a browser, the password, the approval, and polls until
// the tokens come.
func (tr *soakTraffic) deviceLogin(ctx context.Context, ep *soakEndpoint, user, password string) error {
	scope := "openid offline_access"
	var start *mgmtv1alpha1.StartDeviceLoginResponse
	o, err := tr.log.timed("StartDeviceLogin", ep.r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		resp, err := ep.api.api.StartDeviceLogin(cctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: &scope}))
		if err == nil {
			start = resp.Msg
		}
		return err
	})
	if err != nil {
		return &stepError{step: "StartDeviceLogin", o: o, err: err, duringFault: tr.faults.recent()}
	}
	b := newBrowser(ep.r, tr.faults, tr.log)
	entry, err := b.do("device entry", start.GetVerificationUri(), nil)
	if err != nil {
		return err
	}
	if entry.status != http.StatusOK || entry.form.Get("csrf") == "" {
		return b.unexpected("device entry", entry)
	}
	login, err := b.do("device code", "/device", url.Values{"csrf": {entry.form.Get("csrf")}, "user_code": {start.GetUserCode()}})
	if err != nil {
		return err
	}
	if login.status != http.StatusOK || login.form.Get("authRequestID") == "" {
		return b.unexpected("device code", login)
	}
	approval, err := b.post("device login", "/login", login, url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return err
	}
	if approval.form.Get("ticket") == "" {
		return b.unexpected("device login", approval)
	}
	res, err := b.do("device approve", "/device/decision", url.Values{"ticket": {approval.form.Get("ticket")}, "csrf": {approval.form.Get("csrf")}, "decision": {"approve"}})
	if err != nil {
		return err
	}
	if res.status != http.StatusOK {
		return b.unexpected("device approve", res)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var tok *mgmtv1alpha1.AccessToken
		o, err := tr.log.timed("PollDeviceLogin", ep.r, func() error {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			resp, err := ep.api.api.PollDeviceLogin(cctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: start.GetDeviceCode()}))
			if err == nil {
				tok = resp.Msg.GetAccessToken()
			}
			return err
		})
		if err == nil {
			if o, err := tr.checkToken(ctx, ep, true, tok.GetAccessToken()); err != nil {
				return &stepError{step: "CheckToken (gRPC) after device login", o: o, err: err, duringFault: tr.faults.recent()}
			}
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return &stepError{step: "PollDeviceLogin", o: o, err: err, duringFault: tr.faults.recent()}
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// machineToken is a client-credentials grant at ep's token endpoint and a
// CheckToken of the token.
func (tr *soakTraffic) machineToken(ctx context.Context, ep *soakEndpoint, clientID, secret string) error {
	var token string
	o, err := tr.log.timed("client credentials", ep.r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, ep.r.url+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
		resp, err := ep.web.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode >= 500 {
			return &httpStatusError{status: resp.StatusCode}
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d (%v)", resp.StatusCode, err)
		}
		token = body.AccessToken
		return nil
	})
	if err != nil {
		return &stepError{step: "client credentials", o: o, err: err, duringFault: tr.faults.recent()}
	}
	if o, err := tr.checkToken(ctx, ep, false, token); err != nil {
		return &stepError{step: "CheckToken of a machine token", o: o, err: err, duringFault: tr.faults.recent()}
	}
	return nil
}

// adminSession is the administrator's login, refreshed when a clock jump
// or its life expires the access token.
type adminSession struct {
	refresh, access string
}

// adminRound is a few admin commands on ep: list users, add one and
// delete it, list sessions, read the newest audit events. n makes the
// added user's name unique.
func (tr *soakTraffic) adminRound(ctx context.Context, ep *soakEndpoint, a *adminSession, n int) error {
	name := fmt.Sprintf("soak-tmp-%d", n)
	calls := []struct {
		rpc string
		f   func(context.Context, string) error
	}{
		{"admin ListUsers", func(ctx context.Context, tok string) error {
			_, err := ep.admin.ListUsers(ctx, withBearer(&adminv1.ListUsersRequest{}, tok))
			return err
		}},
		{"admin CreateUser", func(ctx context.Context, tok string) error {
			_, err := ep.admin.CreateUser(ctx, withBearer(&adminv1.CreateUserRequest{Username: name, Password: "soak-tmp-password-" + name}, tok))
			if connect.CodeOf(err) == connect.CodeAlreadyExists {
				return nil // a retry of a create whose answer was lost
			}
			return err
		}},
		{"admin DeleteUser", func(ctx context.Context, tok string) error {
			_, err := ep.admin.DeleteUser(ctx, withBearer(&adminv1.DeleteUserRequest{Username: name}, tok))
			if connect.CodeOf(err) == connect.CodeNotFound {
				return nil // likewise, a retried delete
			}
			return err
		}},
		{"admin ListSessions", func(ctx context.Context, tok string) error {
			_, err := ep.admin.ListSessions(ctx, withBearer(&adminv1.ListSessionsRequest{}, tok))
			return err
		}},
		{"admin ListAuditEvents", func(ctx context.Context, tok string) error {
			_, err := ep.admin.ListAuditEvents(ctx, withBearer(&adminv1.ListAuditEventsRequest{Limit: 20}, tok))
			return err
		}},
	}
	for _, c := range calls {
		refreshed := false
		for {
			o, err := tr.log.timed(c.rpc, ep.r, func() error {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				defer cancel()
				return c.f(cctx, a.access)
			})
			if err == nil {
				break
			}
			if o == outcome(connect.CodeUnauthenticated.String()) && !refreshed {
				// The access token expired (its life, or a jump of the
				// clock): refresh it, as `nsauth` would, and again.
				refreshed = true
				if err := tr.refreshAdmin(ctx, ep, a); err != nil {
					return err
				}
				continue
			}
			return &stepError{step: c.rpc, o: o, err: err, duringFault: tr.faults.recent()}
		}
	}
	return nil
}

func (tr *soakTraffic) refreshAdmin(ctx context.Context, ep *soakEndpoint, a *adminSession) error {
	var tok *mgmtv1alpha1.AccessToken
	o, err := tr.log.timed("RefreshCli", ep.r, func() error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		resp, err := ep.api.api.RefreshCli(cctx, connect.NewRequest(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: a.refresh}))
		if err == nil {
			tok = resp.Msg.GetAccessToken()
		}
		return err
	})
	if err != nil {
		return &stepError{step: "RefreshCli (admin)", o: o, err: err, duringFault: tr.faults.recent()}
	}
	a.refresh, a.access = tok.GetRefreshToken(), tok.GetAccessToken()
	return nil
}

func withBearer[T any](msg *T, token string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	return req
}

// loop runs one actor: round, then a pause of about pause, until stop; a
// round's endpoint alternates between the replicas.
func loop(ctx context.Context, stop time.Time, rng *rand.Rand, pause time.Duration, round func(i int)) {
	for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		round(i)
		sleep(ctx, pause/2+time.Duration(rng.Int64N(int64(pause)+1)))
	}
}

var enrolSecretField = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)

func oauthVerifier() string { return oauth2.GenerateVerifier() }
