package issuer

import (
	"context"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// GetPrivateClaimsFromRequest adds the login's `amr` (RFC 8176: how the
// user authenticated, such as ["pwd", "otp", "mfa"]) to a user's JWT
// access token, as the ID token carries it, so a resource server can tell
// a login with a second factor from one without. Refreshes carry the
// grant's amr on. Machine tokens have none and get no claim.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	r, ok := req.(interface{ GetAMR() []string })
	if !ok || len(r.GetAMR()) == 0 {
		return nil, nil
	}
	return map[string]any{"amr": slices.Clone(r.GetAMR())}, nil
}

var _ op.CanGetPrivateClaimsFromRequest = (*storage)(nil)
