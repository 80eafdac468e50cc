package tokenstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// ErrUnknownAccount is returned (wrapped, naming the server's accounts) when
// an account asked for by name or ID is not stored for the API URL. It
// wraps [ErrNotFound], so callers that only ask "is there a login?" need
// not know about accounts.
var ErrUnknownAccount error = notFoundError("unknown account")

// ErrNoActiveAccount is returned (wrapped, naming the server's accounts)
// when accounts are stored for an API URL but none is active: the active
// one was deleted, and nsauth never picks another user by itself. It wraps
// [ErrNotFound].
var ErrNoActiveAccount error = notFoundError("no active account")

// notFoundError is a kind of ErrNotFound with a message of its own.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }

// Is makes errors.Is(err, ErrNotFound) hold.
func (notFoundError) Is(target error) bool { return target == ErrNotFound }

// ErrAmbiguousAccount is returned (wrapped, listing the candidates' IDs)
// when a name given for an account belongs to several accounts of the API
// URL, such as one email address at two identity providers. The account's
// ID, which is unique, selects one.
var ErrAmbiguousAccount = errors.New("ambiguous account")

// Account identifies the user an entry's tokens belong to. One server may
// have several accounts stored; one of them is active (see
// [Store.SetActive]) and is the one [Store.Load] and the other methods
// without an account argument use.
//
// The identity is read from the tokens without checking their signature
// (see [UnverifiedClaims]): it names and keys entries for the user's own
// convenience and MUST NOT be used to make an access decision.
type Account struct {
	// ID keys the account among its server's: 12 hex digits derived from
	// Issuer and Subject, so the same user logging in again gets the same
	// ID and two users never share one, whatever their display names.
	ID string `json:"id"`
	// Name is what people call the account: the ID token's email, else its
	// preferred_username, else the subject, else "unnamed" (when the tokens
	// say nothing about the user, such as opaque tokens without an ID
	// token). Control characters are removed. Names need not be unique.
	Name string `json:"name"`
	// Subject is the `sub` claim; empty when unknown.
	Subject string `json:"subject,omitempty"`
	// Issuer is the `iss` claim; empty when unknown.
	Issuer string `json:"issuer,omitempty"`
}

// unnamedAccount names an account whose tokens say nothing about the user.
const unnamedAccount = "unnamed"

// AccountID returns the ID of the account of subject at issuer.
func AccountID(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\n" + subject))
	return hex.EncodeToString(sum[:6])
}

// AccountFromTokens returns the account the tokens belong to, from the
// claims of the ID token and, for what it lacks, of the access token when
// it is a JWT. Tokens that are not JWTs give the "unnamed" account, the
// same for every such login on a server.
func AccountFromTokens(idToken, accessToken string) Account {
	var a Account
	var email, username string
	for _, tok := range []string{idToken, accessToken} {
		if tok == "" {
			continue
		}
		claims, err := UnverifiedClaims(tok)
		if err != nil {
			continue
		}
		str := func(k string) string { s, _ := claims[k].(string); return cleanName(s) }
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&a.Subject, str("sub"))
		fill(&a.Issuer, str("iss"))
		fill(&email, str("email"))
		fill(&username, str("preferred_username"))
	}
	a.ID = AccountID(a.Issuer, a.Subject)
	a.Name = firstNonEmpty(email, username, a.Subject, unnamedAccount)
	return a
}

// cleanName drops control characters (which could move a terminal's
// cursor when a name is printed) and bounds the length: names come from
// tokens, which whoever issues them controls.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200])
	}
	return s
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// validAccountID reports whether id can name a file: IDs are written by
// AccountID, but an Entry's Account may come from anywhere.
func validAccountID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// matchAccount picks the entry that account (an ID, or else a name, both
// exact) designates among a server's entries.
func matchAccount(apiURL string, entries []*Entry, account, active string) (*Entry, error) {
	for _, e := range entries {
		if e.Account.ID == account {
			return e, nil
		}
	}
	var named []*Entry
	for _, e := range entries {
		if e.Account.Name == account {
			named = append(named, e)
		}
	}
	switch len(named) {
	case 1:
		return named[0], nil
	case 0:
		if len(entries) == 0 {
			return nil, fmt.Errorf("%w: %q is not logged in to %s, nor is anyone else", ErrUnknownAccount, account, apiURL)
		}
		return nil, fmt.Errorf("%w: %q is not logged in to %s; its accounts: %s", ErrUnknownAccount, account, apiURL, describeAccounts(entries, active))
	}
	ids := make([]string, len(named))
	for i, e := range named {
		ids[i] = fmt.Sprintf("%s (subject %s at %s)", e.Account.ID, e.Account.Subject, firstNonEmpty(e.Account.Issuer, "an unknown issuer"))
	}
	return nil, fmt.Errorf("%w: %q names %d accounts on %s; give one's ID instead: %s", ErrAmbiguousAccount, account, len(named), apiURL, strings.Join(ids, ", "))
}

// describeAccounts lists accounts for an error message: names, with the ID
// where a name is not unique, and the active one marked.
func describeAccounts(entries []*Entry, active string) string {
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = e.Account.Name
		if h := e.Account.Handle(entries); h != e.Account.Name {
			parts[i] += " (ID " + h + ")"
		}
		if e.Account.ID == active {
			parts[i] += " (active)"
		}
	}
	return strings.Join(parts, ", ")
}

// Handle returns what selects a among the accounts of entries (a server's,
// as [Store.Accounts] returns them): its name when no other account has
// it, else its ID. It is what to show people who are to type it back.
func (a Account) Handle(entries []*Entry) string {
	for _, e := range entries {
		if e.Account.ID != a.ID && e.Account.Name == a.Name {
			return a.ID
		}
	}
	return a.Name
}

// sortEntries orders a server's entries by name, then ID.
func sortEntries(entries []*Entry) {
	slices.SortFunc(entries, func(a, b *Entry) int {
		if c := strings.Compare(a.Account.Name, b.Account.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Account.ID, b.Account.ID)
	})
}
