package authn_test

import (
	"context"
	"errors"

	"github.com/go-jose/go-jose/v4"
)

// staticKeys is a KeySet with no keys, for configuration tests.
type staticKeys struct{}

func (staticKeys) Lookup(context.Context, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("no keys")
}
