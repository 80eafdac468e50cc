package accountflow

import (
	"context"
	"net/http"
	"slices"

	"github.com/nsauth/nsauth/internal/issuer/mfa"
)

// amrMFA is the amr value of a proof that included a second factor
// (RFC 8176), as the login records it.
const amrMFA = "mfa"

// recent reports whether a's session proved who its user is (logged in,
// or re-authenticated on this page) within ReauthAfter: a sensitive act
// needs it.
func (f *Flow) recent(a *account) bool {
	age := f.cfg.Now().Sub(a.session.AuthTime)
	return age >= 0 && age <= f.cfg.ReauthAfter
}

// requireRecent answers a sensitive act of a whose session's last proof
// is not recent with the account page asking to confirm it is them
// (status 403, the reauth section), and reports whether the act may go
// on. Every sensitive handler calls it before changing anything.
func (f *Flow) requireRecent(w http.ResponseWriter, r *http.Request, a *account) bool {
	if f.recent(a) {
		return true
	}
	f.show(w, r, a, view{Status: http.StatusForbidden, Section: "reauth", Error: msgReauthFirst})
	return false
}

// msgReauthFirst asks for a new proof before a sensitive act.
const msgReauthFirst = "Confirm it's you first: this change needs a recent sign-in."

// mayAddFactor is the one rule for adding a factor that can stand in for
// the password (a passkey, an authenticator app, recovery codes) on the
// account page: never on the strength of the password alone. It needs a
// recent proof (requireRecent) that included a second factor the user
// already has. The re-authentication asks every user who has a second
// factor for one with the password, so a recent proof of such a user
// included one; a session whose amr lacks mfa never did (the login or a
// re-authentication of a user who had none), and a user without a factor
// has none to prove.
func (f *Flow) mayAddFactor(ctx context.Context, a *account) (bool, error) {
	if !f.recent(a) || !slices.Contains(a.session.AMR, amrMFA) {
		return false, nil
	}
	factors, err := f.factorsOf(ctx, a)
	if err != nil {
		return false, err
	}
	return factors.Any(), nil
}

// reauthForm is what confirming it is a's user asks for: the password
// when the user has one, and one of their second factors when they have
// any.
func (f *Flow) reauthForm(a *account, factors mfa.Factors) reauthForm {
	return reauthForm{Password: len(a.user.PasswordHash) > 0, Code: factors.TOTP, Recovery: factors.RecoveryCodes > 0 && factors.Any(),
		Passkey: factors.Passkeys > 0 && f.passkeys != nil}
}

// submitReauth is POST /account/reauth: "confirm it's you".
func (f *Flow) submitReauth(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok {
		return
	}
	f.show(w, r, a, view{Status: http.StatusNotImplemented, Section: "reauth", Error: "Not yet."})
}
