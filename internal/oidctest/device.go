package oidctest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// deviceGrantType is RFC 8628's grant type at the token endpoint.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceEndpoint is device authorization (RFC 8628): it hands out device
// and user codes, and judges the token endpoint's device-code polls by
// what the test decided for each login. Its state is guarded by p.mu.
type deviceEndpoint struct {
	p        *Provider
	off      bool                    // no device authorization offered
	logins   map[string]*deviceLogin // by device code
	interval int64                   // seconds between polls
	ttl      time.Duration           // lifetime of device and user codes
	verify   string                  // the verification URI; "" is the provider's own /device
	answers  []string                // scripted token-endpoint errors for polls, first first
}

// deviceLogin is a device login (RFC 8628) in progress.
type deviceLogin struct {
	userCode, scope string
	expires         time.Time
	decision        string // "", "approved" or "denied"
	used            bool
}

// serve answers RFC 8628 §3.1 requests: a device code, a user code, and
// where the user approves (the test does, with ApproveDevice or
// DenyDevice).
func (d *deviceEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	p := d.p
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.traffic.recordForm(r)
	if !authenticated(r, p.ClientID, p.ClientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	deviceCode := "dc-" + randomString(24)
	userCode := strings.ToUpper(randomString(2) + "-" + randomString(2))
	p.mu.Lock()
	d.logins[deviceCode] = &deviceLogin{userCode: userCode, scope: r.PostForm.Get("scope"), expires: p.now().Add(d.ttl)}
	interval, ttl, verify := d.interval, d.ttl, d.verify
	p.mu.Unlock()
	if verify == "" {
		verify = p.Server.URL + "/device"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + userCode,
		"expires_in":                int64(ttl / time.Second),
		"interval":                  interval,
	})
}

// pollLocked judges a device-code poll (RFC 8628 §3.4, §3.5). It returns
// the grant to issue tokens for, or nil after writing the error.
func (d *deviceEndpoint) pollLocked(w http.ResponseWriter, deviceCode string) *grant {
	l := d.logins[deviceCode]
	if l == nil || l.used {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return nil
	}
	if len(d.answers) > 0 {
		answer := d.answers[0]
		d.answers = d.answers[1:]
		oauthError(w, http.StatusBadRequest, answer)
		return nil
	}
	switch {
	case d.p.now().After(l.expires):
		oauthError(w, http.StatusBadRequest, "expired_token")
		return nil
	case l.decision == "denied":
		oauthError(w, http.StatusBadRequest, "access_denied")
		return nil
	case l.decision != "approved":
		oauthError(w, http.StatusBadRequest, "authorization_pending")
		return nil
	}
	l.used = true
	return &grant{subject: d.p.Subject, scope: l.scope}
}

// decideLocked records the decision for the login showing userCode and
// reports whether there was one.
func (d *deviceEndpoint) decideLocked(userCode, decision string) bool {
	for _, l := range d.logins {
		if l.userCode == userCode {
			l.decision = decision
			return true
		}
	}
	return false
}

// ApproveDevice approves the device login showing userCode, as its user
// would at the verification URI. It reports whether there was one.
func (p *Provider) ApproveDevice(userCode string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.device.decideLocked(userCode, "approved")
}

// DenyDevice refuses the device login showing userCode. It reports
// whether there was one.
func (p *Provider) DenyDevice(userCode string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.device.decideLocked(userCode, "denied")
}

// ExpireDevices makes every device login in progress expired.
func (p *Provider) ExpireDevices() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.device.logins {
		l.expires = p.now().Add(-time.Second)
	}
}

// QueueDeviceAnswers makes the next device-code polls answer these OAuth
// errors (such as "slow_down"), in order, before the usual judgement
// resumes.
func (p *Provider) QueueDeviceAnswers(codes ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.device.answers = append(p.device.answers, codes...)
}

// DeviceCodes returns every device code issued: secrets tests look for
// in logs and errors.
func (p *Provider) DeviceCodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	codes := make([]string, 0, len(p.device.logins))
	for c := range p.device.logins {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}
