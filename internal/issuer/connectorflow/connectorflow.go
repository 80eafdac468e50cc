package connectorflow

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/nsauth/nsauth/internal/connector"
	"github.com/nsauth/nsauth/internal/issuer/authflow"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Store is what the connectors' sign-ins need of the store.
type Store interface {
	ConnectorByName(ctx context.Context, name string) (*store.Connector, error)
	Connectors(ctx context.Context) ([]store.Connector, error)
	IdentityBySubject(ctx context.Context, connector, subject string) (*store.Identity, error)
	IdentitiesOfUser(ctx context.Context, userID string) ([]store.Identity, error)
	CreateUserWithIdentity(ctx context.Context, u *store.User, id *store.Identity) error
	RecordIdentityLogin(ctx context.Context, connector, subject string, groups []string, state string, at time.Time) error
	SetIdentityChecked(ctx context.Context, connector, subject string, at time.Time) error
	UserByID(ctx context.Context, id string) (*store.User, error)
	CreatePendingLogin(ctx context.Context, key string, p *store.PendingLogin) error
	TakePendingLogin(ctx context.Context, key string) (*store.PendingLogin, error)
	EnrolLinkUser(ctx context.Context, token string) (*store.User, error)
	TakeEnrolLink(ctx context.Context, token, userID string) error
}

// Login is the login flow a connector's sign-in goes on in
// (authflow.Flow).
type Login interface {
	OpenRequest(w http.ResponseWriter, ctx context.Context, id string) (*store.AuthRequest, bool)
	SignedIn(w http.ResponseWriter, r *http.Request, s authflow.FirstFactor)
}

// Builder makes the connector of a stored one (connector.Build by
// default; tests put fakes behind it).
type Builder func(c *store.Connector, env connector.Env) (any, error)

// Config is what a Flow needs. Every field is required unless its comment
// says otherwise.
type Config struct {
	Store Store
	// Issuer is the issuer URL: callbacks are ISSUER/login/connector/NAME/callback.
	Issuer string
	Events *events.Recorder
	Pages  web.Renderer
	CSRF   web.CSRF
	// HTTPClient reaches the upstreams; nil means the connectors' default.
	HTTPClient *http.Client
	// Build makes connectors; nil means connector.Build.
	Build Builder
	Now   func() time.Time
	Log   *slog.Logger
}

// Flow serves the connectors' sign-ins. Its methods are safe for
// concurrent use.
type Flow struct {
	cfg   Config
	login Login
	// built caches the connectors built, by name, while their stored
	// version (UpdatedAt) stands, for at most builtTTL: an OpenID
	// connector keeps its discovery document and keys.
	mu    sync.Mutex
	built map[string]builtConnector
}

type builtConnector struct {
	version, at time.Time
	c           any
}

// builtTTL bounds how long a built connector (its discovery) is reused.
const builtTTL = time.Hour

// New returns the Flow of cfg; Attach gives it the login flow.
func New(cfg Config) *Flow {
	if cfg.Build == nil {
		cfg.Build = func(c *store.Connector, env connector.Env) (any, error) {
			return connector.Build(c.Type, c.Settings, c.Secret, env)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Flow{cfg: cfg, built: map[string]builtConnector{}}
}

// Attach sets the login flow sign-ins go on in (built after f, which it
// takes as its authflow.Connectors).
func (f *Flow) Attach(l Login) { f.login = l }

// Paths of the connectors' pages.
const (
	StartPath    = "/login/connector"
	CallbackPath = "/login/connector/{name}/callback"
)

// PendingTTL is the longest a sign-in may wait at the upstream.
const PendingTTL = 10 * time.Minute

// maxFormBytes bounds the start form: the sealed auth request and room for
// the other fields.
const maxFormBytes = authflow.MaxAuthRequestIDLen + 4<<10

const title = "Sign in"

// Routes lists the connectors' pages.
func (f *Flow) Routes() []authflow.Route {
	return []authflow.Route{
		// Both behind the authorize endpoint's limit per client address: a
		// start stores a pending sign-in, a callback may reach the upstream.
		{Pattern: "POST " + StartPath, Limited: true, Form: &web.Form{Limit: maxFormBytes, Title: title}, Handler: http.HandlerFunc(f.start)},
		{Pattern: "GET " + CallbackPath, Limited: true, Handler: http.HandlerFunc(f.callback)},
	}
}

// CallbackURL is where the upstream sends the browser back for connector
// name: what its administrator registers upstream.
func CallbackURL(issuer, name string) string {
	return issuer + "/login/connector/" + name + "/callback"
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// LoginOptions lists the enabled connectors for the login page: the
// redirecting ones, and the LDAP ones.
func (f *Flow) LoginOptions(ctx context.Context) (buttons, directories []authflow.LoginOption, err error) {
	all, err := f.cfg.Store.Connectors(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range all {
		if c.Disabled() {
			continue
		}
		o := authflow.LoginOption{Name: c.Name, DisplayName: displayName(&c)}
		if c.Type == store.ConnectorLDAP {
			directories = append(directories, o)
		} else {
			buttons = append(buttons, o)
		}
	}
	return buttons, directories, nil
}

// UserOptions lists the enabled connectors userID is bound to, as
// LoginOptions does: what a password-less user proves themselves with on
// an enrolment link's page.
func (f *Flow) UserOptions(ctx context.Context, userID string) (buttons, directories []authflow.LoginOption, err error) {
	ids, err := f.cfg.Store.IdentitiesOfUser(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	all, moreDirs, err := f.LoginOptions(ctx)
	if err != nil {
		return nil, nil, err
	}
	bound := func(o authflow.LoginOption) bool {
		return slices.ContainsFunc(ids, func(id store.Identity) bool { return id.Connector == o.Name })
	}
	for _, o := range all {
		if bound(o) {
			buttons = append(buttons, o)
		}
	}
	for _, o := range moreDirs {
		if bound(o) {
			directories = append(directories, o)
		}
	}
	return buttons, directories, nil
}

func displayName(c *store.Connector) string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return c.Name
}

// errUnavailable: the connector does not exist, is disabled, or is not of
// the kind asked for.
var errUnavailable = errors.New("the connector is not available")

// build returns the enabled connector name, of type T, and the stored
// one. It fails with errUnavailable, or the store's or Build's error.
func build[T any](ctx context.Context, f *Flow, name string) (T, *store.Connector, error) {
	var zero T
	if !validName.MatchString(name) {
		return zero, nil, errUnavailable
	}
	c, err := f.cfg.Store.ConnectorByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return zero, nil, errUnavailable
	}
	if err != nil {
		return zero, nil, fmt.Errorf("reading connector %s: %w", name, err)
	}
	if c.Disabled() {
		return zero, c, errUnavailable
	}
	built, err := f.buildCached(c)
	if err != nil {
		return zero, c, fmt.Errorf("building connector %s: %w", name, err)
	}
	t, ok := built.(T)
	if !ok {
		return zero, c, errUnavailable
	}
	return t, c, nil
}

// buildCached builds c, or reuses what was built of the same version
// lately. The cache holds one entry per stored connector name.
func (f *Flow) buildCached(c *store.Connector) (any, error) {
	now := f.cfg.Now()
	f.mu.Lock()
	b, ok := f.built[c.Name]
	f.mu.Unlock()
	if ok && b.version.Equal(c.UpdatedAt) && now.Sub(b.at) < builtTTL {
		return b.c, nil
	}
	built, err := f.cfg.Build(c, connector.Env{Callback: CallbackURL(f.cfg.Issuer, c.Name), HTTPClient: f.cfg.HTTPClient, Now: f.cfg.Now})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.built[c.Name] = builtConnector{version: c.UpdatedAt, at: now, c: built}
	f.mu.Unlock()
	return built, nil
}

// derive is the nonce and the PKCE verifier of a sign-in whose state is
// state in the browser whose CSRF token is csrf: neither is stored, and
// only that browser can make them again.
func derive(state, csrf string) (nonce, verifier string) {
	mac := func(label string) string {
		h := hmac.New(sha256.New, []byte(csrf))
		h.Write([]byte(label + "\x00" + state))
		return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	}
	return mac("nsauth connector nonce"), mac("nsauth connector pkce verifier")
}

// pendingKey is what a pending sign-in is stored under.
func pendingKey(state, csrf string) string { return state + "." + csrf }
