package issuer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/web"
	"github.com/nsauth/nsauth/internal/store"
)

// The login page's defence against password guessing, after OWASP's
// "device cookies":
//
//   - Every attempt takes a place in its counters before the password is
//     checked (store.ReserveLoginAttempt, atomic across replicas), so no
//     burst of simultaneous requests checks more passwords than the limit.
//   - A browser that logged in to an account carries a device cookie for
//     it: the account, a random device id and an expiry, MACed with a key
//     kept in the store. Its attempts at that account are counted on that
//     device's own counter. Attempts from any other browser are counted on
//     the account's counter for unknown browsers and on the client
//     address's counter. A flood of wrong passwords for a username locks
//     out unknown browsers only; the owner's browser still gets in.
//   - Password hashing runs with bounded concurrency and a short queue;
//     an attempt that finds no room is refused at once, and gives its
//     places back, since no password was checked.

// DeviceCookieTTL is how long a device cookie proves that a browser logged
// in to an account. Every login renews it.
const DeviceCookieTTL = 90 * 24 * time.Hour

// deviceIDBytes is the size of a device id.
const deviceIDBytes = 16

// deviceKeyName is the instance value holding the device cookies' MAC key.
const deviceKeyName = "device_cookie_key"

// Counter key prefixes.
const (
	addressCounter = "addr:"
	accountCounter = "user:"
	deviceCounter  = "dev:"
)

// loginGuard counts login attempts and issues and checks device cookies.
type loginGuard struct {
	st     *store.Store
	max    int
	now    func() time.Time
	secure bool
	macKey []byte
	hash   *hashGate

	// inFlight counts, per counter, this process's attempts between their
	// reservation and their answer. No more than max of them can hold a
	// place, so an attempt that finds max in flight on one of its counters
	// is refused without a trip to the database: a burst of simultaneous
	// requests costs one query per place, not one per request.
	mu       sync.Mutex
	inFlight map[string]int
}

// attempt is one login attempt's place in the counters.
type attempt struct {
	account  string // the normalised username, "" when it is not one
	address  string // the client address's label
	device   string // the device id, when the browser proved it logged in to account
	counters []store.AttemptCounter
}

// newAttempt classifies an attempt: from a known device of the account,
// or from an unknown browser.
func (g *loginGuard) newAttempt(r *http.Request, username, address string) attempt {
	a := attempt{address: address}
	if name, err := store.NormalizeUsername(username); err == nil {
		a.account = name
	}
	if a.account != "" {
		if dev, ok := g.deviceOf(r, a.account); ok {
			a.device = dev
			a.counters = []store.AttemptCounter{{Key: deviceCounter + dev, Account: a.account}}
			return a
		}
	}
	// The address counter knows which account the attempt was at, so that
	// unlocking that account takes it off the address too.
	a.counters = []store.AttemptCounter{{Key: addressCounter + address, At: a.account}}
	if a.account != "" {
		a.counters = append(a.counters, store.AttemptCounter{Key: accountCounter + a.account, Account: a.account})
	}
	return a
}

// enter admits an attempt to reservation, or refuses it when one of its
// counters already has max attempts in flight here. The returned function
// ends the attempt.
func (g *loginGuard) enter(a attempt) (func(), bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range a.counters {
		if g.inFlight[c.Key] >= g.max {
			return nil, false
		}
	}
	for _, c := range a.counters {
		g.inFlight[c.Key]++
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range a.counters {
			if g.inFlight[c.Key]--; g.inFlight[c.Key] <= 0 {
				delete(g.inFlight, c.Key)
			}
		}
	}, true
}

func (g *loginGuard) reserve(ctx context.Context, a attempt) (store.Reservation, error) {
	return g.st.ReserveLoginAttempt(ctx, a.counters, g.max, LoginWindow)
}

// release gives back the places of an attempt whose password was never
// checked.
func (g *loginGuard) release(ctx context.Context, a attempt) {
	for _, c := range a.counters {
		_ = g.st.ReleaseLoginAttempt(context.WithoutCancel(ctx), c)
	}
}

// succeeded forgets the failures of the account (or of the device) that
// just logged in, and gives the address its place back. The address's
// earlier failures stay: a client guessing many accounts' passwords must
// not reset its count by logging in to one of them.
func (g *loginGuard) succeeded(ctx context.Context, a attempt) {
	ctx = context.WithoutCancel(ctx)
	if a.device != "" {
		_ = g.st.ClearLoginAttempts(ctx, deviceCounter+a.device)
		return
	}
	for _, c := range a.counters {
		if c.Account == "" {
			_ = g.st.ReleaseLoginAttempt(ctx, c) // the address's
		} else {
			_ = g.st.ClearLoginAttempts(ctx, c.Key) // the account's
		}
	}
}

// counterKind names a counter for logs: address, account or device.
func counterKind(key string) string {
	switch {
	case strings.HasPrefix(key, addressCounter):
		return "address"
	case strings.HasPrefix(key, accountCounter):
		return "account"
	case strings.HasPrefix(key, deviceCounter):
		return "device"
	}
	return "unknown"
}

// Device cookies. The value is "v1.<device id>.<expiry, Unix seconds>.<MAC>",
// the MAC (HMAC-SHA256) covering the account too, so a cookie proves
// nothing about any other account. One cookie per account, named after a
// MAC of the account so names reveal nothing.

func (g *loginGuard) cookieName(account string) string {
	return g.hostCookie("nsauth_device_" + g.accountTag(account))
}

// accountTag names account in cookies without revealing it: a MAC of the
// account, the same for every browser.
func (g *loginGuard) accountTag(account string) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth device cookie name\x00" + account))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// hostCookie is the name of a cookie of ours: __Host- under https.
func (g *loginGuard) hostCookie(name string) string {
	if g.secure {
		return "__Host-" + name
	}
	return name
}

func (g *loginGuard) deviceMAC(account, device string, expiry int64) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth device cookie v1\x00" + account + "\x00" + device + "\x00" + strconv.FormatInt(expiry, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deviceOf returns the device id of a valid, unexpired device cookie for
// account, if the request carries one.
func (g *loginGuard) deviceOf(r *http.Request, account string) (string, bool) {
	c, err := r.Cookie(g.cookieName(account))
	if err != nil || len(c.Value) > 128 {
		return "", false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 || parts[0] != "v1" || !web.IsRandomToken(parts[1], deviceIDBytes) {
		return "", false
	}
	expiry, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || expiry <= g.now().Unix() {
		return "", false
	}
	want := g.deviceMAC(account, parts[1], expiry)
	if subtle.ConstantTimeCompare([]byte(parts[3]), []byte(want)) != 1 {
		return "", false
	}
	return parts[1], true
}

// setDeviceCookie gives the browser a device cookie for account, keeping
// its device id when it had one, and the known-browser cookie that goes
// with it.
func (g *loginGuard) setDeviceCookie(w http.ResponseWriter, a attempt) {
	device := a.device
	if device == "" {
		device = store.RandomToken(deviceIDBytes)
	}
	expiry := g.now().Add(DeviceCookieTTL).Unix()
	g.setCookie(w, g.cookieName(a.account), "v1."+device+"."+strconv.FormatInt(expiry, 10)+"."+g.deviceMAC(a.account, device, expiry))
	tag := g.accountTag(a.account)
	g.setCookie(w, g.hostCookie(knownBrowserCookie), "v1."+tag+"."+strconv.FormatInt(expiry, 10)+"."+g.knownBrowserMAC(tag, expiry))
}

func (g *loginGuard) setCookie(w http.ResponseWriter, name, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(DeviceCookieTTL / time.Second),
		HttpOnly: true,
		Secure:   g.secure,
		SameSite: http.SameSiteStrictMode,
	})
}

// Known browsers. A passwordless sign-in begins before anyone says which
// account it is for, so the device cookies, which are named after their
// account and MACed with it, cannot be checked there: that would mean
// trying every account. Every device cookie therefore comes with one
// more cookie, the same for every account: "v1.<account tag>.<expiry,
// Unix seconds>.<MAC>", the MAC (HMAC-SHA256, the device cookies' key)
// covering the tag and the expiry. Checking it is one MAC and no database
// read, and nobody can make one without logging in. It names the account
// of the browser's last login only by its tag (accountTag), and proves
// only that this browser logged in to that account within
// DeviceCookieTTL: it opens no account, it only earns the browser a place
// among the ceremonies kept for known browsers (passkey.go), counted per
// account, since a device id is free to mint but an account is not.

// knownBrowserCookie is the known-browser cookie's name (with __Host-
// under https).
const knownBrowserCookie = "nsauth_known_browser"

func (g *loginGuard) knownBrowserMAC(tag string, expiry int64) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth known browser v1\x00" + tag + "\x00" + strconv.FormatInt(expiry, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// knownAccountOf returns the account tag of a valid, unexpired
// known-browser cookie, if the request carries one.
func (g *loginGuard) knownAccountOf(r *http.Request) (string, bool) {
	c, err := r.Cookie(g.hostCookie(knownBrowserCookie))
	if err != nil || len(c.Value) > 128 {
		return "", false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 || parts[0] != "v1" || len(parts[1]) != 16 {
		return "", false
	}
	if _, err := hex.DecodeString(parts[1]); err != nil {
		return "", false
	}
	expiry, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || expiry <= g.now().Unix() {
		return "", false
	}
	if subtle.ConstantTimeCompare([]byte(parts[3]), []byte(g.knownBrowserMAC(parts[1], expiry))) != 1 {
		return "", false
	}
	return parts[1], true
}

// hashGate bounds password hashing: at most `slots` hashes at once (each
// takes about 19 MiB and a core for tens of milliseconds) and at most
// `queue` attempts waiting for one. An attempt that finds the queue full
// is refused at once rather than piling up behind others. One client
// address may hold at most perKey slots, so a client that sends its whole
// allowance at once cannot make everyone else wait behind it.
type hashGate struct {
	admitted chan struct{} // running or waiting
	running  chan struct{}
	perKey   int

	mu   sync.Mutex
	keys map[string]*keySlots
}

type keySlots struct {
	slots chan struct{}
	users int
}

func newHashGate(slots, queue int) *hashGate {
	return &hashGate{
		admitted: make(chan struct{}, slots+queue),
		running:  make(chan struct{}, slots),
		perKey:   max(1, slots-1),
		keys:     map[string]*keySlots{},
	}
}

var errHashBusy = errors.New("password hashing is at capacity")

// enter waits for a hashing slot for a client (key: its address) and
// returns the function that frees it, or errHashBusy when the queue is
// full, or ctx's error.
func (h *hashGate) enter(ctx context.Context, key string) (func(), error) {
	select {
	case h.admitted <- struct{}{}:
	default:
		return nil, errHashBusy
	}
	h.mu.Lock()
	k := h.keys[key]
	if k == nil {
		k = &keySlots{slots: make(chan struct{}, h.perKey)}
		h.keys[key] = k
	}
	k.users++
	h.mu.Unlock()
	leaveKey := func() {
		h.mu.Lock()
		if k.users--; k.users == 0 {
			delete(h.keys, key)
		}
		h.mu.Unlock()
	}
	fail := func(err error) (func(), error) {
		leaveKey()
		<-h.admitted
		return nil, err
	}
	select {
	case k.slots <- struct{}{}:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	select {
	case h.running <- struct{}{}:
	case <-ctx.Done():
		<-k.slots
		return fail(ctx.Err())
	}
	return func() {
		<-h.running
		<-k.slots
		leaveKey()
		<-h.admitted
	}, nil
}

// refusalLog throttles the log lines of refused attempts: a flood must not
// become a flood of log lines. Lines that are dropped are counted and the
// count is reported by the next line that is written.
type refusalLog struct {
	limit      *rate.Limiter
	mu         sync.Mutex
	suppressed int
}

func newRefusalLog() *refusalLog {
	return &refusalLog{limit: rate.NewLimiter(1, 10)}
}

// allow reports whether a line may be written now, and how many were
// suppressed since the last one.
func (l *refusalLog) allow() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.limit.Allow() {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// recordLockout records the audit.LoginLockedOut event of the attempt that
// took the last place in one of its counters (res.Full): from now until
// res.RetryAt, that account's unknown browsers, that browser or that
// address is kept out. The account is named only when user says it exists.
func (i *Issuer) recordLockout(ctx context.Context, user *store.User, clientID string, res store.Reservation) error {
	e := audit.Event{Type: audit.LoginLockedOut, Outcome: audit.Failure, ClientID: clientID,
		Reason: "too_many_failures", Target: counterKind(res.Full)}
	if user != nil {
		e.Subject, e.Username = user.ID, user.Username
	}
	return i.recordRefusal(ctx, e)
}
