// Package mfa checks second factors: it says which a user has, and
// accepts a TOTP code (once per time step) or a recovery code (once).
package mfa

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nsauth/nsauth/internal/secondfactor"
	"github.com/nsauth/nsauth/internal/store"
)

// amr values (RFC 8176).
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRMFA      = "mfa"
)

// Store is the storage the checks need.
type Store interface {
	SecondFactors(ctx context.Context, userID string) (store.SecondFactors, error)
	TOTPSecret(ctx context.Context, userID string) (secret string, lastStep int64, err error)
	UseTOTPStep(ctx context.Context, userID string, step int64) error
	UseRecoveryCode(ctx context.Context, userID, code string) error
}

// Checker checks a user's second factors.
type Checker struct {
	Store Store
	Now   func() time.Time
}

// Factors is what second factors a user has.
type Factors struct {
	TOTP bool
	// RecoveryCodes is how many unused recovery codes the user has.
	RecoveryCodes int
	// Passkeys is how many passkeys the user has registered; the
	// second-factor page offers a passkey only when it is above 0.
	Passkeys int
}

// Any reports whether the user has a factor that logs in on its own.
// Recovery codes do not count: they are for when the factor is lost.
func (f Factors) Any() bool { return f.TOTP || f.Passkeys > 0 }

// UserFactors returns what second factors a user has.
func (c *Checker) UserFactors(ctx context.Context, userID string) (Factors, error) {
	sf, err := c.Store.SecondFactors(ctx, userID)
	if err != nil {
		return Factors{}, err
	}
	return Factors{TOTP: sf.TOTP, RecoveryCodes: sf.RecoveryCodes, Passkeys: sf.Passkeys}, nil
}

// ErrCodeReplayed is a right TOTP code whose time step was used before.
var ErrCodeReplayed = errors.New("TOTP code used before")

// CheckTOTP accepts a user's TOTP code once: it returns
// secondfactor.ErrWrongCode or ErrCodeReplayed otherwise.
func (c *Checker) CheckTOTP(ctx context.Context, userID, code string) error {
	secret, _, err := c.Store.TOTPSecret(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return secondfactor.ErrWrongCode
	}
	if err != nil {
		return err
	}
	step, err := secondfactor.CheckTOTP(secret, code, c.Now())
	if err != nil {
		return err
	}
	switch err := c.Store.UseTOTPStep(ctx, userID, step); {
	case errors.Is(err, store.ErrReused):
		return ErrCodeReplayed
	case errors.Is(err, store.ErrNotFound):
		return secondfactor.ErrWrongCode
	default:
		return err
	}
}

// UseRecoveryCode uses up one of a user's recovery codes, or returns
// secondfactor.ErrWrongCode.
func (c *Checker) UseRecoveryCode(ctx context.Context, userID, code string) error {
	normal, ok := secondfactor.NormalizeRecoveryCode(code)
	if !ok {
		return secondfactor.ErrWrongCode
	}
	err := c.Store.UseRecoveryCode(ctx, userID, normal)
	if errors.Is(err, store.ErrNotFound) {
		return secondfactor.ErrWrongCode
	}
	return err
}

// AddAMR adds the methods of a second factor to the login's and "mfa".
func AddAMR(amr, added []string) []string {
	out := slices.Clone(amr)
	for _, a := range append(slices.Clone(added), AMRMFA) {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
