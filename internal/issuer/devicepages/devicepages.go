// Package devicepages serves the device flow's pages: the form where a
// person enters the code their device shows, and the page where, after
// logging in, they approve or deny that device.
package devicepages

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/events"
	"github.com/nsauth/nsauth/internal/issuer/web"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The device flow's pages. They keep the login page's rules: no
// JavaScript, the login CSP, CSRF double-submit tokens, html/template
// escaping and no caching.
//
//  1. GET /device shows the code-entry form, filled in from ?user_code=
//     (verification_uri_complete) but never submitted by itself: a link
//     cannot approve anything.
//  2. POST /device takes a place in the client address's code counter
//     (wrong codes keep it, a right one gives it back), finds the pending
//     authorization, and sends the browser to the login page with a sealed
//     request marked as a device login.
//  3. The login page is the one every login goes through. When it
//     succeeds for a device login, it answers with the approval page
//     instead of a redirect to a client: the client, the scopes and the
//     account, with Approve and Deny. The form carries a sealed ticket
//     saying who logged in, bound to the browser's CSRF token.
//  4. POST /device/decision records the decision once; a denial ends the
//     login (the device's next poll gets access_denied).

// Messages of the device pages.
const (
	msgWrongUserCode   = "That code is not valid, or it has expired or was already used. Check the code your device shows and try again."
	msgTooManyCodes    = "Too many codes were entered from your network. Try again in %s."
	msgDeviceGone      = "This device login has expired or was already approved or denied. Start the login again on your device."
	msgDeviceDecided   = "This device login was already approved or denied. Start the login again on your device if you need to."
	msgDeviceApproved  = "Device approved. You can close this window: your device will finish signing in."
	msgDeviceDenied    = "Device login denied. The device will not be signed in. You can close this window."
	msgDeviceBadAnswer = "This answer could not be read. Start the login again on your device."
)

// ResponseType marks a sealed login request as a device login; the
// authorize endpoint accepts only "code", so no other request carries it.
const ResponseType = "nsauth-device"

// IsDeviceLogin reports whether a sealed login request is a device's.
func IsDeviceLogin(ar *store.AuthRequest) bool { return ar.ResponseType == ResponseType }

// MaxFormBytes bounds the device pages' form bodies: a ticket, a CSRF
// token and a user code.
const MaxFormBytes = 8 << 10

// Reasons of refused code entries (audit.DeviceCodeRefused), besides
// "wrong_code".
const (
	reasonRateLimited = "rate_limited" // as many entries as allowed were being checked
	reasonLocked      = "locked"       // the address's counter was full
)

// codeCounter prefixes the key of a client address's code-entry counter.
const codeCounter = "code:"

// Errors of Sealer.OpenTicket and of the tickets it opens.
var (
	// ErrMalformed: the ticket does not open, or is not this browser's.
	ErrMalformed = errors.New("malformed device ticket")
	// ErrExpired: the ticket outlived its device authorization.
	ErrExpired = errors.New("device ticket expired")
)

// Store is the storage the pages need.
type Store interface {
	PendingDeviceAuthorization(ctx context.Context, userCode string) (*store.DeviceAuthorization, error)
	DeviceAuthorizationByID(ctx context.Context, id string) (*store.DeviceAuthorization, error)
	DecideDeviceAuthorization(ctx context.Context, id string, approve bool, userID string, authTime time.Time, amr []string) (*store.DeviceAuthorization, error)
}

// Sealer seals what the pages hand the browser: the login request the
// code entry leads to, and the approval form's ticket.
type Sealer interface {
	// SealLogin seals a pending login request, as the authorize
	// endpoint does.
	SealLogin(ar *store.AuthRequest) (string, error)
	SealTicket(t *Ticket) string
	// OpenTicket opens what SealTicket sealed, or fails with
	// ErrMalformed.
	OpenTicket(sealed string) (*Ticket, error)
}

// Config holds the pages' dependencies. Every field is required.
type Config struct {
	Store  Store
	Sealer Sealer
	// Guard counts code entries per client address, on the login limits.
	Guard  *attempts.Guard
	Events *events.Recorder
	Pages  web.Renderer
	CSRF   web.CSRF
	// Clients resolves a request's client address.
	Clients *clientaddr.Resolver
	// Refusals throttles the log lines of refused entries.
	Refusals *attempts.RefusalLog
	Now      func() time.Time
	Log      *slog.Logger
	// LoginPath is where a right code sends the browser to log in.
	LoginPath string
	// NormalizeUserCode returns the stored spelling of a typed user code,
	// or false when it cannot be one; MaxTyped bounds what is kept of
	// what was typed.
	NormalizeUserCode func(typed string) (string, bool)
	MaxTyped          int
}

// Pages serves the device pages.
type Pages struct {
	st        Store
	sealer    Sealer
	guard     *attempts.Guard
	events    *events.Recorder
	pages     web.Renderer
	csrf      web.CSRF
	clients   *clientaddr.Resolver
	refusals  *attempts.RefusalLog
	now       func() time.Time
	log       *slog.Logger
	loginPath string
	normalize func(string) (string, bool)
	maxTyped  int
}

// New returns the pages.
func New(c Config) *Pages {
	return &Pages{st: c.Store, sealer: c.Sealer, guard: c.Guard, events: c.Events, pages: c.Pages, csrf: c.CSRF, clients: c.Clients,
		refusals: c.Refusals, now: c.Now, log: c.Log, loginPath: c.LoginPath, normalize: c.NormalizeUserCode, maxTyped: c.MaxTyped}
}

type deviceEntryPage struct {
	Title    string
	Error    string
	CSRF     string
	UserCode string
}

type scopeLine struct {
	Name, Description string
}

type deviceApprovalPage struct {
	Title    string
	Client   string
	Username string
	Scopes   []scopeLine
	Ticket   string
	CSRF     string
}

// scopeDescriptions say in words what the standard scopes give a client.
var scopeDescriptions = map[string]string{
	oidc.ScopeOpenID:        "sign you in with your account",
	oidc.ScopeProfile:       "see your name and username",
	oidc.ScopeEmail:         "see your email address",
	oidc.ScopeOfflineAccess: "stay signed in (refresh tokens)",
}

// ScopeDescription says in words what a standard scope gives a client;
// "" for another scope. The consent page says the same (package authflow).
func ScopeDescription(scope string) string { return scopeDescriptions[scope] }

// ShowEntry renders the code-entry form. It reads nothing from the
// store, so it costs no more than the login page.
func (p *Pages) ShowEntry(w http.ResponseWriter, r *http.Request) {
	typed := r.URL.Query().Get("user_code")
	if len(typed) > p.maxTyped {
		typed = ""
	}
	csrf := p.csrf.Cookie(w, r)
	p.pages.Render(w, http.StatusOK, "device.html", deviceEntryPage{Title: "Connect a device", CSRF: csrf, UserCode: typed}, "")
}

// SubmitEntry checks a user code and sends the browser to log in
// for its device authorization.
func (p *Pages) SubmitEntry(w http.ResponseWriter, r *http.Request) {
	page := deviceEntryPage{Title: "Connect a device"}
	ctx := r.Context()
	// refused records a refused entry (never the code typed): false when
	// the event was required and not recorded, and the answer is written.
	refused := func(reason string) bool {
		if p.events.Refusal(ctx, audit.Event{Type: audit.DeviceCodeRefused, Outcome: audit.Failure, Reason: reason}) != nil {
			p.pages.Message(w, http.StatusInternalServerError, page.Title, web.MsgInternal)
			return false
		}
		return true
	}
	page.CSRF = web.Token(r)
	typed := r.PostForm.Get("user_code")
	if len(typed) <= p.maxTyped {
		page.UserCode = typed
	}
	address := clientaddr.Label(clientaddr.Key(p.clients.FromRequest(r)))
	att := attempts.Attempt{Address: address, Counters: []store.AttemptCounter{{Key: codeCounter + address}}}
	tooMany := func(reason string, retryAt time.Time) {
		if !refused(reason) {
			return
		}
		if ok, suppressed := p.refusals.Allow(); ok {
			p.log.WarnContext(ctx, "device code entry refused: too many attempts", "client_address", address,
				"until", retryAt.UTC().Format(time.RFC3339), "suppressed_since_last", suppressed)
		}
		page.Error = fmt.Sprintf(msgTooManyCodes, web.RetryAfter(w, p.now(), retryAt))
		p.pages.Render(w, http.StatusTooManyRequests, "device.html", page, "")
	}
	done, ok := p.guard.Enter(att)
	if !ok {
		// As many entries as the limit allows are being checked now: this
		// one could not have a place, whatever they find.
		tooMany(reasonRateLimited, p.now().Add(time.Second))
		return
	}
	defer done()
	res, err := p.guard.Reserve(ctx, att)
	if err != nil {
		p.log.ErrorContext(ctx, "counting a device code entry failed", "error", err)
		page.Error = web.MsgInternal
		p.pages.Render(w, http.StatusInternalServerError, "device.html", page, "")
		return
	}
	if !res.OK {
		tooMany(reasonLocked, res.RetryAt)
		return
	}

	var d *store.DeviceAuthorization
	if code, valid := p.normalize(typed); valid {
		d, err = p.st.PendingDeviceAuthorization(ctx, code)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			p.guard.Release(ctx, att)
			p.log.ErrorContext(ctx, "reading a device authorization failed", "error", err)
			page.Error = web.MsgInternal
			p.pages.Render(w, http.StatusInternalServerError, "device.html", page, "")
			return
		}
	}
	if d == nil {
		// The code is not logged: a near miss of a real one is worth
		// something to whoever reads the logs.
		p.log.InfoContext(ctx, "wrong device code entered", "client_address", address)
		if !refused("wrong_code") {
			return
		}
		page.Error = msgWrongUserCode
		if res.Remaining == 0 {
			page.Error += " " + fmt.Sprintf(msgTooManyCodes, web.RetryAfter(w, p.now(), res.RetryAt))
		}
		p.pages.Render(w, http.StatusBadRequest, "device.html", page, "")
		return
	}
	// A right code does not count against the address.
	p.guard.Release(ctx, att)

	login := store.AuthRequest{ClientID: d.ClientID, Scopes: d.Scopes, State: d.ID, ResponseType: ResponseType}
	sealed, err := p.sealer.SealLogin(&login)
	if err != nil {
		p.log.ErrorContext(ctx, "sealing a device login failed", "error", err)
		p.pages.Message(w, http.StatusInternalServerError, page.Title, web.MsgInternal)
		return
	}
	http.Redirect(w, r, p.loginPath+"?authRequestID="+sealed, http.StatusSeeOther)
}

// ShowApproval answers a successful login for a device: the page
// where the user approves or denies it. It is the step after login, so
// whatever the login page comes to require (more factors) applies to
// device logins too.
func (p *Pages) ShowApproval(w http.ResponseWriter, ctx context.Context, ar *store.AuthRequest, user *store.User, amr []string, csrf string) {
	const title = "Approve device login"
	d, err := p.st.DeviceAuthorizationByID(ctx, ar.State)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		p.log.ErrorContext(ctx, "reading a device authorization failed", "error", err)
		p.pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	case d.State != store.DevicePending || d.Expired(p.now()):
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	}
	now := p.now()
	// The ticket is good as long as the authorization; the decision is
	// checked against the stored expiry anyway.
	t := Ticket{ID: d.ID, UserID: user.ID, Username: user.Username, AuthTime: now, AMR: amr,
		Expires: d.ExpiresAt, CSRF: csrfDigest(csrf)}
	page := deviceApprovalPage{Title: title, Client: d.ClientID, Username: user.Username,
		Ticket: p.sealer.SealTicket(&t), CSRF: csrf}
	for _, sc := range d.Scopes {
		page.Scopes = append(page.Scopes, scopeLine{Name: sc, Description: scopeDescriptions[sc]})
	}
	p.log.InfoContext(ctx, "login for a device", "username", user.Username, "client_id", d.ClientID)
	p.pages.Render(w, http.StatusOK, "device_approve.html", page, "")
}

// SubmitDecision records the approval page's answer.
func (p *Pages) SubmitDecision(w http.ResponseWriter, r *http.Request) {
	const title = "Approve device login"
	csrf := web.Token(r)
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceBadAnswer)
		return
	}
	t, err := p.openTicket(r.PostForm.Get("ticket"), csrf)
	switch {
	case errors.Is(err, ErrExpired):
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceBadAnswer)
		return
	}
	ctx := r.Context()
	d, err := p.st.DecideDeviceAuthorization(ctx, t.ID, approve, t.UserID, t.AuthTime, t.AMR)
	switch {
	case errors.Is(err, store.ErrConflict):
		p.pages.Message(w, http.StatusConflict, title, msgDeviceDecided)
		return
	case errors.Is(err, store.ErrNotFound):
		p.pages.Message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		p.log.ErrorContext(ctx, "recording a device decision failed", "error", err)
		p.pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	e := audit.Event{Type: audit.DeviceDenied, Subject: t.UserID, Username: t.Username, ClientID: d.ClientID, Refs: p.events.Refs(audit.RefGrant, t.ID)}
	if approve {
		e.Type = audit.DeviceApproved
	}
	if err := p.events.Record(ctx, e); err != nil {
		p.pages.Message(w, http.StatusInternalServerError, title, web.MsgInternal)
		return
	}
	if approve {
		p.log.InfoContext(ctx, "device login approved", "username", t.Username, "client_id", d.ClientID)
		p.pages.Message(w, http.StatusOK, "Device approved", msgDeviceApproved)
		return
	}
	p.log.InfoContext(ctx, "device login denied", "username", t.Username, "client_id", d.ClientID)
	p.pages.Message(w, http.StatusOK, "Device login denied", msgDeviceDenied)
}

// Ticket says that a user logged in to decide on a device
// authorization, in the browser holding the CSRF token whose digest it
// carries. It travels sealed in the approval form.
type Ticket struct {
	ID       string
	UserID   string
	Username string
	AuthTime time.Time
	AMR      []string
	Expires  time.Time
	CSRF     []byte
}

// csrfDigest is what a ticket keeps of the CSRF token of the browser it
// was issued to.
func csrfDigest(csrf string) []byte {
	sum := sha256.Sum256([]byte("nsauth device ticket csrf\x00" + csrf))
	return sum[:]
}

// openTicket opens a sealed ticket and checks that it is unexpired and
// was issued to the browser whose CSRF token is csrf.
func (p *Pages) openTicket(sealed, csrf string) (*Ticket, error) {
	t, err := p.sealer.OpenTicket(sealed)
	if err != nil {
		return nil, err
	}
	if t.ID == "" || t.UserID == "" || subtle.ConstantTimeCompare(t.CSRF, csrfDigest(csrf)) != 1 {
		return nil, ErrMalformed
	}
	if !p.now().Before(t.Expires) {
		return nil, ErrExpired
	}
	return t, nil
}
