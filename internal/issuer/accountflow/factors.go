package accountflow

// The account page's second factors: the user's passkeys (listed, removed,
// one more added: factors_passkey.go), the authenticator app (set up,
// removed: factors_totp.go) and the recovery codes (new ones, shown once).
//
// Removing a factor is a sensitive act: it needs a recent proof
// (requireRecent). Adding one that can stand in for the password (a
// passkey, a first authenticator app, new recovery codes) needs more: a
// recent proof that included a second factor the user already has
// (mayAddFactor, the one place the rule is written, asked by every add
// through requireAddFactor, at each of its steps). A user with a password
// alone is shown no way to add a factor here, and is told to ask an
// administrator for an enrolment link (nsauth users enrol-link NAME), the
// channel a password thief lacks.
//
// State that crosses two posts (a passkey ceremony, an authenticator
// app's secret awaiting its first code) is kept server-side and bound to
// this session and this browser: a passkey ceremony in the ceremonies
// table under the session's id and a digest of the browser's CSRF token
// (passkey.CeremonyBrowser), an offered secret as a pending step
// (store.PendingMFA, sealed) under a random token and the CSRF token, and
// marked with the session (accountStepID). Another browser, or another
// session of the same browser, finds neither.

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
	"github.com/nsauth/nsauth/internal/issuer/passkey"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// Paths of the factors' forms.
const (
	PasskeyBeginPath  = "/account/passkeys/begin"
	PasskeyFinishPath = "/account/passkeys/finish"
	PasskeyRemovePath = "/account/passkeys/remove"
	ReauthPasskeyPath = "/account/reauth/passkey"
	TOTPBeginPath     = "/account/totp/begin"
	TOTPFinishPath    = "/account/totp/finish"
	TOTPRemovePath    = "/account/totp/remove"
	RecoveryCodesPath = "/account/recovery-codes"
)

// Body limits of the passkey posts: a begin is a small JSON object; a
// finish carries the authenticator's answer (an attestation with
// certificates runs to a few KiB).
const (
	maxPasskeyBeginBody = 1 << 10
	maxPasskeyFormBody  = 64 << 10
)

// factorStore is the storage the factors' sections need besides the
// page's (Store embeds it).
type factorStore interface {
	AddPasskey(ctx context.Context, p *store.Passkey) error
	DeletePasskey(ctx context.Context, userID, nameOrID string) (*store.Passkey, error)
	PutPasskeyCeremony(ctx context.Context, c *store.PasskeyCeremony, q store.CeremonyQuota) error
	TakePasskeyCeremony(ctx context.Context, authRequestID, browser string) (*store.PasskeyCeremony, error)
	EnrollTOTP(ctx context.Context, userID, secret string, usedStep int64, recoveryCodes []string) error
	RemoveTOTP(ctx context.Context, userID string) error
	ReplaceRecoveryCodes(ctx context.Context, userID string, codes []string) error
	AddRecoveryCodesIfNone(ctx context.Context, userID string, codes []string) error
	CreatePendingMFA(ctx context.Context, p *store.PendingMFA, token string) error
	PendingMFA(ctx context.Context, token string) (*store.PendingMFA, error)
	TakePendingMFA(ctx context.Context, token string) (*store.PendingMFA, error)
}

// Messages of the factors' sections.
const (
	msgProveFactor       = "Adding a second factor needs a recent sign-in with one you already have: sign out and in again with it, then come back."
	msgPasskeyGone       = "That passkey is not one of yours, or was removed already."
	msgPasskeyRemoved    = "The passkey %q is removed."
	msgTOTPRemoved       = "The authenticator app is removed: its codes no longer sign you in."
	msgNoTOTP            = "You have no authenticator app."
	msgTOTPDone          = "Your authenticator app is set up. Save your new recovery codes below: they are shown once."
	msgCodesDone         = "Your new recovery codes are below: they are shown once, and the old ones no longer work."
	msgHasTOTP           = "You have an authenticator app already: remove it first to set up another."
	msgTOTPExpired       = "The set-up took too long or was finished already. Start again."
	msgWrongTOTP         = "That code is not right. Check the time on your device and try again."
	msgPasskeyAdded      = "The passkey %q is added."
	msgPasskeyAddedCodes = "The passkey %q is added. Save your recovery codes below: they are shown once."
)

// factorsData is the factors' sections' data (account_factors.html).
type factorsData struct {
	// Passkeys are the user's; PasskeysOn: the server offers passkeys.
	Passkeys   []passkeyLine
	PasskeysOn bool
	TOTP       bool
	// RecoveryCodes is how many unused ones the user has.
	RecoveryCodes int
	// MayAdd: the rule for adding a factor holds now (mayAddFactor).
	MayAdd bool
	// AskAdmin: the user has no second factor; only an administrator's
	// enrolment link adds one. ProveFactor: the user has one, but the
	// recent proof did not include it.
	AskAdmin, ProveFactor bool
	// AddPasskey: the add-a-passkey form is shown, NewPasskeyName its
	// suggested name.
	AddPasskey     bool
	NewPasskeyName string
	// ReauthPasskey: "confirm it's you" offers the user's passkeys.
	ReauthPasskey bool
	// Enrol is an authenticator app being set up: its QR code, secret and
	// the pending step's token.
	Enrol *totpEnrol
	// NewCodes are recovery codes shown once.
	NewCodes []string
	// Script: the page runs the passkey script.
	Script bool
}

type passkeyLine struct {
	ID, Name, Added, LastUsed string
}

// factorPages serves the factors' sections: the account page's Flow,
// with the factors' own methods (so that Flow stays small).
type factorPages struct{ *Flow }

// factorRoutes lists the factors' forms, each behind the form guard.
func (f *Flow) factorRoutes() []authflow.Route {
	p := factorPages{f}
	form := &web.Form{Limit: maxFormBytes, Title: title}
	passkeyForm := &web.Form{Limit: maxPasskeyFormBody, Title: title}
	return []authflow.Route{
		{Pattern: "POST " + PasskeyBeginPath, Form: &web.Form{Kind: web.JSONPost, Limit: maxPasskeyBeginBody, Title: title},
			Handler: http.HandlerFunc(p.beginPasskey)},
		{Pattern: "POST " + PasskeyFinishPath, Form: passkeyForm, Handler: http.HandlerFunc(p.finishPasskey)},
		{Pattern: "POST " + ReauthPasskeyPath, Form: passkeyForm, Handler: http.HandlerFunc(p.reauthPasskey)},
		{Pattern: "POST " + PasskeyRemovePath, Form: form, Handler: http.HandlerFunc(p.removePasskey)},
		{Pattern: "POST " + TOTPBeginPath, Form: form, Handler: http.HandlerFunc(p.beginTOTP)},
		{Pattern: "POST " + TOTPFinishPath, Form: form, Handler: http.HandlerFunc(p.finishTOTP)},
		{Pattern: "POST " + TOTPRemovePath, Form: form, Handler: http.HandlerFunc(p.removeTOTP)},
		{Pattern: "POST " + RecoveryCodesPath, Form: form, Handler: http.HandlerFunc(p.newRecoveryCodes)},
	}
}

// factorsSection reads the factors sections' data for a's page; factors
// is what the user has.
func (f *Flow) factorsSection(ctx context.Context, a *account, factors mfa.Factors) (any, error) {
	d, err := factorPages{f}.factorsData(ctx, a, factors)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// factorsData is factorsSection's, typed: handlers add to it what they
// show once.
func (f factorPages) factorsData(ctx context.Context, a *account, factors mfa.Factors) (factorsData, error) {
	d := factorsData{PasskeysOn: f.passkeys != nil, TOTP: factors.TOTP, RecoveryCodes: factors.RecoveryCodes}
	pks, err := f.st.PasskeysByUser(ctx, a.user.ID)
	if err != nil {
		return d, fmt.Errorf("listing passkeys: %w", err)
	}
	names := make([]string, len(pks))
	for j, p := range pks {
		d.Passkeys = append(d.Passkeys, passkeyLine{ID: p.ID, Name: p.Name, Added: showTime(p.CreatedAt), LastUsed: showTime(p.LastUsedAt)})
		names[j] = p.Name
	}
	if d.MayAdd, err = f.mayAddFactor(ctx, a); err != nil {
		return d, err
	}
	recent := f.recent(a)
	d.AskAdmin = !factors.Any()
	d.ProveFactor = recent && factors.Any() && !d.MayAdd
	d.AddPasskey = d.MayAdd && d.PasskeysOn && len(pks) < store.MaxPasskeysPerUser
	if d.AddPasskey {
		d.NewPasskeyName = passkey.NewName("", "Passkey "+f.cfg.Now().UTC().Format("2006-01-02"), names)
	}
	d.ReauthPasskey = !recent && d.PasskeysOn && len(pks) > 0
	d.Script = d.AddPasskey || d.ReauthPasskey
	return d, nil
}

// factorsScripted reports whether the factors' sections of data run the
// passkey script (the page's CSP then allows our own scripts).
func (f *Flow) factorsScripted(data any) bool {
	d, ok := data.(factorsData)
	return ok && d.Script
}

// requireAddFactor answers an add of a factor by a whose session may not
// add one (mayAddFactor) with the page saying why (403), and reports
// whether the add may go on. Every step of every add calls it before
// changing anything.
func (f factorPages) requireAddFactor(w http.ResponseWriter, r *http.Request, a *account, section string) bool {
	if !f.requireRecent(w, r, a) {
		return false
	}
	ok, err := f.mayAddFactor(r.Context(), a)
	if err != nil {
		f.fail(w, r, "checking the rule for adding a factor", err)
		return false
	}
	if ok {
		return true
	}
	factors, err := f.factorsOf(r.Context(), a)
	if err != nil {
		f.fail(w, r, "reading second factors", err)
		return false
	}
	msg := msgProveFactor
	if !factors.Any() {
		msg = fmt.Sprintf(msgAskEnrolLink, a.user.Username)
	}
	f.show(w, r, a, view{Status: http.StatusForbidden, Section: section, Error: msg})
	return false
}

// showFactors answers an act on the factors with the page: v's notice or
// error, and d (the sections' data read afresh, then changed by edit).
func (f factorPages) showFactors(w http.ResponseWriter, r *http.Request, a *account, v view, edit func(*factorsData)) {
	ctx := r.Context()
	factors, err := f.factorsOf(ctx, a)
	if err != nil {
		f.fail(w, r, "reading second factors", err)
		return
	}
	d, err := f.factorsData(ctx, a, factors)
	if err != nil {
		f.fail(w, r, "reading the factors' section", err)
		return
	}
	if edit != nil {
		edit(&d)
	}
	v.Factors = d
	f.show(w, r, a, v)
}

// removePasskey is POST /account/passkeys/remove: field passkey is the id
// of one of the user's passkeys.
func (f factorPages) removePasskey(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireRecent(w, r, a) {
		return
	}
	ctx, id := r.Context(), r.PostForm.Get("passkey")
	// By id only, among the user's own: a name typed elsewhere never
	// reaches here.
	var target *store.Passkey
	if id != "" {
		pks, err := f.st.PasskeysByUser(ctx, a.user.ID)
		if err != nil {
			f.fail(w, r, "listing passkeys", err)
			return
		}
		for j := range pks {
			if pks[j].ID == id {
				target = &pks[j]
			}
		}
	}
	if target == nil {
		f.showFactors(w, r, a, view{Status: http.StatusNotFound, Section: "passkeys", Error: msgPasskeyGone}, nil)
		return
	}
	p, err := f.st.DeletePasskey(ctx, a.user.ID, target.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		f.showFactors(w, r, a, view{Status: http.StatusNotFound, Section: "passkeys", Error: msgPasskeyGone}, nil)
		return
	case err != nil:
		f.fail(w, r, "removing a passkey", err)
		return
	}
	if err := f.record(ctx, a, audit.Event{Type: audit.PasskeyRemoved, ClientID: AppID, Target: p.Name}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	f.showFactors(w, r, a, view{Notice: fmt.Sprintf(msgPasskeyRemoved, p.Name), Section: "passkeys"}, nil)
}

// newRecoveryCodes is POST /account/recovery-codes: ten new recovery
// codes replace the user's, shown once. New codes are a factor that can
// stand in for the others: the rule for adding one applies.
func (f factorPages) newRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	a, ok := f.account(w, r)
	if !ok || !f.requireAddFactor(w, r, a, "recovery") {
		return
	}
	ctx := r.Context()
	codes := secondfactor.NewRecoveryCodes()
	if err := f.st.ReplaceRecoveryCodes(ctx, a.user.ID, codes); err != nil {
		f.fail(w, r, "storing recovery codes", err)
		return
	}
	if err := f.record(ctx, a, audit.Event{Type: audit.SecondFactorEnrolled, ClientID: AppID, Reason: "recovery_codes"}); err != nil {
		f.message(w, http.StatusInternalServerError, web.MsgInternal)
		return
	}
	f.showFactors(w, r, a, view{Notice: msgCodesDone, Section: "recovery"}, func(d *factorsData) { d.NewCodes = codes })
}
