package logincmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/cli/session"
	"github.com/nsauth/nsauth/pkg/loopbackhost"
)

// Bounds on the polling interval a server may ask for: a hostile or broken
// one can neither make the client hammer it nor wait for ever between two
// polls.
const (
	minDeviceInterval = time.Second
	maxDeviceInterval = 5 * time.Minute
	// maxDeviceLifetime bounds, in seconds, how long the codes are said
	// to live.
	maxDeviceLifetime     = 24 * 60 * 60
	defaultDeviceInterval = 5 * time.Second // RFC 8628 §3.2
	slowDownStep          = 5 * time.Second // RFC 8628 §3.5
	// maxDevicePollFailures is how many polls in a row may fail for a
	// passing reason (the provider or the network unavailable) before the
	// login gives up.
	maxDevicePollFailures = 3
	// maxVerificationURLBytes bounds a verification URL to print.
	maxVerificationURLBytes = 2048
)

// deviceLogin logs in with RFC 8628's device authorization grant, through
// the server's StartDeviceLogin and PollDeviceLogin: it shows the
// verification URL and the user code, opens the URL unless --no-browser,
// and polls at the server's interval until the login is approved, denied
// or expired (or ctx ends: --timeout, Ctrl-C). It returns the tokens and
// when the successful poll was sent.
func (o *loginOptions) deviceLogin(ctx context.Context, client mgmtv1alpha1connect.AuthServiceClient) (*mgmtv1alpha1.AccessToken, time.Time, error) {
	errOut := o.app.ErrOut
	startResp, err := client.StartDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.StartDeviceLoginRequest{Scope: &o.Scope}))
	if err != nil {
		return nil, time.Time{}, o.deviceStartError(err)
	}
	start := startResp.Msg
	if start.GetDeviceCode() == "" || start.GetUserCode() == "" {
		return nil, time.Time{}, errors.New("the server started a device login without a device code or user code")
	}
	verify, err := checkVerificationURL(start.GetVerificationUri())
	if err != nil {
		return nil, time.Time{}, err
	}
	complete, err := checkVerificationURL(start.GetVerificationUriComplete())
	if err != nil {
		complete = "" // optional: without it, the user types the code
	}
	userCode := session.DisplayText(start.GetUserCode())
	// A server that says nothing of the codes' lifetime gets the default
	// login timeout as one.
	lifetime := defaultLoginTimeout
	if start.GetExpiresIn() > 0 {
		lifetime = time.Duration(min(start.GetExpiresIn(), maxDeviceLifetime)) * time.Second
	}
	expires := o.deps.Now().Add(lifetime)

	open, check := verify, "enter"
	if complete != "" {
		open, check = complete, "check that it shows"
	}
	where, note := o.browserWhere(verify)
	fmt.Fprintf(errOut, "To log in, open this URL in a browser %s:\n\n    %s\n\nand %s the code %s.\n%s", where, open, check, userCode, note)
	if start.GetExpiresIn() > 0 {
		fmt.Fprintf(errOut, "The code expires at %s.\n", session.FormatExpiry(expires, o.deps.Now()))
	}
	if !o.NoBrowser {
		if err := o.OpenBrowser(open); err != nil {
			fmt.Fprintf(errOut, "Could not open a browser here (%v); open the URL %s.\n", err, where)
		}
	}
	fmt.Fprintln(errOut, "Waiting for the login to be approved (Ctrl-C to cancel) …")

	interval := intervalOf(start.GetInterval())
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		case <-o.After(interval):
		}
		issuedAt := o.deps.Now()
		resp, err := client.PollDeviceLogin(ctx, connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: start.GetDeviceCode()}))
		if err == nil {
			return resp.Msg.GetAccessToken(), issuedAt, nil
		}
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		detail := deviceLoginDetail(err)
		code := connect.CodeOf(err)
		switch {
		case detail.GetError() == "authorization_pending":
			failures = 0
			if detail.GetInterval() > 0 {
				interval = intervalOf(detail.GetInterval())
			}
		case detail.GetError() == "slow_down", code == connect.CodeResourceExhausted:
			// The server's new interval, else RFC 8628's step; a per-address
			// limit says how long in Retry-After.
			failures = 0
			next := clampInterval(interval + slowDownStep)
			if detail.GetInterval() > 0 {
				next = intervalOf(detail.GetInterval())
			}
			if s, perr := strconv.ParseInt(connectMeta(err, "Retry-After"), 10, 64); perr == nil && s > 0 {
				next = max(next, intervalOf(s))
			}
			interval = next
		case detail.GetError() == "access_denied", code == connect.CodePermissionDenied && detail == nil:
			return nil, time.Time{}, errors.New("the login was denied at the identity provider")
		case detail.GetError() == "expired_token":
			return nil, time.Time{}, fmt.Errorf("the code %s expired before the login was approved; run nsauth login --device again", userCode)
		case (code == connect.CodeUnavailable || code == connect.CodeDeadlineExceeded) && failures < maxDevicePollFailures-1 && o.deps.Exchanges.Diagnosis(o.client.APIURL) == "":
			failures++ // a passing failure: try again at the next interval
		default:
			return nil, time.Time{}, o.deps.CallError(o.client.APIURL, "waiting for the device login", err)
		}
		if o.deps.Now().After(expires) {
			return nil, time.Time{}, fmt.Errorf("the code %s expired before the login was approved; run nsauth login --device again", userCode)
		}
	}
}

// browserWhere says where a browser can open the verification URL verify:
// on any device, unless its host is loopback (an nsauth server's default
// issuer, http://localhost:8080), which only the server's own machine
// reaches. Then note says so, how to reach it from elsewhere anyway (an
// SSH tunnel) and the server's setting that makes it reachable.
func (o *loginOptions) browserWhere(verify string) (where, note string) {
	u, err := url.Parse(verify)
	if err != nil || !loopbackhost.Is(u.Hostname()) {
		return "on any device", ""
	}
	where = "on the machine the server runs on"
	if api, err := url.Parse(o.client.APIURL); err == nil && loopbackhost.Is(api.Hostname()) {
		where = "on this machine"
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	note = fmt.Sprintf("This URL is loopback: no other device can open it unless it forwards the port to the\n"+
		"server's machine first (ssh -L %s:%s SERVER-HOST). To log in from any device,\n"+
		"set NSAUTH_ISSUER (--issuer) on the nsauth server to a URL other devices reach.\n",
		port, net.JoinHostPort(u.Hostname(), port))
	return where, note
}

// deviceStartError explains why StartDeviceLogin failed; a server without
// device login (an unmodified Neosync, or a provider without the
// endpoint) is told as such, with the way to log in that remains.
func (o *loginOptions) deviceStartError(err error) error {
	if s := o.deps.Exchanges.Diagnosis(o.client.APIURL); s != "" {
		return errors.New(s)
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnimplemented:
		return errors.New("this server does not offer device login (StartDeviceLogin): use nsauth login without --device")
	case connect.CodeFailedPrecondition:
		return errors.New("this server cannot start device logins: its identity provider offers none, or not to the server's client; use nsauth login without --device")
	}
	return o.deps.CallError(o.client.APIURL, "starting a device login", err)
}

// checkVerificationURL refuses a verification URL a browser should not be
// sent to, and makes it safe to print.
func checkVerificationURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(raw) > maxVerificationURLBytes ||
		strings.IndexFunc(raw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return "", errors.New("the server gave a verification URL that is not an http(s) URL; refusing to use it")
	}
	return raw, nil
}

// deviceLoginDetail returns err's DeviceLoginError detail, or nil.
func deviceLoginDetail(err error) *mgmtv1alpha1.DeviceLoginError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if m, ok := v.(*mgmtv1alpha1.DeviceLoginError); ok {
				return m
			}
		}
	}
	return nil
}

// connectMeta returns a header or trailer of a Connect error.
func connectMeta(err error, key string) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Meta().Get(key)
	}
	return ""
}

// intervalOf is an interval given in seconds, within the bounds.
func intervalOf(seconds int64) time.Duration {
	if seconds <= 0 {
		return defaultDeviceInterval
	}
	return clampInterval(time.Duration(min(seconds, int64(maxDeviceInterval/time.Second))) * time.Second)
}

func clampInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultDeviceInterval
	}
	return min(max(d, minDeviceInterval), maxDeviceInterval)
}
