package authn

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
)

// A Requirement is something a verified token must show for an
// [Interceptor] to let a call through: a scope ([Scope]) or a group
// ([Group]). The zero Requirement is never met.
type Requirement struct {
	kind  string // "scope" or "group"
	value string
}

// Scope requires the token to have been granted scope s (one of
// [Claims].Scopes).
func Scope(s string) Requirement { return Requirement{kind: "scope", value: s} }

// Group requires the token's user to be in group g (one of
// [Claims.Groups]). With nsauth's built-in provider the token carries the
// user's groups only when the app asked for the `groups` scope; a token
// without them is in no group.
func Group(g string) Requirement { return Requirement{kind: "group", value: g} }

// String names the requirement as refusals do: `scope "reports:write"`,
// `group "admins"`.
func (r Requirement) String() string {
	if r.kind == "" {
		return "an empty requirement"
	}
	return fmt.Sprintf("%s %q", r.kind, r.value)
}

// met reports whether claims satisfy r.
func (r Requirement) met(c *Claims) bool {
	if c == nil || r.value == "" {
		return false
	}
	switch r.kind {
	case "scope":
		return slices.Contains(c.Scopes, r.value)
	case "group":
		return slices.Contains(c.groups, r.value)
	}
	return false
}

// Require makes the [Interceptor] let a call of procedure (such as
// "/acme.reports.v1.ReportService/Delete") through only when its token
// meets every one of reqs; otherwise it answers
// [connect.CodePermissionDenied] with a message naming what is missing
// (never the token). Requirements are checked after the token is
// verified: a call without a valid token is still Unauthenticated.
//
// Several Require options for one procedure add up: all their
// requirements must hold. A procedure given requirements needs a token
// even when it is also named public: requirements win, so a typo in a
// list of public procedures cannot open a guarded one. Procedures given
// no requirements need only a valid token (or none, when public).
//
//	authn.NewInterceptorFromConfig(verifier, authn.InterceptorConfig{},
//		authn.Require("/acme.reports.v1.ReportService/Delete",
//			authn.Scope("reports:write"), authn.Group("reports-admins")))
func Require(procedure string, reqs ...Requirement) InterceptorOption {
	reqs = slices.Clone(reqs)
	return func(c *InterceptorConfig) {
		if c.requirements == nil {
			c.requirements = make(map[string][]Requirement)
		}
		// A procedure named with nothing to meet is still guarded: its key
		// is present, so it needs a token even if also named public.
		c.requirements[procedure] = append(c.requirements[procedure], reqs...)
	}
}

// permissionDenied is the refusal of a verified token that misses some of
// reqs, or nil when it meets them all.
func permissionDenied(c *Claims, reqs []Requirement) error {
	var missing []string
	for _, r := range reqs {
		if !r.met(c) {
			missing = append(missing, r.String())
		}
	}
	if missing == nil {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied,
		errors.New("this call needs "+strings.Join(missing, " and ")+", which the access token does not carry"))
}
