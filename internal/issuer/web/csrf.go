package web

import (
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/store"
)

// CSRF is the double-submit CSRF cookie of the pages: a random token in an
// HttpOnly, SameSite=Strict cookie that every form carries back.
type CSRF struct {
	// Secure: the issuer is https, and the cookie is Secure and __Host-.
	Secure bool
	// MaxAge is the cookie's lifetime.
	MaxAge time.Duration
}

// Name is the cookie's name.
func (c CSRF) Name() string { return CookieName("nsauth_csrf", c.Secure) }

// CookieName is the name of a cookie of ours called name: with the
// __Host- prefix under an https issuer (the browser then keeps it to this
// host, Secure and Path=/), as is under http.
func CookieName(name string, secure bool) string {
	if secure {
		return "__Host-" + name
	}
	return name
}

// Cookie returns the browser's CSRF token, setting a new one when it has
// none. Reusing it lets several login tabs coexist.
func (c CSRF) Cookie(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(c.Name()); err == nil && validToken(ck.Value) {
		return ck.Value
	}
	v := store.RandomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name:     c.Name(),
		Value:    v,
		Path:     "/",
		MaxAge:   int(c.MaxAge / time.Second),
		HttpOnly: true,
		Secure:   c.Secure,
		SameSite: http.SameSiteStrictMode,
	})
	return v
}

// Check compares a token the request carries (a form field or a header)
// with the cookie's, and returns the cookie's when they are the same.
func (c CSRF) Check(r *http.Request, sent string) (string, bool) {
	ck, err := r.Cookie(c.Name())
	if err != nil || !validToken(ck.Value) || !validToken(sent) {
		return "", false
	}
	return ck.Value, subtle.ConstantTimeCompare([]byte(ck.Value), []byte(sent)) == 1
}

// validToken accepts what Cookie generates.
func validToken(v string) bool { return IsRandomToken(v, 32) }

// IsRandomToken accepts what store.RandomToken(n) generates: the unpadded base64url spelling of n bytes, nothing else.
func IsRandomToken(v string, n int) bool {
	if len(v) != base64.RawURLEncoding.EncodedLen(n) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
