// Package attempts counts login attempts, so that no burst or flood of
// guesses checks more passwords or codes than the limit allows, and keeps
// the device cookies that let an account's owner in during a flood.
package attempts

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

// Counter key prefixes.
const (
	addressCounter = "addr:"
	accountCounter = "user:"
	deviceCounter  = "dev:"
)

// Store is the storage the counters need.
type Store interface {
	ReserveLoginAttempt(ctx context.Context, counters []store.AttemptCounter, limit int, window time.Duration) (store.Reservation, error)
	ReleaseLoginAttempt(ctx context.Context, c store.AttemptCounter) error
	ClearLoginAttempts(ctx context.Context, key string) error
}

// Config configures a [Guard].
type Config struct {
	Store Store
	// Max is how many attempts each counter allows per Window.
	Max    int
	Window time.Duration
	Now    func() time.Time
	// Secure: the issuer is https; cookies are Secure and __Host-.
	Secure bool
	// MACKey keys the device and known-browser cookies' MACs.
	MACKey []byte
	// Hash bounds the password checks running and waiting.
	Hash *HashGate
}

// New returns a Guard.
func New(c Config) *Guard {
	return &Guard{st: c.Store, max: c.Max, window: c.Window, now: c.Now, secure: c.Secure, macKey: c.MACKey, Hash: c.Hash,
		inFlight: map[string]int{}}
}

// Guard counts login attempts and issues and checks device cookies.
type Guard struct {
	st     Store
	max    int
	window time.Duration
	now    func() time.Time
	secure bool
	macKey []byte
	// Hash bounds the password checks (HashGate).
	Hash *HashGate

	// inFlight counts, per counter, this process's attempts between their
	// reservation and their answer. No more than max of them can hold a
	// place, so an attempt that finds max in flight on one of its counters
	// is refused without a trip to the database: a burst of simultaneous
	// requests costs one query per place, not one per request.
	mu       sync.Mutex
	inFlight map[string]int
}

// Attempt is one login attempt's place in the counters.
type Attempt struct {
	Account  string // the normalised username, "" when it is not one
	Address  string // the client address's label
	Device   string // the device id, when the browser proved it logged in to account
	Counters []store.AttemptCounter
}

// NewAttempt classifies an attempt: from a known device of the account,
// or from an unknown browser.
func (g *Guard) NewAttempt(r *http.Request, username, address string) Attempt {
	a := Attempt{Address: address}
	if name, err := store.NormalizeUsername(username); err == nil {
		a.Account = name
	}
	if a.Account != "" {
		if dev, ok := g.deviceOf(r, a.Account); ok {
			a.Device = dev
			a.Counters = []store.AttemptCounter{{Key: deviceCounter + dev, Account: a.Account}}
			return a
		}
	}
	// The address counter knows which account the attempt was at, so that
	// unlocking that account takes it off the address too.
	a.Counters = []store.AttemptCounter{{Key: addressCounter + address, At: a.Account}}
	if a.Account != "" {
		a.Counters = append(a.Counters, store.AttemptCounter{Key: accountCounter + a.Account, Account: a.Account})
	}
	return a
}

// Enter admits an attempt to reservation, or refuses it when one of its
// counters already has max attempts in flight here. The returned function
// ends the attempt.
func (g *Guard) Enter(a Attempt) (func(), bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range a.Counters {
		if g.inFlight[c.Key] >= g.max {
			return nil, false
		}
	}
	for _, c := range a.Counters {
		g.inFlight[c.Key]++
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range a.Counters {
			if g.inFlight[c.Key]--; g.inFlight[c.Key] <= 0 {
				delete(g.inFlight, c.Key)
			}
		}
	}, true
}

// Reserve takes a place in each of the attempt's counters, atomically
// across replicas (store.ReserveLoginAttempt).
func (g *Guard) Reserve(ctx context.Context, a Attempt) (store.Reservation, error) {
	return g.st.ReserveLoginAttempt(ctx, a.Counters, g.max, g.window)
}

// Release gives back the places of an attempt whose password was never
// checked.
func (g *Guard) Release(ctx context.Context, a Attempt) {
	for _, c := range a.Counters {
		_ = g.st.ReleaseLoginAttempt(context.WithoutCancel(ctx), c)
	}
}

// Succeeded forgets the failures of the account (or of the device) that
// just logged in, and gives the address its place back. The address's
// earlier failures stay: a client guessing many accounts' passwords must
// not reset its count by logging in to one of them.
func (g *Guard) Succeeded(ctx context.Context, a Attempt) {
	ctx = context.WithoutCancel(ctx)
	if a.Device != "" {
		_ = g.st.ClearLoginAttempts(ctx, deviceCounter+a.Device)
		return
	}
	for _, c := range a.Counters {
		if c.Account == "" {
			_ = g.st.ReleaseLoginAttempt(ctx, c) // the address's
		} else {
			_ = g.st.ClearLoginAttempts(ctx, c.Key) // the account's
		}
	}
}

// CounterKind names a counter for logs: address, account or device.
func CounterKind(key string) string {
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

func (g *Guard) cookieName(account string) string {
	return g.hostCookie("nsauth_device_" + g.accountTag(account))
}

// accountTag names account in cookies without revealing it: a MAC of the
// account, the same for every browser.
func (g *Guard) accountTag(account string) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth device cookie name\x00" + account))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// hostCookie is the name of a cookie of ours: __Host- under https.
func (g *Guard) hostCookie(name string) string { return web.CookieName(name, g.secure) }

func (g *Guard) deviceMAC(account, device string, expiry int64) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth device cookie v1\x00" + account + "\x00" + device + "\x00" + strconv.FormatInt(expiry, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// DeviceOf returns the device id of a valid, unexpired device cookie for
// account, if the request carries one. Browser sessions are bound to it
// (package browsersession).
func (g *Guard) DeviceOf(r *http.Request, account string) (string, bool) {
	return g.deviceOf(r, account)
}

func (g *Guard) deviceOf(r *http.Request, account string) (string, bool) {
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

// SetDeviceCookie gives the browser a device cookie for account, keeping
// its device id when it had one, and the known-browser cookie that goes
// with it. It returns the device id.
func (g *Guard) SetDeviceCookie(w http.ResponseWriter, a Attempt) string {
	device := a.Device
	if device == "" {
		device = store.RandomToken(deviceIDBytes)
	}
	expiry := g.now().Add(DeviceCookieTTL).Unix()
	g.setCookie(w, g.cookieName(a.Account), "v1."+device+"."+strconv.FormatInt(expiry, 10)+"."+g.deviceMAC(a.Account, device, expiry))
	tag := g.accountTag(a.Account)
	g.setCookie(w, g.hostCookie(knownBrowserCookie), "v1."+tag+"."+strconv.FormatInt(expiry, 10)+"."+g.knownBrowserMAC(tag, expiry))
	return device
}

// setCookie sets a device or known-browser cookie. They are SameSite=Lax,
// not Strict: a browser session is bound to the device cookie, and its
// login page is reached by a top-level navigation from an app's site,
// which carries Lax cookies only. They authorise nothing alone, so a
// cross-site navigation carrying them forges nothing.
func (g *Guard) setCookie(w http.ResponseWriter, name, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(DeviceCookieTTL / time.Second),
		HttpOnly: true,
		Secure:   g.secure,
		SameSite: http.SameSiteLaxMode,
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
// among the ceremonies kept for known browsers (package passkey), counted per
// account, since a device id is free to mint but an account is not.

// knownBrowserCookie is the known-browser cookie's name (with __Host-
// under https).
const knownBrowserCookie = "nsauth_known_browser"

func (g *Guard) knownBrowserMAC(tag string, expiry int64) string {
	m := hmac.New(sha256.New, g.macKey)
	m.Write([]byte("nsauth known browser v1\x00" + tag + "\x00" + strconv.FormatInt(expiry, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// KnownAccountOf returns the account tag of a valid, unexpired
// known-browser cookie, if the request carries one.
func (g *Guard) KnownAccountOf(r *http.Request) (string, bool) {
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

// HashGate bounds password hashing: at most `slots` hashes at once (each
// takes about 19 MiB and a core for tens of milliseconds) and at most
// `queue` attempts waiting for one. An attempt that finds the queue full
// is refused at once rather than piling up behind others. One client
// address may hold at most perKey slots, so a client that sends its whole
// allowance at once cannot make everyone else wait behind it.
type HashGate struct {
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

// NewHashGate returns a gate of slots running checks and queue waiting.
func NewHashGate(slots, queue int) *HashGate {
	return &HashGate{
		admitted: make(chan struct{}, slots+queue),
		running:  make(chan struct{}, slots),
		perKey:   max(1, slots-1),
		keys:     map[string]*keySlots{},
	}
}

// ErrHashBusy: the queue of password checks is full.
var ErrHashBusy = errors.New("password hashing is at capacity")

// Enter waits for a hashing slot for a client (key: its address) and
// returns the function that frees it, or ErrHashBusy when the queue is
// full, or ctx's error.
func (h *HashGate) Enter(ctx context.Context, key string) (func(), error) {
	select {
	case h.admitted <- struct{}{}:
	default:
		return nil, ErrHashBusy
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

// RefusalLog throttles the log lines of refused attempts: a flood must not
// become a flood of log lines. Lines that are dropped are counted and the
// count is reported by the next line that is written.
type RefusalLog struct {
	limit      *rate.Limiter
	mu         sync.Mutex
	suppressed int
}

// NewRefusalLog returns a throttle of one line a second, in bursts of 10.
func NewRefusalLog() *RefusalLog {
	return &RefusalLog{limit: rate.NewLimiter(1, 10)}
}

// Allow reports whether a line may be written now, and how many were
// suppressed since the last one.
func (l *RefusalLog) Allow() (bool, int) {
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
