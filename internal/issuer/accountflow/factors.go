package accountflow

// This file belongs to the `factors` helper (issue 25): replace it with
// the factors' sections (passkeys, authenticator app, recovery codes).
// The page calls the three functions below; their templates are
// web/templates/account_factors.html ("account_passkeys", "account_totp",
// "account_recovery"), given the page's data (.Factors is what
// factorsSection returns, or view.Factors of an answer).

import (
	"context"

	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/mfa"
)

// factorRoutes lists the factors' forms (POST /account/passkeys/...,
// /account/totp/..., /account/recovery-codes), each behind the form guard.
func (f *Flow) factorRoutes() []authflow.Route { return nil }

// factorsSection reads the factors sections' data for a's page; factors
// is what the user has.
func (f *Flow) factorsSection(ctx context.Context, a *account, factors mfa.Factors) (any, error) {
	return nil, nil
}

// factorsScripted reports whether the factors' sections of data run the
// passkey script (the page's CSP then allows our own scripts).
func (f *Flow) factorsScripted(data any) bool { return false }
