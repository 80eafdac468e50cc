package tokenstore

import (
	"errors"
	"strings"
	"time"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
)

// FromAccessToken turns a LoginCli or RefreshCli answer into a stored
// entry, of the account the tokens name ([AccountFromTokens]). The expiry counts from issuedAt (taken before the call, so it errs
// early); when the server sends no lifetime, the access token's own `exp`
// is used if it is a JWT, and otherwise the expiry stays unknown.
func FromAccessToken(apiURL string, at *mgmtv1alpha1.AccessToken, issuedAt time.Time) (*Entry, error) {
	if at == nil || at.GetAccessToken() == "" {
		return nil, errors.New("the server answered without an access token")
	}
	tokenType := at.GetTokenType()
	if tokenType == "" || strings.EqualFold(tokenType, "bearer") {
		tokenType = "Bearer"
	}
	e := &Entry{
		APIURL:       apiURL,
		Storage:      StorageFile,
		AccessToken:  at.GetAccessToken(),
		RefreshToken: at.GetRefreshToken(),
		IDToken:      at.GetIdToken(),
		TokenType:    tokenType,
		Scope:        at.GetScope(),
		Account:      AccountFromTokens(at.GetIdToken(), at.GetAccessToken()),
	}
	switch {
	case at.GetExpiresIn() > 0:
		// Whole seconds, rounded down: the server's lifetime is in seconds.
		e.Expiry = issuedAt.Add(time.Duration(at.GetExpiresIn()) * time.Second).Truncate(time.Second).UTC()
	default:
		if claims, err := UnverifiedClaims(at.GetAccessToken()); err == nil {
			if exp, ok := numericDate(claims["exp"]); ok {
				e.Expiry = exp
			}
		}
	}
	return e, nil
}

// numericDate reads a JWT NumericDate decoded with UseNumber.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(interface{ Int64() (int64, error) })
	if !ok {
		return time.Time{}, false
	}
	sec, err := n.Int64()
	if err != nil || sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0).UTC(), true
}
