package storage

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/store"
)

// The device authorization grant (RFC 8628). The library parses the
// requests and authenticates the client; the rest is ours, because the
// library reads time.Now (not our clock), has no slow_down, and would
// issue access tokens we do not sign:
//
//   - The device authorization endpoint stores the grant under digests of
//     its device code (32 random bytes) and user code (8 letters of the
//     library's base-20 alphabet, no vowels and no look-alikes, shown as
//     BCDF-GHJK: 20^8 ≈ 2.6 × 10^10 codes).
//   - The user enters the code on /device (code entry is counted per client
//     address like login attempts), logs in on the login page, and
//     approves or denies on a page naming the client and the scopes
//     (package devicepages).
//   - The token endpoint answers polls from the store, in one locked
//     transaction per poll: authorization_pending, slow_down when polled
//     sooner than the interval (which then grows by 5 s), access_denied
//     once denied, expired_token after 10 minutes, and the tokens once; a
//     device code presented after its tokens were issued revokes them.

// Device flow settings.
const (
	// DeviceCodeTTL is how long a device authorization waits for the user.
	DeviceCodeTTL = 10 * time.Minute
	// DefaultDevicePollInterval is the default of Config.DevicePollInterval.
	DefaultDevicePollInterval = 5 * time.Second
	// deviceSlowDownStep is how much a slow_down answer adds to the
	// interval (RFC 8628 §3.5).
	deviceSlowDownStep = 5 * time.Second
	// deviceMaxInterval bounds how far slow_down answers grow the interval.
	deviceMaxInterval = time.Minute
	// deviceCodeBytes is the device code's randomness.
	deviceCodeBytes = 32
	// maxDeviceCodeLen bounds a presented device code.
	maxDeviceCodeLen = 128
	// UserCodeLen is the user code's length without its dash.
	UserCodeLen = 8
	// deviceCodeAttempts is how often a draw of codes may collide with
	// stored ones before the request fails; with 20^8 user codes, a second
	// collision in a row means something else is wrong.
	deviceCodeAttempts = 3
)

// UserCodeFormat is how user codes are drawn and shown: the library's
// base-20 alphabet, 8 characters, a dash after 4.
var UserCodeFormat = op.UserCodeBase20

// NormalizeUserCode returns the canonical form of a typed user code: upper
// case, without dashes and spaces. It reports false when that is not
// UserCodeLen characters of the alphabet, so a malformed entry never
// reaches the store.
func NormalizeUserCode(typed string) (string, bool) {
	if len(typed) > 4*UserCodeLen {
		return "", false
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case !strings.ContainsRune(UserCodeFormat.CharSet, r):
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != UserCodeLen {
		return "", false
	}
	return b.String(), true
}

// StartDeviceAuthorization starts a device authorization for an authenticated
// client: it drops scopes the client may not have (as authorize does),
// requires openid, stores the grant and answers with its codes.
func (s *devices) StartDeviceAuthorization(ctx context.Context, r *op.ClientRequest[oidc.DeviceAuthorizationRequest]) (*op.Response, error) {
	if !op.ValidateGrantType(r.Client, oidc.GrantTypeDeviceCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use the device flow")
	}
	if len(r.Data.Scopes) > MaxScopes {
		return nil, oidc.ErrInvalidScope().WithDescription("too many scopes")
	}
	for _, sc := range r.Data.Scopes {
		if len(sc) > MaxScopeLen {
			return nil, oidc.ErrInvalidScope().WithDescription("a scope is too long")
		}
	}
	scopes, err := op.ValidateAuthReqScopes(r.Client, slices.Compact(slices.Clone(r.Data.Scopes)))
	if err != nil {
		return nil, err
	}
	if app, ok := r.Client.(*Client); ok {
		scopes = slices.DeleteFunc(scopes, func(sc string) bool { return !app.PermitsScope(sc) })
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	cfg := s.cfg
	expires := cfg.Now().Add(DeviceCodeTTL)
	for range deviceCodeAttempts {
		deviceCode := store.RandomToken(deviceCodeBytes)
		userCode, err := op.NewUserCode([]rune(UserCodeFormat.CharSet), UserCodeFormat.CharAmount, UserCodeFormat.DashInterval)
		if err != nil {
			return nil, InternalError("drawing a user code", err)
		}
		err = s.StoreDeviceAuthorization(ctx, r.Client.GetID(), deviceCode, userCode, expires, scopes)
		if errors.Is(err, op.ErrDuplicateUserCode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		verify := cfg.DeviceURI
		return op.NewResponse(&oidc.DeviceAuthorizationResponse{
			DeviceCode:              deviceCode,
			UserCode:                userCode,
			VerificationURI:         verify,
			VerificationURIComplete: verify + "?" + url.Values{"user_code": {userCode}}.Encode(),
			ExpiresIn:               int(DeviceCodeTTL / time.Second),
			Interval:                int((cfg.DevicePollInterval + time.Second - 1) / time.Second), // whole seconds, rounded up
		}), nil
	}
	return nil, InternalError("storing the device authorization", errors.New("drawn codes kept colliding with stored ones"))
}

// DeviceToken answers a client's poll with a device code: an RFC 8628
// error while there is nothing to give, else the tokens, once.
func (s *tokens) DeviceToken(ctx context.Context, r *op.ClientRequest[oidc.DeviceAccessTokenRequest]) (*op.Response, error) {
	p, err := s.pollDevice(ctx, r.Client.GetID(), r.Data.DeviceCode)
	if err != nil {
		return nil, err
	}
	switch {
	case p.Auth.State == store.DeviceDenied:
		return nil, oidc.ErrAccessDenied().WithDescription("the user denied the login")
	case p.Expired:
		return nil, oidc.ErrExpiredDeviceCode().WithDescription("the device code has expired; start the login again")
	case p.SlowDown:
		return nil, oidc.ErrSlowDown().WithDescription("polling too fast: wait at least the interval between polls, now 5 s longer")
	case p.Auth.State != store.DeviceApproved:
		return nil, oidc.ErrAuthorizationPending()
	}
	resp, err := s.TokenResponse(ctx, &deviceRequest{DeviceAuthorization: *p.Auth}, r.Client, "", "", nil)
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// deviceRequest is an approved device authorization as the library sees
// it when tokens are issued from it.
type deviceRequest struct {
	store.DeviceAuthorization
	issuance
}

var _ tokenRequest = (*deviceRequest)(nil)

func (d *deviceRequest) GetAMR() []string       { return d.AMR }
func (d *deviceRequest) GetAudience() []string  { return []string{d.ClientID} }
func (d *deviceRequest) GetAuthTime() time.Time { return d.AuthTime }
func (d *deviceRequest) GetClientID() string    { return d.ClientID }
func (d *deviceRequest) GetScopes() []string    { return d.Scopes }
func (d *deviceRequest) GetSubject() string     { return d.UserID }
func (d *deviceRequest) GetResources() []string { return nil }

func (d *deviceRequest) grant() store.Grant {
	return store.Grant{ID: d.ID, UserID: d.UserID, ClientID: d.ClientID, Scopes: d.Scopes,
		Audience: d.GetAudience(), AuthTime: d.AuthTime, AMR: d.AMR}
}

var _ op.DeviceAuthorizationStorage = (*Storage)(nil)

// StoreDeviceAuthorization stores a pending device authorization under
// the digests of its codes. It fails with op.ErrDuplicateUserCode when a
// code is taken (the caller draws again).
func (s *devices) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	canonical, ok := NormalizeUserCode(userCode)
	if !ok {
		return InternalError("storing the device authorization", errors.New("the user code is not of our alphabet and length"))
	}
	d := &store.DeviceAuthorization{ClientID: clientID, Scopes: scopes, ExpiresAt: expires, PollInterval: s.cfg.DevicePollInterval}
	err := s.store.CreateDeviceAuthorization(ctx, d, deviceCode, canonical)
	switch {
	case errors.Is(err, store.ErrConflict):
		return op.ErrDuplicateUserCode
	case err != nil:
		return InternalError("storing the device authorization", err)
	}
	return nil
}

// GetDeviceAuthorizatonState (sic: the library's spelling) polls a device
// authorization as the library's own token endpoint would. Ours does not
// call it (see DeviceToken), but it keeps the same rules: it redeems an
// approval once, and a poll too soon answers slow_down.
func (s *devices) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	p, err := s.all.pollDevice(ctx, clientID, deviceCode)
	if err != nil {
		return nil, err
	}
	if p.SlowDown {
		return nil, oidc.ErrSlowDown()
	}
	d := p.Auth
	st := &op.DeviceAuthorizationState{ClientID: d.ClientID, Audience: []string{d.ClientID}, Scopes: d.Scopes, Expires: d.ExpiresAt,
		Denied: d.State == store.DeviceDenied, Done: d.State == store.DeviceApproved && !p.Expired}
	if p.Expired {
		st.Expires = time.Time{}
	}
	if st.Done {
		st.Subject, st.AMR, st.AuthTime = d.UserID, d.AMR, d.AuthTime
	}
	return st, nil
}

// pollDevice records a poll with deviceCode by clientID.
func (s *tokens) pollDevice(ctx context.Context, clientID, deviceCode string) (*store.DevicePoll, error) {
	if deviceCode == "" || len(deviceCode) > maxDeviceCodeLen {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid device code")
	}
	p, err := s.store.PollDeviceAuthorization(ctx, deviceCode, clientID, deviceSlowDownStep, deviceMaxInterval)
	switch {
	case errors.Is(err, store.ErrReused):
		s.events.Note(ctx, audit.Event{Type: events.DeviceCodeReplayed, Outcome: audit.Failure, ClientID: clientID})
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid device code")
	case errors.Is(err, store.ErrNotFound):
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid device code")
	case err != nil:
		return nil, InternalError("polling the device authorization", err)
	}
	return p, nil
}
