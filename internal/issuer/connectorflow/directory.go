package connectorflow

import (
	"context"
	"errors"
	"fmt"

	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/store"
)

// LoginWithDirectory checks username and password with the LDAP connector
// name, for the login page's password form (authflow.DirectoryLogin),
// which counts and limits the attempt as for a local password. Every
// refusal wraps authflow.ErrWrongCredentials and a *connector.Refusal.
func (f *Flow) LoginWithDirectory(ctx context.Context, name, username, password string) (*store.User, error) {
	pc, c, err := build[connector.PasswordChecker](ctx, f, name)
	if errors.Is(err, errUnavailable) {
		return nil, fmt.Errorf("%w: %w", authflow.ErrWrongCredentials, connector.Refused(reasonUnavailable, "not available"))
	}
	if err != nil {
		return nil, err
	}
	id, err := pc.Login(ctx, username, password)
	if connector.ReasonOf(err) != "" {
		return nil, fmt.Errorf("%w: %w", authflow.ErrWrongCredentials, err)
	}
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", c.Name, err)
	}
	user, _, err := f.signIn(ctx, c, id)
	if connector.ReasonOf(err) != "" {
		return nil, fmt.Errorf("%w: %w", authflow.ErrWrongCredentials, err)
	}
	return user, err
}

// MayRefresh reports whether the user may still get tokens by refresh,
// as far as the directories say (storage.UpstreamCheck): for each of the
// user's identities of an LDAP connector not checked within the
// connector's interval, the directory is asked. False when one says the
// user is gone, or its connector is gone or disabled; an error when a
// directory cannot answer, never a silent yes.
func (f *Flow) MayRefresh(ctx context.Context, userID string) (bool, error) {
	ids, err := f.cfg.Store.IdentitiesOfUser(ctx, userID)
	if err != nil {
		return false, fmt.Errorf("reading the user's identities: %w", err)
	}
	for _, id := range ids {
		c, err := f.cfg.Store.ConnectorByName(ctx, id.Connector)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted with its identities since the read
		}
		if err != nil {
			return false, fmt.Errorf("reading connector %s: %w", id.Connector, err)
		}
		if c.Type != store.ConnectorLDAP {
			continue
		}
		pc, _, err := build[connector.PasswordChecker](ctx, f, c.Name)
		if errors.Is(err, errUnavailable) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		now := f.cfg.Now()
		if !id.CheckedAt.IsZero() && now.Sub(id.CheckedAt) < pc.CheckInterval() {
			continue
		}
		err = pc.Check(ctx, id.Subject, id.State)
		if connector.ReasonOf(err) != "" {
			f.cfg.Log.InfoContext(ctx, "refresh refused: the directory no longer lets the user sign in", "connector", c.Name, "reason", connector.ReasonOf(err))
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("connector %s: %w", c.Name, err)
		}
		if err := f.cfg.Store.SetIdentityChecked(ctx, c.Name, id.Subject, now); err != nil {
			return false, fmt.Errorf("noting a directory check: %w", err)
		}
	}
	return true, nil
}
