// Package passkey is the provider's WebAuthn relying party: it checks the
// passkeys browsers present against the store, names new ones, and says
// how a passkey login is described in the tokens' amr.
package passkey

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/nsauth/nsauth/internal/store"
)

// NewRelyingParty returns the WebAuthn relying party of the issuer u, or nil
// and the reason when browsers cannot use passkeys there.
func NewRelyingParty(u *url.URL, origin string) (*webauthn.WebAuthn, error) {
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return nil, fmt.Errorf("the issuer's host %s is an IP address, which browsers refuse as a WebAuthn relying party id: "+
			"use a host name (http://localhost:PORT for local use)", host)
	}
	return webauthn.New(&webauthn.Config{
		RPID:                  host,
		RPDisplayName:         "nsauth",
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationPreferred,
		},
	})
}

// User is a store user as the WebAuthn library sees it. The user
// handle is the user's id: random, stable, and no personal information.
type User struct {
	U     *store.User
	Creds []webauthn.Credential
}

func (p User) WebAuthnID() []byte   { return []byte(p.U.ID) }
func (p User) WebAuthnName() string { return p.U.Username }
func (p User) WebAuthnDisplayName() string {
	if p.U.Name != "" {
		return p.U.Name
	}
	return p.U.Username
}
func (p User) WebAuthnCredentials() []webauthn.Credential { return p.Creds }

// Credential is a stored passkey as the WebAuthn library sees it.
func Credential(p *store.Passkey) webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for j, t := range p.Transports {
		transports[j] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:              p.CredentialID,
		PublicKey:       p.PublicKey,
		AttestationType: p.AttestationType,
		Transport:       transports,
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: p.UserVerified,
			BackupEligible: p.BackupEligible, BackupState: p.BackupState},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount},
	}
}

// Method is the amr value of the passkey p: "swk" for a passkey that may be synced, "hwk" otherwise.
func Method(p *store.Passkey) string {
	if p.BackupEligible {
		return AMRSoftwareKey
	}
	return AMRHardwareKey
}

// amr values of passkeys (RFC 8176).
const (
	AMRHardwareKey = "hwk"
	AMRSoftwareKey = "swk"
	AMRUser        = "user"
)

// CeremonyBrowser is what a passwordless ceremony is bound to: a digest of
// the CSRF token of the browser that began it, a secret of that browser's
// (an HttpOnly cookie) that the finish form carries too. The token itself
// is not stored.
func CeremonyBrowser(csrf string) string {
	sum := sha256.Sum256([]byte("nsauth passkey ceremony browser\x00" + csrf))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Store is the storage Verify needs.
type Store interface {
	PasskeyByCredentialID(ctx context.Context, id []byte) (*store.Passkey, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	PasskeysByUser(ctx context.Context, userID string) ([]store.Passkey, error)
	RecordPasskeyUse(ctx context.Context, id string, signCount uint32, backupState, cloneWarning bool) error
}

// Verifier checks passkey assertions.
type Verifier struct {
	RP    *webauthn.WebAuthn
	Store Store
}

// Refusal is why an assertion was refused, for the audit trail.
type Refusal struct {
	Reason string // an audit reason category
	User   *store.User
}

func (p *Refusal) Error() string { return "passkey refused: " + p.Reason }

// Verify checks a passkey assertion against the ceremony
// session (nil when none was begun, or it was answered). user is the
// account the ceremony is for (second factor), nil for a passwordless
// login, where the credential names the account. It returns the user and
// the passkey, updated with the counter and flags of this use; a
// *Refusal when the assertion is refused.
func (v *Verifier) Verify(ctx context.Context, session *webauthn.SessionData, user *store.User, credential string) (*store.User, *store.Passkey, bool, error) {
	if session == nil {
		return nil, nil, false, &Refusal{Reason: "expired", User: user}
	}
	passwordless := user == nil
	if len(credential) == 0 {
		return nil, nil, false, &Refusal{Reason: "bad_assertion", User: user}
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(credential))
	if err != nil {
		return nil, nil, false, &Refusal{Reason: "bad_assertion", User: user}
	}
	var pk *store.Passkey
	var lookupErr error
	lookup := func(rawID, userHandle []byte) (webauthn.User, error) {
		p, err := v.Store.PasskeyByCredentialID(ctx, rawID)
		if err != nil {
			lookupErr = err
			return nil, err
		}
		if string(userHandle) != p.UserID && len(userHandle) > 0 {
			lookupErr = store.ErrNotFound
			return nil, lookupErr
		}
		u := user
		if u == nil {
			if u, err = v.Store.UserByID(ctx, p.UserID); err != nil {
				lookupErr = err
				return nil, err
			}
		} else if u.ID != p.UserID {
			lookupErr = store.ErrNotFound
			return nil, lookupErr
		}
		pk, user = p, u
		return User{U: u, Creds: []webauthn.Credential{Credential(p)}}, nil
	}
	var cred *webauthn.Credential
	if passwordless {
		_, cred, err = v.RP.ValidatePasskeyLogin(lookup, *session, parsed)
	} else {
		// The ceremony allowed every passkey of the user, and the library
		// wants the user to own each of them: give it them all.
		if _, err = lookup(parsed.RawID, parsed.Response.UserHandle); err == nil {
			var all []store.Passkey
			if all, lookupErr = v.Store.PasskeysByUser(ctx, user.ID); lookupErr == nil {
				creds := make([]webauthn.Credential, len(all))
				for j := range all {
					creds[j] = Credential(&all[j])
				}
				cred, err = v.RP.ValidateLogin(User{U: user, Creds: creds}, *session, parsed)
			}
		}
	}
	switch {
	case lookupErr != nil && !errors.Is(lookupErr, store.ErrNotFound):
		return nil, nil, false, lookupErr
	case lookupErr != nil:
		return nil, nil, false, &Refusal{Reason: "unknown_credential", User: user}
	case err != nil:
		return nil, nil, false, &Refusal{Reason: "bad_assertion", User: user}
	}
	if cred.Authenticator.CloneWarning {
		// The counter went backwards: two copies of the key may be in use.
		// The passkey is marked and refused; the user still has their
		// password, and an administrator can remove it.
		if err := v.Store.RecordPasskeyUse(ctx, pk.ID, pk.SignCount, pk.BackupState, true); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, false, err
		}
		return nil, nil, false, &Refusal{Reason: "clone_warning", User: user}
	}
	if user.Disabled() {
		return nil, nil, false, &Refusal{Reason: "disabled", User: user}
	}
	pk.SignCount, pk.BackupState = cred.Authenticator.SignCount, cred.Flags.BackupState
	if err := v.Store.RecordPasskeyUse(ctx, pk.ID, pk.SignCount, pk.BackupState, false); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, false, &Refusal{Reason: "unknown_credential", User: user}
		}
		return nil, nil, false, err
	}
	return user, pk, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), nil
}

// NewName suggests a name for one more passkey that tells it from
// the user's others (taken): the browser and system the user agent
// names ("Firefox on Linux"), else fallback, numbered when taken.
func NewName(userAgent, fallback string, taken []string) string {
	base := fallback
	if device := deviceOf(userAgent); device != "" {
		base = device
	}
	name := base
	for n := 2; slices.Contains(taken, name) && n <= store.MaxPasskeysPerUser+1; n++ {
		name = fmt.Sprintf("%s (%d)", base, n)
	}
	return name
}

// deviceOf names the browser and system of a User-Agent header, or "".
// Order matters: Edge's and Chrome's headers name Safari too, Edge's
// names Chrome, Android's names Linux, iOS's names Mac OS X.
func deviceOf(ua string) string {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	first := func(pairs ...string) string {
		for j := 0; j+1 < len(pairs); j += 2 {
			if strings.Contains(ua, pairs[j]) {
				return pairs[j+1]
			}
		}
		return ""
	}
	browser := first("Edg/", "Edge", "Firefox/", "Firefox", "Chrome/", "Chrome", "Chromium/", "Chromium", "Safari/", "Safari")
	system := first("iPhone", "iPhone", "iPad", "iPad", "Android", "Android", "Windows", "Windows", "Mac OS X", "macOS",
		"CrOS", "ChromeOS", "Linux", "Linux")
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case system != "":
		return system
	default:
		return browser
	}
}

// CeremonyTTL is how long a ceremony may take, at most (and no longer
// than its auth request).
const CeremonyTTL = 5 * time.Minute

// CeremonyStore is the storage of passwordless ceremonies.
type CeremonyStore interface {
	PutPasskeyCeremony(ctx context.Context, c *store.PasskeyCeremony, q store.CeremonyQuota) error
	TakePasskeyCeremony(ctx context.Context, authRequestID, browser string) (*store.PasskeyCeremony, error)
}

// Ceremonies keeps passwordless ceremonies server-side, one per auth
// request, bound to the browser that began it.
type Ceremonies struct {
	Store CeremonyStore
	Now   func() time.Time
	// Kind is the kind the ceremonies are stored as.
	Kind string
}

// ceremonyState is what a passwordless ceremony keeps server-side.
type ceremonyState struct {
	// Session is the library's state: the challenge and what it expects.
	Session *webauthn.SessionData `json:"session,omitempty"`
}

// Ceremony pools (store.CeremonyQuota).
const (
	// PoolUnknown holds the passwordless ceremonies of browsers the
	// provider does not know, counted per client address.
	PoolUnknown = "unknown"
	// PoolKnown holds those of browsers that logged in before, counted per
	// account.
	PoolKnown = "known"
)

// Put stores a passwordless ceremony (the library's session) for ar,
// bound to browser (CeremonyBrowser), counted against q.
func (c *Ceremonies) Put(ctx context.Context, ar *store.AuthRequest, browser string, session *webauthn.SessionData, q store.CeremonyQuota) error {
	st := ceremonyState{Session: session}
	if st.Session != nil {
		// The store's expiry, on the injected clock, is the one that
		// counts; the library's would use the wall clock.
		st.Session.Expires = time.Time{}
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding a passkey ceremony: %w", err)
	}
	expires := c.Now().Add(CeremonyTTL)
	if ar.ExpiresAt.Before(expires) {
		expires = ar.ExpiresAt
	}
	return c.Store.PutPasskeyCeremony(ctx, &store.PasskeyCeremony{AuthRequestID: ar.ID, Kind: c.Kind, Browser: browser,
		Session: data, ExpiresAt: expires}, q)
}

// Take takes ar's passwordless ceremony bound to browser; anything
// else (none, expired, another kind) is store.ErrNotFound. A ceremony
// bound to another browser is not taken: it stays as it was.
func (c *Ceremonies) Take(ctx context.Context, ar *store.AuthRequest, browser string) (*webauthn.SessionData, error) {
	var st ceremonyState
	pc, err := c.Store.TakePasskeyCeremony(ctx, ar.ID, browser)
	if err != nil {
		return nil, err
	}
	if pc.Kind != c.Kind {
		return nil, fmt.Errorf("passkey ceremony of kind %s: %w", pc.Kind, store.ErrNotFound)
	}
	if err := json.Unmarshal(pc.Session, &st); err != nil {
		return nil, fmt.Errorf("decoding a passkey ceremony: %w", err)
	}
	return st.Session, nil
}
