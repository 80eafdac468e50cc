package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nsauth/nsauth/pkg/oidcdiscovery"
)

// DeviceGrantType is the grant type of RFC 8628's token request.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// Limits on what a device authorization response may hold. MaxDeviceCodeBytes
// is also the longest device code the AuthService accepts back from a
// client: a longer one cannot have come from here.
const (
	MaxDeviceCodeBytes = 2048
	maxUserCodeBytes   = 128
	maxVerificationURI = 2048
	// DefaultDeviceInterval is RFC 8628 §3.2's polling interval when the
	// provider gives none.
	DefaultDeviceInterval = 5
	// maxDeviceInterval and maxDeviceExpiresIn bound what a provider may
	// ask of a client, so that no arithmetic on them overflows.
	maxDeviceInterval  = 3600
	maxDeviceExpiresIn = 24 * 3600
	// maxDeviceResponseBytes bounds a device authorization response; real
	// ones are a few hundred bytes.
	maxDeviceResponseBytes = 64 << 10
	// maxTokenResponseBytes bounds a token response, as x/oauth2 does.
	maxTokenResponseBytes = 1 << 20
)

// ErrNoDeviceEndpoint means the provider's discovery document names no
// device_authorization_endpoint: it offers no device login.
var ErrNoDeviceEndpoint = errors.New("the provider's discovery document names no device_authorization_endpoint")

// RFC 8628 §3.5's answers to a poll that are not tokens (and not
// failures of the request): the edge maps each to its own code.
var (
	// ErrAuthorizationPending: the user has not decided yet; poll again
	// after the interval.
	ErrAuthorizationPending = errors.New("device login pending: authorization_pending")
	// ErrSlowDown: polling too fast; the interval grows by 5 seconds for
	// this and every later poll.
	ErrSlowDown = errors.New("device login polled too fast: slow_down")
	// ErrAccessDenied: the user refused.
	ErrAccessDenied = errors.New("device login denied: access_denied")
	// ErrExpiredToken: the device code expired before the user decided.
	ErrExpiredToken = errors.New("device login expired: expired_token")
)

// DeviceAuthorization is the provider's device authorization response
// (RFC 8628 §3.2), checked.
type DeviceAuthorization struct {
	// DeviceCode is the client's secret for polling. Never log it.
	DeviceCode string
	// UserCode is what the user enters at VerificationURI.
	UserCode string
	// VerificationURI is where the user goes.
	VerificationURI string
	// VerificationURIComplete is VerificationURI with the user code in it,
	// or empty when the provider gave none (or an unusable one).
	VerificationURIComplete string
	// ExpiresIn is the codes' lifetime in seconds, from 1 to a day.
	ExpiresIn int64
	// Interval is the polling interval in seconds: the provider's, or
	// [DefaultDeviceInterval].
	Interval int64
}

// StartDevice asks the provider's device authorization endpoint
// (RFC 8628 §3.1) for a device login with scope, authenticating as the
// configured client as the token endpoint wants it, and adding the
// configured audience as authorize URLs do. It returns an error wrapping
// [ErrNoDeviceEndpoint] when the provider offers none.
func (p *Provider) StartDevice(ctx context.Context, scope string) (*DeviceAuthorization, error) {
	md, err := p.Metadata()
	if err != nil {
		return nil, err
	}
	if md.DeviceAuthorizationEndpoint == "" {
		return nil, ErrNoDeviceEndpoint
	}
	form := url.Values{"scope": {scope}}
	if p.cfg.Audience != "" {
		form.Set("audience", p.cfg.Audience)
	}
	resp, err := p.postClientAuthenticated(ctx, md, md.DeviceAuthorizationEndpoint, form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readBounded(ctx, resp, maxDeviceResponseBytes, "device authorization endpoint")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, oauthFailure(resp, body, "device authorization endpoint")
	}
	var raw struct {
		DeviceCode              string          `json:"device_code"`
		UserCode                string          `json:"user_code"`
		VerificationURI         string          `json:"verification_uri"`
		VerificationURL         string          `json:"verification_url"` // Google's spelling
		VerificationURIComplete string          `json:"verification_uri_complete"`
		ExpiresIn               json.RawMessage `json:"expires_in"`
		Interval                json.RawMessage `json:"interval"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, unavailable("device authorization endpoint answered with an unusable response")
	}
	if raw.VerificationURI == "" {
		raw.VerificationURI = raw.VerificationURL
	}
	da := &DeviceAuthorization{
		DeviceCode:      raw.DeviceCode,
		UserCode:        raw.UserCode,
		VerificationURI: raw.VerificationURI,
		Interval:        DefaultDeviceInterval,
	}
	// Users are sent to the verification URI: under an https issuer it must
	// be https, as the endpoints of the discovery document must.
	uriErr := oidcdiscovery.CheckEndpointURL(da.VerificationURI, md.Issuer)
	switch {
	case !visibleASCII(da.DeviceCode, MaxDeviceCodeBytes):
		return nil, unavailable("device authorization response: device_code is missing or unusable")
	case !displayable(da.UserCode, maxUserCodeBytes):
		return nil, unavailable("device authorization response: user_code is missing or unusable")
	case errors.Is(uriErr, ErrInsecureEndpoint):
		return nil, fmt.Errorf("%w: device authorization response: verification_uri %q: %w", ErrUnavailable, da.VerificationURI, uriErr)
	case len(da.VerificationURI) > maxVerificationURI || uriErr != nil:
		return nil, unavailable("device authorization response: verification_uri is missing or not an absolute http(s) URL")
	}
	if c := raw.VerificationURIComplete; c != "" && len(c) <= maxVerificationURI && oidcdiscovery.CheckEndpointURL(c, md.Issuer) == nil {
		da.VerificationURIComplete = c
	}
	if n, ok := jsonSeconds(raw.ExpiresIn); ok && n > 0 {
		da.ExpiresIn = min(n, maxDeviceExpiresIn)
	} else {
		return nil, unavailable("device authorization response: expires_in is missing or not a positive number")
	}
	if n, ok := jsonSeconds(raw.Interval); ok && n > 0 {
		da.Interval = min(n, maxDeviceInterval)
	}
	return da, nil
}

// PollDevice makes one device access token request (RFC 8628 §3.4) for
// deviceCode. It does not wait or loop: the caller polls at the interval.
// Besides the errors every provider call may return, it returns
// [ErrAuthorizationPending], [ErrSlowDown], [ErrAccessDenied] or
// [ErrExpiredToken] for RFC 8628's answers, a [*RejectedError] for any
// other OAuth error (an unknown device code is invalid_grant), and
// [ErrNoDeviceEndpoint] when the provider offers no device login.
func (p *Provider) PollDevice(ctx context.Context, deviceCode string) (*Token, error) {
	md, err := p.Metadata()
	if err != nil {
		return nil, err
	}
	if md.DeviceAuthorizationEndpoint == "" {
		return nil, ErrNoDeviceEndpoint
	}
	form := url.Values{"grant_type": {DeviceGrantType}, "device_code": {deviceCode}}
	resp, err := p.postClientAuthenticated(ctx, md, md.TokenEndpoint, form)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := readBounded(ctx, resp, maxTokenResponseBytes, "token endpoint")
	if err != nil {
		return nil, err
	}
	var tj struct {
		AccessToken  string          `json:"access_token"`
		TokenType    string          `json:"token_type"`
		RefreshToken string          `json:"refresh_token"`
		IDToken      string          `json:"id_token"`
		Scope        string          `json:"scope"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Error        string          `json:"error"`
	}
	// Some providers answer errors with 200 (x/oauth2 accepts that too).
	if resp.StatusCode != http.StatusOK || (json.Unmarshal(body, &tj) == nil && tj.Error != "") {
		err := oauthFailure(resp, body, "token endpoint")
		var re *RejectedError
		if errors.As(err, &re) {
			switch re.Code {
			case "authorization_pending":
				return nil, ErrAuthorizationPending
			case "slow_down":
				return nil, ErrSlowDown
			case "access_denied":
				return nil, ErrAccessDenied
			case "expired_token":
				return nil, ErrExpiredToken
			}
		}
		return nil, err
	}
	if err := json.Unmarshal(body, &tj); err != nil || tj.AccessToken == "" {
		return nil, unavailable("token endpoint answered with an unusable response")
	}
	tok := &Token{AccessToken: tj.AccessToken, TokenType: tj.TokenType, RefreshToken: tj.RefreshToken, IDToken: tj.IDToken, Scope: tj.Scope}
	if n, ok := jsonSeconds(tj.ExpiresIn); ok && n > 0 {
		tok.ExpiresIn = n
	}
	if tok.TokenType == "" || strings.EqualFold(tok.TokenType, "Bearer") {
		tok.TokenType = "Bearer"
	}
	return tok, nil
}

// readBounded reads at most limit bytes of resp's body; a longer body, or
// a 5xx status, makes the provider unavailable.
func readBounded(ctx context.Context, resp *http.Response, limit int64, endpoint string) ([]byte, error) {
	if resp.StatusCode >= 500 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, unavailable("%s: HTTP %d", endpoint, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable("%s: reading the response: %v", endpoint, redactURLError(err))
	}
	if int64(len(body)) > limit {
		return nil, unavailable("%s: response larger than %d bytes", endpoint, limit)
	}
	return body, nil
}

// oauthFailure reads an RFC 6749 §5.2 error response (JSON, or a form as
// some providers send) into a [*RejectedError] with its sanitized code;
// anything else makes the provider unavailable. The body itself goes
// nowhere.
func oauthFailure(resp *http.Response, body []byte, endpoint string) error {
	var code string
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		if vals, err := url.ParseQuery(string(body)); err == nil {
			code = vals.Get("error")
		}
	} else {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil {
			code = e.Error
		}
	}
	if code == "" {
		return unavailable("%s: HTTP %d without an OAuth error", endpoint, resp.StatusCode)
	}
	return &RejectedError{Code: sanitizeErrorCode(code), Status: resp.StatusCode}
}

// jsonSeconds reads a number of seconds sent as a JSON number or, as some
// providers do, a string holding one.
func jsonSeconds(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n = json.Number(s)
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || f > 1<<53 || f < -(1<<53) {
		return 0, false
	}
	return int64(f), true
}

// visibleASCII reports whether s is a non-empty credential of at most max
// bytes of visible ASCII (RFC 6749 VSCHAR without space).
func visibleASCII(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// displayable reports whether s, shown to a user, is non-empty UTF-8 of at
// most max bytes without control characters (nothing that could move a
// terminal's cursor).
func displayable(s string, max int) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, unicode.IsControl) < 0
}

// String describes a DeviceAuthorization without its device code.
func (d *DeviceAuthorization) String() string {
	return fmt.Sprintf("device authorization (user code %s, expires in %d s, interval %d s)", d.UserCode, d.ExpiresIn, d.Interval)
}
