package authn_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-jose/go-jose/v4"
)

// staticKeys is a KeySet with no keys, for configuration tests.
type staticKeys struct{}

func (staticKeys) Lookup(context.Context, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("no keys")
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
