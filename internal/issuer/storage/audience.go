package storage

import (
	"encoding/json"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Audiences: an authorize request may name the resources (RFC 8707
// `resource`, repeatable; or `audience`, space-separated or repeated) its
// access tokens are for. Allowed are the app's Audiences, the server's
// access-token audience (Config.Audience) and the issuer URL; anything
// else is invalid_target. The access token's `aud` is the server's
// audience first, then the requested resources, without repeats.

// Bounds on the resources of one request: far above what honest clients
// send.
const (
	MaxResources   = 16
	MaxResourceLen = 2048
)

// ErrInvalidTarget is the refusal of a resource the client may not ask
// for (RFC 8707 §2).
func ErrInvalidTarget() *oidc.Error {
	return &oidc.Error{ErrorType: "invalid_target", Description: "a requested resource or audience is not allowed for this client"}
}

// Resources checks the resources an authorize request from c names, and
// returns them without repeats (nil for none). A resource c may not ask
// for fails with [ErrInvalidTarget].
func (s *Storage) Resources(c op.Client, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return nil, nil
	}
	if len(requested) > MaxResources {
		return nil, ErrInvalidTarget().WithDescription("too many resources or audiences")
	}
	var own []string
	if app, ok := c.(*Client); ok {
		own = app.Audiences()
	}
	var out []string
	for _, r := range requested {
		if len(r) > MaxResourceLen || (r != s.cfg.Audience && r != s.cfg.Issuer && !slices.Contains(own, r)) {
			return nil, ErrInvalidTarget()
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// narrowResources checks the resources a token request names: each one
// must be the server's audience or one of the grant's (the token endpoint
// narrows, RFC 8707 §2.2), else invalid_target.
func (s *core) narrowResources(grant, requested []string) ([]string, error) {
	if len(requested) > MaxResources {
		return nil, ErrInvalidTarget().WithDescription("too many resources or audiences")
	}
	var out []string
	for _, r := range requested {
		if r != s.cfg.Audience && !slices.Contains(grant, r) {
			return nil, ErrInvalidTarget()
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// narrowing is the resources a token request named (RFC 8707 §2.2), for
// its access token only: the grant keeps all of its own.
type narrowing struct {
	resources []string
	narrowed  bool
}

// resourcesOf is the access token's resources: the narrowed ones, else
// the grant's.
func (n *narrowing) resourcesOf(grant []string) []string {
	if n.narrowed {
		return n.resources
	}
	return grant
}

// narrow narrows n to the resources a token request names in form, when
// it names any; each must be the server's audience or one of grant's.
func (s *core) narrow(n *narrowing, form url.Values, grant []string) error {
	requested := form["resource"]
	if len(requested) == 0 {
		return nil
	}
	r, err := s.narrowResources(grant, requested)
	if err != nil {
		return err
	}
	n.resources, n.narrowed = r, true
	return nil
}

// tokenAudience is the `aud` of an access token for resources: the
// server's audience first, then each resource once.
func (s *core) tokenAudience(resources []string) audience {
	aud := audience{s.cfg.Audience}
	for _, r := range resources {
		if !slices.Contains(aud, r) {
			aud = append(aud, r)
		}
	}
	return aud
}

// audience is a JWT `aud`: a single string when there is one (as every
// access token had before resources), else an array.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}
