package connectorflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/connectors"
)

// Bounds on what an upstream sends that is kept.
const (
	maxGroups   = 256
	maxGroupLen = 256
	maxSubject  = 255
)

// Reasons of refusals that are not the connector's.
const (
	reasonNotLinked = "not_linked"
	reasonDisabled  = "disabled"
)

const msgNotLinked = "Your %s account is not linked to an nsauth account. Ask an administrator to link it: " +
	"nsauth users link USERNAME --connector %s --subject %s"

// signIn finds (or creates, when c creates users) the nsauth user id is
// bound to, records the sign-in, and returns the user with the amr of the
// login. Refusals are *connector.Refusal (not linked, disabled here).
func (f *Flow) signIn(ctx context.Context, c *store.Connector, id connector.Identity) (*store.User, []string, error) {
	if id.Subject == "" || len(id.Subject) > maxSubject {
		return nil, nil, connector.Refused(connector.ReasonMalformed, "The sign-in's answer did not say who signed in.")
	}
	user, err := f.userOf(ctx, c, id)
	if err != nil {
		return nil, nil, err
	}
	if user.Disabled() {
		return nil, nil, connector.Refused(reasonDisabled, "Your nsauth account is disabled.")
	}
	if err := f.cfg.Store.RecordIdentityLogin(ctx, c.Name, id.Subject, groupsOf(c.Name, id.Groups), id.State, f.cfg.Now()); err != nil {
		return nil, nil, fmt.Errorf("recording a connector sign-in: %w", err)
	}
	if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Subject: user.ID, Username: user.Username, Target: c.Name}); err != nil {
		return nil, nil, err
	}
	return user, amrOf(c, id.AMR), nil
}

// userOf is the user bound to (c, id.Subject): never found by email or
// name. Without a binding, c.CreateUsers creates one; otherwise the
// refusal names the command that links it.
func (f *Flow) userOf(ctx context.Context, c *store.Connector, id connector.Identity) (*store.User, error) {
	bound, err := f.cfg.Store.IdentityBySubject(ctx, c.Name, id.Subject)
	switch {
	case err == nil:
		u, err := f.cfg.Store.UserByID(ctx, bound.UserID)
		if err != nil {
			return nil, fmt.Errorf("reading a connector's user: %w", err)
		}
		return u, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("reading an identity: %w", err)
	case !c.CreateUsers:
		return nil, connector.Refused(reasonNotLinked, fmt.Sprintf(msgNotLinked, displayName(c), c.Name, id.Subject))
	}
	return f.createUser(ctx, c, id)
}

// maxNameTries bounds the usernames tried for a created user.
const maxNameTries = 20

// createUser creates the user of a first sign-in through c, without a
// password. The username is the upstream's, normalised (else the email's
// local part, else "user"); when taken, "-NAME", then "-NAME-2"... is
// appended: an existing account is never the one bound.
func (f *Flow) createUser(ctx context.Context, c *store.Connector, id connector.Identity) (*store.User, error) {
	base := baseUsername(id)
	for n := 1; n <= maxNameTries; n++ {
		name := candidate(base, c.Name, n)
		u := &store.User{Username: name, Name: id.Name, Email: id.Email}
		ident := &store.Identity{Connector: c.Name, Subject: id.Subject}
		err := f.cfg.Store.CreateUserWithIdentity(ctx, u, ident)
		if err == nil {
			if err := f.cfg.Events.Record(ctx, audit.Event{Type: audit.UserChanged, Subject: u.ID, Username: u.Username, Reason: "added", Target: c.Name}); err != nil {
				return nil, err
			}
			return u, nil
		}
		if errors.Is(err, connectors.ErrIdentityBound) {
			// Bound meanwhile (two first sign-ins at once): that user.
			bound, err := f.cfg.Store.IdentityBySubject(ctx, c.Name, id.Subject)
			if err != nil {
				return nil, fmt.Errorf("reading an identity: %w", err)
			}
			return f.cfg.Store.UserByID(ctx, bound.UserID)
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("creating a connector's user: %w", err)
		}
	}
	return nil, fmt.Errorf("no free username for a user of connector %s", c.Name)
}

func baseUsername(id connector.Identity) string {
	if n, err := store.NormalizeUsername(id.Username); err == nil {
		return n
	}
	if local, _, ok := strings.Cut(id.Email, "@"); ok {
		if n, err := store.NormalizeUsername(local); err == nil {
			return n
		}
	}
	return "user"
}

// candidate is the nth username tried: base, base-NAME, base-NAME-2...,
// within the username's length.
func candidate(base, connectorName string, n int) string {
	suffix := ""
	switch {
	case n == 2:
		suffix = "-" + connectorName
	case n > 2:
		suffix = fmt.Sprintf("-%s-%d", connectorName, n-1)
	}
	if len(base)+len(suffix) > store.MaxUsernameLen {
		base = base[:store.MaxUsernameLen-len(suffix)]
	}
	return base + suffix
}

// groupsOf prefixes the upstream's groups with the connector's name,
// bounded.
func groupsOf(name string, groups []string) []string {
	var out []string
	for _, g := range groups {
		if g == "" || len(g) > maxGroupLen {
			continue
		}
		if out = append(out, name+":"+g); len(out) == maxGroups {
			break
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Methods of RFC 8176 that are a second factor, or prove more than a
// password: an upstream amr holding one says it did a second factor.
var secondFactorAMR = []string{"mfa", "otp", "hwk", "swk", "sms", "tel", "face", "fpt", "iris", "retina", "vbm", "sc"}

// registeredAMR are RFC 8176's registered values.
var registeredAMR = []string{"face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia"}

// amrOf is the amr of a sign-in through c: an LDAP password is "pwd"; an
// upstream's sign-in "fed", with "mfa" (and the upstream's registered
// values) only when c trusts the upstream's second factor and its amr
// says it did one.
func amrOf(c *store.Connector, upstream []string) []string {
	if c.Type == store.ConnectorLDAP {
		return []string{"pwd"}
	}
	amr := []string{"fed"}
	if !c.TrustUpstreamMFA || !slices.ContainsFunc(upstream, func(v string) bool { return slices.Contains(secondFactorAMR, v) }) {
		return amr
	}
	amr = append(amr, "mfa")
	for _, v := range upstream {
		if slices.Contains(registeredAMR, v) && !slices.Contains(amr, v) {
			amr = append(amr, v)
		}
	}
	return amr
}
