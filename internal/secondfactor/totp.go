// Package secondfactor holds the rules of nsauth's second factors that
// the login pages and the admin commands share: TOTP secrets and codes
// (RFC 6238 through github.com/pquerna/otp: SHA-1, 6 digits, 30-second
// steps, one step of skew each way), recovery codes, and the QR code
// that carries an otpauth:// URI, drawn as SVG for a page and with
// half-block characters for a terminal.
package secondfactor

import (
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Period is the length of a TOTP time step.
const Period = 30 * time.Second

// Skew is how many steps before and after the current one a code may be
// from: clocks drift and people type slowly.
const Skew = 1

// CodeDigits is the length of a TOTP code.
const CodeDigits = 6

// NewTOTP generates a random TOTP secret (160 bits, base32) for account
// at issuer, and returns it with its otpauth:// URI (what an authenticator
// app scans).
func NewTOTP(issuer, account string) (secret, uri string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(Period / time.Second),
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", "", fmt.Errorf("generating a TOTP secret: %w", err)
	}
	return key.Secret(), key.URL(), nil
}

// ErrWrongCode is returned for a code that is not the secret's at any step
// within the skew, or that is not a code at all.
var ErrWrongCode = errors.New("wrong code")

// NormalizeCode removes the spaces people type into a code. It returns
// false when what is left is not CodeDigits digits.
func NormalizeCode(code string) (string, bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != CodeDigits {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

// CheckTOTP returns the time step (Unix time / Period) at which code is the
// secret's, looking Skew steps around now, or ErrWrongCode. The caller
// must still refuse a step already used (store.UseTOTPStep): a code alone
// is replayable within its window.
func CheckTOTP(secret, code string, now time.Time) (int64, error) {
	code, ok := NormalizeCode(code)
	if !ok {
		return 0, ErrWrongCode
	}
	opts := totp.ValidateOpts{Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	step := now.Unix() / int64(Period/time.Second)
	// Every candidate is computed and compared, so the time taken says
	// nothing about which step matched.
	var found int64
	matched := 0
	for _, d := range []int64{0, -1, 1} {
		s := step + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*int64(Period/time.Second), 0), opts)
		if err != nil {
			return 0, fmt.Errorf("computing a TOTP code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched == 0 {
			found, matched = s, 1
		}
	}
	if matched == 0 {
		return 0, ErrWrongCode
	}
	return found, nil
}

// TOTPURI returns the otpauth:// URI of an existing secret, as NewTOTP
// does for a new one.
func TOTPURI(issuer, account, secret string) (string, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return "", errors.New("the TOTP secret is not base32")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: uint(Period / time.Second),
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Secret: raw})
	if err != nil {
		return "", fmt.Errorf("building the otpauth URI: %w", err)
	}
	return key.URL(), nil
}
