package tokenstore

import (
	"fmt"
	"log/slog"
	"time"
)

// Storage says where an entry's secrets are kept.
type Storage string

const (
	// StorageFile keeps the secrets in the entry's 0600 file.
	StorageFile Storage = "file"
	// StorageKeyring keeps the secrets in the operating system's keyring;
	// the file holds metadata only.
	StorageKeyring Storage = "keyring"
)

// entryVersion is the file format version written by this package: 2
// since accounts (see legacy.go for 1).
const entryVersion = 2

// Entry is what is stored for one account of one API URL. Its String, GoString, Format and
// LogValue methods never reveal the tokens, so an Entry can be printed or
// logged by mistake without leaking them.
type Entry struct {
	// APIURL is the normalized API URL the tokens belong to.
	APIURL string `json:"api_url"`
	// Account is the user the tokens belong to, one of the server's
	// accounts. Zero means the active account to [Store.Save]. An entry
	// read from a store written before accounts has the account its tokens
	// name, except, from LoadMetadata, one whose tokens are in the keyring:
	// its Account is zero.
	Account Account `json:"account,omitzero"`
	// Storage is where the secrets are kept. Empty means StorageFile.
	Storage Storage `json:"storage"`
	// AccessToken is the bearer token sent to the API.
	AccessToken string `json:"access_token,omitempty"`
	// RefreshToken obtains a new access token; empty when the server issued
	// none or it was rejected.
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken is the OpenID Connect ID token, kept for display only.
	IDToken string `json:"id_token,omitempty"`
	// TokenType is the access token's type, normally "Bearer".
	TokenType string `json:"token_type,omitempty"`
	// Scope is the space-separated scope the server granted.
	Scope string `json:"scope,omitempty"`
	// Expiry is when the access token expires; zero when unknown.
	Expiry time.Time `json:"expiry,omitzero"`
	// UpdatedAt is when the entry was last written.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// RefusedAt is when the server refused this session: it rejected the
	// access token (CheckToken) with no refresh token to try, or rejected
	// the refresh token. [Entry.MarkRefused] deletes the tokens and keeps
	// this, so that later commands can say the session is over, and since
	// when, rather than hand out a token the server will not take. Zero
	// for a usable entry; a new login replaces the entry.
	RefusedAt time.Time `json:"refused_at,omitzero"`
}

// MarkRefused records that the server refused the session at t: the
// access, refresh and ID tokens are deleted (none of them is of use any
// more) and RefusedAt is set. Save the entry to keep it.
func (e *Entry) MarkRefused(t time.Time) {
	e.AccessToken, e.RefreshToken, e.IDToken = "", "", ""
	e.Expiry = time.Time{}
	e.RefusedAt = t.UTC().Truncate(time.Second)
}

// Refused reports whether the server refused the session (see RefusedAt).
func (e *Entry) Refused() bool { return e != nil && !e.RefusedAt.IsZero() }

// fileEntry is the on-disk form of an Entry.
type fileEntry struct {
	Version int `json:"version"`
	Entry
}

// secrets is what goes to the keyring for StorageKeyring entries.
type secrets struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// Fresh reports whether the access token is usable for at least margin
// more. A token whose expiry is unknown counts as fresh, as in
// golang.org/x/oauth2: the server will say when it is not. A nil entry, or
// one without an access token, is never fresh.
func (e *Entry) Fresh(now time.Time, margin time.Duration) bool {
	if e == nil || e.AccessToken == "" {
		return false
	}
	return e.Expiry.IsZero() || now.Add(margin).Before(e.Expiry)
}

// String describes the entry without its tokens.
func (e Entry) String() string {
	exp := "unknown"
	if !e.Expiry.IsZero() {
		exp = e.Expiry.UTC().Format(time.RFC3339)
	}
	refused := ""
	if !e.RefusedAt.IsZero() {
		refused = " refused_at=" + e.RefusedAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("tokenstore.Entry{api_url=%s account=%s storage=%s access_token=%s refresh_token=%s expiry=%s%s}",
		e.APIURL, firstNonEmpty(e.Account.ID, "unknown"), e.storage(), redacted(e.AccessToken), redacted(e.RefreshToken), exp, refused)
}

// GoString is String, so that %#v does not print the tokens either.
func (e Entry) GoString() string { return e.String() }

// LogValue implements slog.LogValuer without the tokens.
func (e Entry) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("api_url", e.APIURL),
		slog.String("account", e.Account.ID),
		slog.String("storage", string(e.storage())),
		slog.Bool("has_refresh_token", e.RefreshToken != ""),
		slog.Time("expiry", e.Expiry),
		slog.Time("refused_at", e.RefusedAt),
	)
}

func (e Entry) storage() Storage {
	if e.Storage == "" {
		return StorageFile
	}
	return e.Storage
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "REDACTED"
}

// Format prints the entry as String does for every verb, so that %v, %+v
// and %#v alike keep the tokens out of the output.
func (e Entry) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, e.String()) }
