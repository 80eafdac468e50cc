package tokenstore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// UnverifiedClaims decodes the payload of a JWT without checking its
// signature. It is for display and for reading `exp` from a token the
// client just received over TLS from its own server; it MUST NOT be used to
// make an access decision. Non-JWT tokens are an error.
func UnverifiedClaims(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, errors.New("not a JWT: payload is not base64url")
	}
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, errors.New("not a JWT: payload is not a JSON object")
	}
	return claims, nil
}
