package loopback

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
)

// ErrStateMismatch means the response did not carry the state this login
// sent: it belongs to another login attempt, or was forged. [ParsePasted]
// returns it, since the user pasted that URL and should hear it is the
// wrong one; the [Listener] does not end the login on such a request (any
// web page can make a browser send one) and never returns it.
var ErrStateMismatch = errors.New("the response's state does not match this login (a stale browser tab or a forged request); start the login again")

// ErrNoCode means the response carried neither a code nor an error.
var ErrNoCode = errors.New("the response carries no authorization code")

// ProviderError is an error the identity provider sent back instead of a
// code (RFC 6749 §4.1.2.1). Error reports only the error code, and only
// when it looks like one; Description is for the browser page, where it is
// HTML-escaped, and is never printed to the terminal.
type ProviderError struct {
	// Code is the `error` parameter, such as "access_denied".
	Code string
	// Description is the `error_description` parameter, untrusted text.
	Description string
}

// Error implements error.
func (e *ProviderError) Error() string {
	return "the identity provider refused the login: " + e.SafeCode()
}

// SafeCode returns Code when it is a plausible OAuth error code (1 to 64
// characters of [a-z0-9_.-], case-insensitive), or "unrecognised error".
func (e *ProviderError) SafeCode() string {
	if len(e.Code) == 0 || len(e.Code) > 64 {
		return "unrecognised error"
	}
	for _, c := range []byte(e.Code) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "unrecognised error"
		}
	}
	return e.Code
}

// checkResponse applies the checks every authorization response gets,
// whether it reached the listener or was pasted: the state first (nothing
// else in a response with the wrong state is trusted), then an error, then
// the code.
func checkResponse(q url.Values, state string) (string, error) {
	got := q.Get("state")
	if state == "" || subtle.ConstantTimeCompare([]byte(got), []byte(state)) != 1 {
		return "", ErrStateMismatch
	}
	if e := q.Get("error"); e != "" || q.Has("error") {
		return "", &ProviderError{Code: e, Description: q.Get("error_description")}
	}
	code := q.Get("code")
	if code == "" {
		return "", ErrNoCode
	}
	return code, nil
}

// ParsePasted checks a redirect URL the user pasted (the address the
// browser showed after the login, for example when it could not reach this
// machine) and returns the authorization code. redirectURI is the one sent
// with the login; the pasted URL must be on the same path, so pasting the
// authorize URL or another page by mistake gives a clear error.
func ParsePasted(pasted, redirectURI, state string) (string, error) {
	want, err := url.Parse(redirectURI)
	if err != nil {
		return "", fmt.Errorf("redirect URI: %w", err)
	}
	u, err := url.Parse(pasted)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("that is not a URL; paste the whole address from the browser's address bar, starting with " + want.Scheme + "://")
	}
	if u.Path != want.Path {
		return "", fmt.Errorf("that URL is not the login callback (its path is not %s); paste the address the browser shows after you log in", want.Path)
	}
	return checkResponse(u.Query(), state)
}
