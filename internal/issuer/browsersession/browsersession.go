// Package browsersession keeps the provider's browser session: the cookie
// a login leaves in the browser, so that the next authorization of any
// app (or of the same one, later) can complete without the password.
//
// The cookie (__Host-nsauth_session under https, nsauth_session under
// http; HttpOnly, SameSite=Lax so that it reaches the provider on an app's
// top-level navigation, Path=/) holds 32 random bytes; the store keeps
// only their digest. A session is bound to the browser that logged in: it
// records the device id of the device cookie the login gave the browser
// (package attempts), and a session cookie presented without that device
// cookie is neither used nor marked seen: only its own browser keeps it
// from idling out. A session ends when idle for IdleTimeout, after
// Lifetime, when its user is disabled, or when it is ended (sign-out,
// nsauth sessions revoke, a login replacing it in its browser: package
// authflow ends it).
package browsersession

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// Defaults of [Config].
const (
	DefaultIdleTimeout = 12 * time.Hour
	DefaultLifetime    = 7 * 24 * time.Hour
)

// tokenBytes is the size of a session cookie's value.
const tokenBytes = 32

// Store is the storage sessions need.
type Store interface {
	CreateSession(ctx context.Context, s *store.Session, token string) error
	SessionByToken(ctx context.Context, token string, idle time.Duration) (*store.Session, error)
	TouchSession(ctx context.Context, id, browser string, idle time.Duration) (*store.Session, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
}

// Devices finds the device id of the browser's device cookie for an
// account (attempts.Guard.DeviceOf).
type Devices interface {
	DeviceOf(r *http.Request, account string) (string, bool)
}

// Config configures a [Manager]. Store and Devices are required.
type Config struct {
	Store   Store
	Devices Devices
	// Secure: the issuer is https; the cookie is Secure and __Host-.
	Secure bool
	// IdleTimeout ends a session not used for that long; zero means
	// [DefaultIdleTimeout].
	IdleTimeout time.Duration
	// Lifetime ends a session that long after its login, however used;
	// zero means [DefaultLifetime].
	Lifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager reads, starts and clears browser sessions. It is safe for
// concurrent use.
type Manager struct {
	cfg Config
}

// New returns the Manager of cfg.
func New(cfg Config) *Manager {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{cfg: cfg}
}

// CookieName is the session cookie's name.
func (m *Manager) CookieName() string { return web.CookieName("nsauth_session", m.cfg.Secure) }

// Current returns the browser's live session, marked seen now: one that
// has not ended, expired or idled out, whose user is enabled, presented
// with the device cookie it is bound to. A session presented otherwise
// (a copied cookie, a disabled user) is not marked seen: its idle timer
// runs on. A store error counts as no session.
func (m *Manager) Current(r *http.Request) (*store.Session, bool) {
	s, _, err := m.CurrentUser(r)
	return s, err == nil
}

// ErrNoSession is what [Manager.CurrentUser] returns when the browser has
// no usable session; any other error is the store's.
var ErrNoSession = errors.New("no browser session")

// CurrentUser is [Manager.Current] with the session's user, and tells no
// session (ErrNoSession) from a store error.
func (m *Manager) CurrentUser(r *http.Request) (*store.Session, *store.User, error) {
	c, err := r.Cookie(m.CookieName())
	if err != nil || !web.IsRandomToken(c.Value, tokenBytes) {
		return nil, nil, ErrNoSession
	}
	ctx := r.Context()
	s, err := m.cfg.Store.SessionByToken(ctx, c.Value, m.cfg.IdleTimeout)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a browser session: %w", err)
	}
	u, err := m.cfg.Store.UserByID(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled() {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading a session's user: %w", err)
	}
	// Only now is it a use: the store marks it seen if this browser's
	// device cookie is the one it is bound to, so that a copied cookie
	// keeps nothing alive.
	dev, ok := m.cfg.Devices.DeviceOf(r, u.Username)
	if !ok {
		return nil, nil, ErrNoSession
	}
	s, err = m.cfg.Store.TouchSession(ctx, s.ID, dev, m.cfg.IdleTimeout)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, fmt.Errorf("marking a browser session seen: %w", err)
	}
	return s, u, nil
}

// Start begins a session for userID, who proved amr at authTime in the
// browser whose device id is browser, and gives the browser its cookie
// (replacing any other session's).
func (m *Manager) Start(w http.ResponseWriter, r *http.Request, userID string, amr []string, authTime time.Time, browser string) (*store.Session, error) {
	if browser == "" {
		return nil, errors.New("starting a browser session: no device id")
	}
	token := store.RandomToken(tokenBytes)
	s := &store.Session{UserID: userID, Browser: browser, AuthTime: authTime, AMR: amr, ExpiresAt: m.cfg.Now().Add(m.cfg.Lifetime)}
	if err := m.cfg.Store.CreateSession(r.Context(), s, token); err != nil {
		return nil, fmt.Errorf("starting a browser session: %w", err)
	}
	m.setCookie(w, token, int(s.ExpiresAt.Sub(m.cfg.Now())/time.Second))
	return s, nil
}

// Clear removes the session cookie from the browser. It does not end the
// session in the store (store.EndSession does).
func (m *Manager) Clear(w http.ResponseWriter) {
	m.setCookie(w, "", -1)
}

func (m *Manager) setCookie(w http.ResponseWriter, value string, maxAge int) {
	if maxAge == 0 {
		maxAge = -1
	}
	http.SetCookie(w, &http.Cookie{
		Name:     m.CookieName(),
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   m.cfg.Secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// IdleTimeout is how long an unused session lasts.
func (m *Manager) IdleTimeout() time.Duration { return m.cfg.IdleTimeout }

// Lifetime is how long a session lasts at most.
func (m *Manager) Lifetime() time.Duration { return m.cfg.Lifetime }
