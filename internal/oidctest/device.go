package oidctest

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// deviceGrantType is RFC 8628's grant type at the token endpoint.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceAuthorization answers RFC 8628 §3.1 requests: a device code, a
// user code, and where the user approves (the test does, with
// ApproveDevice or DenyDevice).
func (p *Provider) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.recordForm(r)
	if !p.authenticateClient(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	deviceCode := "dc-" + randomString(24)
	userCode := strings.ToUpper(randomString(2) + "-" + randomString(2))
	p.mu.Lock()
	p.devices[deviceCode] = &deviceGrant{userCode: userCode, scope: r.PostForm.Get("scope"), expires: p.now().Add(p.deviceTTL)}
	interval, ttl := p.deviceInterval, p.deviceTTL
	p.mu.Unlock()
	verify := p.Server.URL + "/device"
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + userCode,
		"expires_in":                int64(ttl / time.Second),
		"interval":                  interval,
	})
}

// deviceTokenLocked judges a device-code poll (RFC 8628 §3.4, §3.5). It
// returns the grant to issue tokens for, or nil after writing the error.
func (p *Provider) deviceTokenLocked(w http.ResponseWriter, deviceCode string) *grant {
	d := p.devices[deviceCode]
	if d == nil || d.used {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return nil
	}
	if len(p.deviceAnswers) > 0 {
		answer := p.deviceAnswers[0]
		p.deviceAnswers = p.deviceAnswers[1:]
		oauthError(w, http.StatusBadRequest, answer)
		return nil
	}
	switch {
	case p.now().After(d.expires):
		oauthError(w, http.StatusBadRequest, "expired_token")
		return nil
	case d.decision == "denied":
		oauthError(w, http.StatusBadRequest, "access_denied")
		return nil
	case d.decision != "approved":
		oauthError(w, http.StatusBadRequest, "authorization_pending")
		return nil
	}
	d.used = true
	return &grant{subject: p.Subject, scope: d.scope}
}

// ApproveDevice approves the device login showing userCode, as its user
// would at the verification URI. It reports whether there was one.
func (p *Provider) ApproveDevice(userCode string) bool { return p.decideDevice(userCode, "approved") }

// DenyDevice refuses the device login showing userCode. It reports
// whether there was one.
func (p *Provider) DenyDevice(userCode string) bool { return p.decideDevice(userCode, "denied") }

func (p *Provider) decideDevice(userCode, decision string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		if d.userCode == userCode {
			d.decision = decision
			return true
		}
	}
	return false
}

// ExpireDevices makes every device login in progress expired.
func (p *Provider) ExpireDevices() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		d.expires = p.now().Add(-time.Second)
	}
}

// QueueDeviceAnswers makes the next device-code polls answer these OAuth
// errors (such as "slow_down"), in order, before the usual judgement
// resumes.
func (p *Provider) QueueDeviceAnswers(codes ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deviceAnswers = append(p.deviceAnswers, codes...)
}

// DeviceCodes returns every device code issued: secrets tests look for
// in logs and errors.
func (p *Provider) DeviceCodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	codes := make([]string, 0, len(p.devices))
	for c := range p.devices {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	return codes
}
