package issuer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/clientaddr"
	"github.com/nsauth/nsauth/internal/issuer/attempts"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
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

// deviceResponseType marks a sealed login request as a device login; the
// authorize endpoint accepts only "code", so no other request carries it.
const deviceResponseType = "nsauth-device"

// maxDeviceFormBytes bounds the device pages' form bodies: a ticket, a
// CSRF token and a user code.
const maxDeviceFormBytes = 8 << 10

// codeCounter prefixes the key of a client address's code-entry counter.
const codeCounter = "code:"

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

// showDeviceEntry renders the code-entry form. It reads nothing from the
// store, so it costs no more than the login page.
func (i *Issuer) showDeviceEntry(w http.ResponseWriter, r *http.Request) {
	typed := r.URL.Query().Get("user_code")
	if len(typed) > 4*userCodeLen {
		typed = ""
	}
	csrf := i.csrf.Cookie(w, r)
	i.render(w, http.StatusOK, "device.html", deviceEntryPage{Title: "Connect a device", CSRF: csrf, UserCode: typed}, "")
}

// submitDeviceEntry checks a user code and sends the browser to log in
// for its device authorization.
func (i *Issuer) submitDeviceEntry(w http.ResponseWriter, r *http.Request) {
	page := deviceEntryPage{Title: "Connect a device"}
	ctx := r.Context()
	// refused records a refused entry (never the code typed): false when
	// the event was required and not recorded, and the answer is written.
	refused := func(reason string) bool {
		if i.events.Refusal(ctx, audit.Event{Type: audit.DeviceCodeRefused, Outcome: audit.Failure, Reason: reason}) != nil {
			i.message(w, http.StatusInternalServerError, page.Title, msgInternal)
			return false
		}
		return true
	}
	page.CSRF = web.Token(r)
	typed := r.PostForm.Get("user_code")
	if len(typed) <= 4*userCodeLen {
		page.UserCode = typed
	}
	address := clientaddr.Label(clientaddr.Key(i.cfg.Clients.FromRequest(r)))
	att := attempts.Attempt{Address: address, Counters: []store.AttemptCounter{{Key: codeCounter + address}}}
	tooMany := func(reason string, retryAt time.Time) {
		if !refused(reason) {
			return
		}
		if ok, suppressed := i.refusals.Allow(); ok {
			i.log.WarnContext(ctx, "device code entry refused: too many attempts", "client_address", address,
				"until", retryAt.UTC().Format(time.RFC3339), "suppressed_since_last", suppressed)
		}
		page.Error = fmt.Sprintf(msgTooManyCodes, i.retryAfter(w, retryAt))
		i.render(w, http.StatusTooManyRequests, "device.html", page, "")
	}
	done, ok := i.guard.Enter(att)
	if !ok {
		// As many entries as the limit allows are being checked now: this
		// one could not have a place, whatever they find.
		tooMany(reasonRateLimited, i.cfg.Now().Add(time.Second))
		return
	}
	defer done()
	res, err := i.guard.Reserve(ctx, att)
	if err != nil {
		i.log.ErrorContext(ctx, "counting a device code entry failed", "error", err)
		page.Error = msgInternal
		i.render(w, http.StatusInternalServerError, "device.html", page, "")
		return
	}
	if !res.OK {
		tooMany(reasonLocked, res.RetryAt)
		return
	}

	var d *store.DeviceAuthorization
	if code, valid := normalizeUserCode(typed); valid {
		d, err = i.st.PendingDeviceAuthorization(ctx, code)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			i.guard.Release(ctx, att)
			i.log.ErrorContext(ctx, "reading a device authorization failed", "error", err)
			page.Error = msgInternal
			i.render(w, http.StatusInternalServerError, "device.html", page, "")
			return
		}
	}
	if d == nil {
		// The code is not logged: a near miss of a real one is worth
		// something to whoever reads the logs.
		i.log.InfoContext(ctx, "wrong device code entered", "client_address", address)
		if !refused("wrong_code") {
			return
		}
		page.Error = msgWrongUserCode
		if res.Remaining == 0 {
			page.Error += " " + fmt.Sprintf(msgTooManyCodes, i.retryAfter(w, res.RetryAt))
		}
		i.render(w, http.StatusBadRequest, "device.html", page, "")
		return
	}
	// A right code does not count against the address.
	i.guard.Release(ctx, att)

	login := store.AuthRequest{ClientID: d.ClientID, Scopes: d.Scopes, State: d.ID, ResponseType: deviceResponseType}
	sealed, err := i.sealer.seal(&login)
	if err != nil {
		i.log.ErrorContext(ctx, "sealing a device login failed", "error", err)
		i.message(w, http.StatusInternalServerError, page.Title, msgInternal)
		return
	}
	http.Redirect(w, r, loginPath+"?authRequestID="+sealed, http.StatusSeeOther)
}

// isDeviceLogin reports whether a sealed login request is a device's.
func isDeviceLogin(ar *store.AuthRequest) bool { return ar.ResponseType == deviceResponseType }

// showDeviceApproval answers a successful login for a device: the page
// where the user approves or denies it. It is the step after login, so
// whatever the login page comes to require (more factors) applies to
// device logins too.
func (i *Issuer) showDeviceApproval(w http.ResponseWriter, ctx context.Context, ar *store.AuthRequest, user *store.User, amr []string, csrf string) {
	const title = "Approve device login"
	d, err := i.st.DeviceAuthorizationByID(ctx, ar.State)
	switch {
	case errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "reading a device authorization failed", "error", err)
		i.message(w, http.StatusInternalServerError, title, msgInternal)
		return
	case d.State != store.DevicePending || d.Expired(i.cfg.Now()):
		i.message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	}
	now := i.cfg.Now()
	// The ticket is good as long as the authorization; the decision is
	// checked against the stored expiry anyway.
	t := deviceTicket{ID: d.ID, UserID: user.ID, Username: user.Username, AuthTime: now, AMR: amr,
		Expires: d.ExpiresAt, CSRF: csrfDigest(csrf)}
	page := deviceApprovalPage{Title: title, Client: d.ClientID, Username: user.Username,
		Ticket: i.sealer.sealBytes(t.encode(), deviceTicketPurpose), CSRF: csrf}
	for _, sc := range d.Scopes {
		page.Scopes = append(page.Scopes, scopeLine{Name: sc, Description: scopeDescriptions[sc]})
	}
	i.log.InfoContext(ctx, "login for a device", "username", user.Username, "client_id", d.ClientID)
	i.render(w, http.StatusOK, "device_approve.html", page, "")
}

// submitDeviceDecision records the approval page's answer.
func (i *Issuer) submitDeviceDecision(w http.ResponseWriter, r *http.Request) {
	const title = "Approve device login"
	csrf := web.Token(r)
	var approve bool
	switch r.PostForm.Get("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		i.message(w, http.StatusBadRequest, title, msgDeviceBadAnswer)
		return
	}
	t, err := i.openTicket(r.PostForm.Get("ticket"), csrf)
	switch {
	case errors.Is(err, errRequestExpired):
		i.message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		i.message(w, http.StatusBadRequest, title, msgDeviceBadAnswer)
		return
	}
	ctx := r.Context()
	d, err := i.st.DecideDeviceAuthorization(ctx, t.ID, approve, t.UserID, t.AuthTime, t.AMR)
	switch {
	case errors.Is(err, store.ErrConflict):
		i.message(w, http.StatusConflict, title, msgDeviceDecided)
		return
	case errors.Is(err, store.ErrNotFound):
		i.message(w, http.StatusBadRequest, title, msgDeviceGone)
		return
	case err != nil:
		i.log.ErrorContext(ctx, "recording a device decision failed", "error", err)
		i.message(w, http.StatusInternalServerError, title, msgInternal)
		return
	}
	e := audit.Event{Type: audit.DeviceDenied, Subject: t.UserID, Username: t.Username, ClientID: d.ClientID, Refs: i.events.Refs(audit.RefGrant, t.ID)}
	if approve {
		e.Type = audit.DeviceApproved
	}
	if err := i.events.Record(ctx, e); err != nil {
		i.message(w, http.StatusInternalServerError, title, msgInternal)
		return
	}
	if approve {
		i.log.InfoContext(ctx, "device login approved", "username", t.Username, "client_id", d.ClientID)
		i.message(w, http.StatusOK, "Device approved", msgDeviceApproved)
		return
	}
	i.log.InfoContext(ctx, "device login denied", "username", t.Username, "client_id", d.ClientID)
	i.message(w, http.StatusOK, "Device login denied", msgDeviceDenied)
}

// deviceTicket says that a user logged in to decide on a device
// authorization, in the browser holding the CSRF token whose digest it
// carries. It travels sealed in the approval form.
type deviceTicket struct {
	ID       string
	UserID   string
	Username string
	AuthTime time.Time
	AMR      []string
	Expires  time.Time
	CSRF     []byte
}

// deviceTicketPurpose is a ticket's additional data: nothing sealed for
// another purpose (a pending auth request) opens as a ticket.
const deviceTicketPurpose = "nsauth device ticket v1"

func csrfDigest(csrf string) []byte {
	sum := sha256.Sum256([]byte("nsauth device ticket csrf\x00" + csrf))
	return sum[:]
}

func (t *deviceTicket) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(t.Expires.UnixMilli()))
	b = binary.AppendUvarint(b, uint64(t.AuthTime.UnixMilli()))
	for _, f := range []string{t.ID, t.UserID, t.Username, string(t.CSRF)} {
		b = appendString(b, f)
	}
	b = binary.AppendUvarint(b, uint64(len(t.AMR)))
	for _, v := range t.AMR {
		b = appendString(b, v)
	}
	return b
}

// openTicket opens a sealed ticket and checks that it is unexpired and
// was issued to the browser whose CSRF token is csrf.
func (i *Issuer) openTicket(sealed, csrf string) (*deviceTicket, error) {
	plain, err := i.sealer.openBytes(sealed, deviceTicketPurpose)
	if err != nil {
		return nil, err
	}
	d := decoder{b: plain}
	t := &deviceTicket{Expires: time.UnixMilli(int64(min(d.uvarint(), 1<<62))), AuthTime: time.UnixMilli(int64(min(d.uvarint(), 1<<62)))}
	t.ID, t.UserID, t.Username = d.string(), d.string(), d.string()
	t.CSRF = []byte(d.string())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return nil, errRequestMalformed
	}
	for range n {
		t.AMR = append(t.AMR, d.string())
	}
	if d.bad || len(d.b) != 0 || t.ID == "" || t.UserID == "" {
		return nil, errRequestMalformed
	}
	if subtle.ConstantTimeCompare(t.CSRF, csrfDigest(csrf)) != 1 {
		return nil, errRequestMalformed
	}
	if !i.cfg.Now().Before(t.Expires) {
		return nil, errRequestExpired
	}
	return t, nil
}

// sealBytes seals plain for purpose under the auth request key, base64url:
// nonce, then ciphertext and tag.
func (s *requestSealer) sealBytes(plain []byte, purpose string) string {
	out := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(out)
	out = s.aead.Seal(out, out, plain, []byte(purpose))
	return base64.RawURLEncoding.EncodeToString(out)
}

// openBytes opens what sealBytes sealed for purpose, or fails with
// errRequestMalformed.
func (s *requestSealer) openBytes(blob, purpose string) ([]byte, error) {
	if len(blob) > maxDeviceFormBytes {
		return nil, errRequestMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(blob)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errRequestMalformed
	}
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(purpose))
	if err != nil {
		return nil, errRequestMalformed
	}
	return plain, nil
}
