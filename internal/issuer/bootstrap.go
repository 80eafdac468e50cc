package issuer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/store"
)

// DefaultAdminUser is the first-start administrator's username.
const DefaultAdminUser = "admin"

// DefaultClientID is the id of the client the broker acts as.
const DefaultClientID = "nsauth-cli"

// generatedPasswordLen is the length of a generated administrator
// password (about 137 bits).
const generatedPasswordLen = 24

// BootstrapConfig configures [Bootstrap].
type BootstrapConfig struct {
	// ClientID is the broker's client. Defaults to [DefaultClientID].
	ClientID string
	// AdminUser names the first-start administrator. Defaults to
	// [DefaultAdminUser].
	AdminUser string
	// AdminPassword is the administrator's password; empty means generate
	// one.
	AdminPassword string
}

// BootstrapResult says what [Bootstrap] found or did.
type BootstrapResult struct {
	// ClientID and ClientSecret are the broker's credentials.
	ClientID, ClientSecret string
	// AdminCreated is true on the first start, when the administrator was
	// created by this call.
	AdminCreated bool
	// AdminUser is the administrator's username.
	AdminUser string
	// GeneratedPassword is the administrator's password when this call
	// generated it. Show it to the operator once; it is stored only as a
	// hash.
	GeneratedPassword string
	// AdminPasswordIgnored is true when a password was configured but the
	// administrator had been created before, so it was not applied.
	AdminPasswordIgnored bool
}

// Bootstrap prepares a store for the provider: it registers the broker's
// client with a generated secret, and on the very first start creates the
// administrator. It is idempotent and safe to run from several processes
// at once: they agree on one secret, and one of them creates the
// administrator.
func Bootstrap(ctx context.Context, st *store.Store, cfg BootstrapConfig) (*BootstrapResult, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.AdminUser == "" {
		cfg.AdminUser = DefaultAdminUser
	}
	admin, err := store.NormalizeUsername(cfg.AdminUser)
	if err != nil {
		return nil, fmt.Errorf("administrator username: %w", err)
	}
	if cfg.AdminPassword != "" {
		if err := password.Validate(cfg.AdminPassword); err != nil {
			return nil, fmt.Errorf("administrator password: %w", err)
		}
	}

	secret, err := st.EnsureSecret(ctx, clientSecretPrefix+cfg.ClientID, store.RandomToken(32))
	if err != nil {
		return nil, fmt.Errorf("preparing the client secret: %w", err)
	}
	if _, err := st.EnsureClient(ctx, BrokerApp(cfg.ClientID, store.HashSecret(secret))); err != nil {
		return nil, fmt.Errorf("registering the client: %w", err)
	}
	c, err := st.ClientByID(ctx, cfg.ClientID)
	if err != nil {
		return nil, fmt.Errorf("reading the client: %w", err)
	}
	if !c.CheckSecret(secret) {
		return nil, fmt.Errorf("client %q is registered with a secret this installation does not know: delete it from the database or use another client id", cfg.ClientID)
	}
	res := &BootstrapResult{ClientID: cfg.ClientID, ClientSecret: secret, AdminUser: admin}

	if _, err := st.Value(ctx, "admin_bootstrapped"); err == nil {
		res.AdminPasswordIgnored = cfg.AdminPassword != ""
		return res, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading first-start state: %w", err)
	}
	pw := cfg.AdminPassword
	generated := pw == ""
	if generated {
		if pw, err = password.Generate(generatedPasswordLen); err != nil {
			return nil, err
		}
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return nil, err
	}
	created, err := st.CreateInitialAdmin(ctx, &store.User{Username: admin, Name: "Administrator", PasswordHash: hash})
	if err != nil {
		return nil, fmt.Errorf("creating the administrator: %w", err)
	}
	res.AdminCreated = created
	if created && generated {
		res.GeneratedPassword = pw
	}
	if !created && !generated {
		res.AdminPasswordIgnored = true
	}
	return res, nil
}

// BrokerApp is the broker's client as first registered: a native,
// first-party app with the code flow, refreshing and the device flow, and
// no post-logout redirect URIs (migration 0014 gives an existing one the
// same settings).
func BrokerApp(id string, secretHash []byte) *store.Client {
	return &store.Client{ID: id, SecretHash: secretHash, Native: true,
		GrantTypes: slices.Clone(store.BrokerGrantTypes)}
}
