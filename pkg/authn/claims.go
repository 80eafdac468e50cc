package authn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Claims are the verified claims of an access token. Each call to a
// [TokenVerifier] of this package returns its own Claims, which the caller
// may change freely: cached results are copied, never shared.
type Claims struct {
	// Issuer is the `iss` claim.
	Issuer string
	// Subject is the `sub` claim.
	Subject string
	// Audience is the `aud` claim, as a list even when the token carried a
	// single string.
	Audience []string
	// ExpiresAt is the `exp` claim.
	ExpiresAt time.Time
	// IssuedAt is the `iat` claim; zero when absent.
	IssuedAt time.Time
	// NotBefore is the `nbf` claim; zero when absent.
	NotBefore time.Time
	// ID is the `jti` claim; empty when absent.
	ID string
	// ClientID is the `client_id` claim (RFC 9068), or `azp` when the
	// provider uses that instead; empty when neither is present.
	ClientID string
	// Scopes are the granted scopes, from the space-separated `scope` claim
	// (RFC 9068) or the `scp` array some providers use.
	Scopes []string
	// AMR lists how the user authenticated, from the `amr` claim (RFC 8176
	// values such as "pwd", "otp", "hwk", "swk", "mfa"); nil when the token
	// carries none (machine tokens, and providers that do not send it).
	AMR []string

	// groups is the `groups` claim, read by Groups; never modified once
	// set, so copies of Claims share it.
	groups []string

	// payload is the verified JWT payload or the introspection answer, for
	// Decode. It is never modified once set, so copies of Claims share it.
	payload []byte
}

// Machine reports whether the token's subject is a machine client: a
// program that obtained the token for itself (the client-credentials grant,
// or a token exchange for one) rather than for a person. The rule is RFC
// 9068 §2.2's: such a token's `sub` is the client's own identifier, so
// Machine is true exactly when ClientID is set and equals Subject.
//
// nsauth's built-in provider issues machine tokens that way and never
// issues a person's token whose subject equals its client id. With another
// provider the rule holds as far as that provider follows RFC 9068; one
// that gives service accounts a subject of their own (a user id) makes
// their tokens look like a person's, never the reverse, unless it lets a
// client be named like a user's subject. Callers MUST NOT grant a person's
// rights on Machine alone: it tells what the subject is, not who.
func (c *Claims) Machine() bool {
	return c != nil && c.ClientID != "" && c.Subject == c.ClientID
}

// Groups returns the groups the token's `groups` claim names (RFC 9068
// §2.2.3.1; nsauth's built-in provider sets it when the app was granted the
// `groups` scope), as a new slice the caller may change. It is nil when the
// token carries no `groups` claim, when the claim is not a JSON array of
// strings, and when it names more than [MaxGroups] groups: a token is not
// refused for its groups, but such a claim names no group, so a
// requirement of one ([Group]) fails closed. Claims built by hand have no
// groups.
//
// Groups are what the provider knew when it issued the token (or, for an
// opaque token, when it was introspected): a user removed from a group
// keeps it in tokens already issued until they expire.
func (c *Claims) Groups() []string {
	if c == nil || c.groups == nil {
		return nil
	}
	return slices.Clone(c.groups)
}

// MaxGroups bounds the `groups` claim [Claims.Groups] reads. A token whose
// claim names more groups has none as far as this package is concerned.
const MaxGroups = 1024

// Decode unmarshals the verified token's claims into v with
// [encoding/json], so a service can read the claims this type does not
// name (roles, email, tenant):
//
//	var extra struct {
//		Email string   `json:"email"`
//		Roles []string `json:"roles"`
//	}
//	if err := claims.Decode(&extra); err != nil { ... }
//
// For a JWT ([Verifier]) the claims are the token's payload, after its
// signature and registered claims were checked. For an opaque token
// ([Introspector]) they are the introspection answer (RFC 7662 §2.2):
// `active`, `scope`, `client_id`, `username`, `token_type`, `exp`, `iat`,
// `nbf`, `sub`, `aud`, `iss` and `jti` when the provider sends them, plus
// whatever extensions it adds. Providers differ here: many answer with
// those registered members only (nsauth's built-in provider does), and some
// nest custom claims (Ory Hydra under `ext`), so check what yours sends
// before relying on a claim in introspection mode.
//
// Member names were checked to be unique (ignoring case) before the token
// was accepted, so encoding/json's case-insensitive matching cannot be
// steered by a second spelling of a claim. Decode returns an error for
// Claims that were not produced by a verifier of this package (built by
// hand, as for [ContextWithClaims] in tests) and for claims that do not fit
// v's types; it never changes the Claims.
func (c *Claims) Decode(v any) error {
	if c == nil || c.payload == nil {
		return errors.New("authn: these claims carry no verified payload to decode")
	}
	if err := json.Unmarshal(c.payload, v); err != nil {
		return fmt.Errorf("authn: decoding claims: %w", err)
	}
	return nil
}

// clone returns a copy of c that shares nothing mutable with it, so that a
// caller changing its claims (sorting Scopes, say) cannot disturb the cache
// or another request.
func (c *Claims) clone() *Claims {
	if c == nil {
		return nil
	}
	cp := *c
	// One array holds both lists (a cached hit runs this on every call);
	// the capacities are cut so that appending to one cannot write into
	// the other.
	if c.Audience != nil || c.Scopes != nil || c.AMR != nil {
		lists := make([]string, 0, len(c.Audience)+len(c.Scopes)+len(c.AMR))
		lists = append(append(append(lists, c.Audience...), c.Scopes...), c.AMR...)
		na, ns := len(c.Audience), len(c.Audience)+len(c.Scopes)
		cp.Audience, cp.Scopes, cp.AMR = nil, nil, nil
		if c.Audience != nil {
			cp.Audience = lists[:na:na]
		}
		if c.Scopes != nil {
			cp.Scopes = lists[na:ns:ns]
		}
		if c.AMR != nil {
			cp.AMR = lists[ns:len(lists):len(lists)]
		}
	}
	return &cp
}

// maxClaims bounds how many top-level members a token payload may hold; no
// legitimate access token comes near it.
const maxClaims = 256

// parseClaims decodes a JWT payload strictly: it must be one JSON object with
// unique member names (compared case-insensitively, because some consumers
// match claim names that way), and every registered claim must have the JSON
// type RFC 7519 gives it.
func parseClaims(payload []byte) (*Claims, error) {
	members, err := decodeObject(payload)
	if err != nil {
		return nil, err
	}
	c := Claims{payload: bytes.Clone(payload)}
	if c.Issuer, err = stringClaim(members, "iss"); err != nil {
		return nil, err
	}
	if c.Subject, err = stringClaim(members, "sub"); err != nil {
		return nil, err
	}
	if c.ID, err = stringClaim(members, "jti"); err != nil {
		return nil, err
	}
	if c.ClientID, err = stringClaim(members, "client_id"); err != nil {
		return nil, err
	}
	if c.ClientID == "" {
		if c.ClientID, err = stringClaim(members, "azp"); err != nil {
			return nil, err
		}
	}
	if c.Audience, err = audienceClaim(members); err != nil {
		return nil, err
	}
	if c.ExpiresAt, err = timeClaim(members, "exp"); err != nil {
		return nil, err
	}
	if c.IssuedAt, err = timeClaim(members, "iat"); err != nil {
		return nil, err
	}
	if c.NotBefore, err = timeClaim(members, "nbf"); err != nil {
		return nil, err
	}
	if c.Scopes, err = scopeClaim(members); err != nil {
		return nil, err
	}
	if c.AMR, err = amrClaim(members); err != nil {
		return nil, err
	}
	c.groups = groupsClaim(members)
	return &c, nil
}

// decodeObject decodes a JSON object into its members, refusing duplicate
// names (compared case-insensitively), more than maxClaims members,
// trailing data and anything that is not an object. The members' values
// are slices of data. An object without any of these faults whose names
// are plain (printable ASCII, no escapes), the common case, is split in
// one pass once json.Valid has accepted it; anything else is read again
// token by token, which names the fault.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if members, ok := splitObject(data); ok && len(members) <= maxClaims && !foldedDuplicates(members) {
		return members, nil
	}
	return decodeObjectByTokens(data)
}

// splitObject splits data, when it is one valid JSON object with plain,
// distinct member names, into its members; it reports false for anything
// else. Validity is json.Valid's: the walk below relies on it, and so
// never reads out of bounds nor needs to judge the grammar.
func splitObject(data []byte) (map[string]json.RawMessage, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, false
	}
	members := make(map[string]json.RawMessage, 16)
	if i = skipSpace(data, i+1); data[i] == '}' {
		return members, true
	}
	for {
		end := stringEnd(data, i)
		name, ok := plainString(data[i:end])
		if !ok {
			return nil, false
		}
		if _, dup := members[name]; dup {
			return nil, false
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		end = valueEnd(data, i)
		members[name] = data[i:end:end]
		if i = skipSpace(data, end); data[i] == '}' {
			return members, true
		}
		i = skipSpace(data, i+1) // past the comma
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (len(data) if none).
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the valid JSON string at i.
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++ // the escaped byte, which may be a quote
		}
	}
	return i + 1
}

// valueEnd returns the index just past the valid JSON value at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for ; i < len(data); i++ { // a number, true, false or null
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// plainString reads raw, a JSON string, when it is printable ASCII without
// escapes.
func plainString(raw []byte) (string, bool) {
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// foldedDuplicates reports whether two of the names differ only in case.
// Names of ASCII lower-case letters, digits and punctuation, as registered
// claims are, fold to themselves and are not compared further.
func foldedDuplicates(members map[string]json.RawMessage) bool {
	var folded map[string]struct{}
	for name := range members {
		if !needsFolding(name) {
			continue
		}
		if folded == nil {
			folded = make(map[string]struct{}, len(members))
			for other := range members {
				if !needsFolding(other) {
					folded[other] = struct{}{}
				}
			}
		}
		f := strings.ToLower(name)
		if _, dup := folded[f]; dup {
			return true
		}
		folded[f] = struct{}{}
	}
	return false
}

// needsFolding reports whether strings.ToLower could change name.
func needsFolding(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return true
		}
	}
	return false
}

// decodeObjectByTokens is decodeObject read token by token: slower, and
// it names what is wrong.
func decodeObjectByTokens(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("payload is not a JSON object")
	}
	members := make(map[string]json.RawMessage)
	seen := make(map[string]struct{})
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("payload is not JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("payload member name is not a string")
		}
		folded := strings.ToLower(name)
		if _, dup := seen[folded]; dup {
			return nil, fmt.Errorf("payload repeats claim %q", name)
		}
		seen[folded] = struct{}{}
		if len(seen) > maxClaims {
			return nil, errors.New("payload has too many claims")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("payload is not JSON: %w", err)
		}
		members[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fmt.Errorf("payload is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("payload has trailing data")
	}
	return members, nil
}

func stringClaim(members map[string]json.RawMessage, name string) (string, error) {
	raw, ok := members[name]
	if !ok {
		return "", nil
	}
	s, ok := jsonString(raw)
	if !ok {
		return "", fmt.Errorf("claim %q is not a string", name)
	}
	return s, nil
}

// jsonString reads raw, one JSON value, as a string. A string of printable
// ASCII without escapes, what claims almost always are, is taken as it
// stands; anything else is left to json.Unmarshal.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if raw[len(raw)-1] == '"' {
		if s, ok := plainString(raw); ok {
			return s, true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func audienceClaim(members map[string]json.RawMessage) ([]string, error) {
	raw, ok := members["aud"]
	if !ok {
		return nil, nil
	}
	switch {
	case len(raw) > 0 && raw[0] == '"':
		s, ok := jsonString(raw)
		if !ok {
			return nil, errors.New(`claim "aud" is not a string`)
		}
		return []string{s}, nil
	case len(raw) > 0 && raw[0] == '[':
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, errors.New(`claim "aud" is not a list of strings`)
		}
		return list, nil
	default:
		return nil, errors.New(`claim "aud" is neither a string nor a list of strings`)
	}
}

// timeClaim reads a NumericDate: a JSON number of seconds since the epoch.
// Strings, booleans, nulls, NaN-like and absurd values are refused rather than
// read as zero.
func timeClaim(members map[string]json.RawMessage, name string) (time.Time, error) {
	raw, ok := members[name]
	if !ok {
		return time.Time{}, nil
	}
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, fmt.Errorf("claim %q is not a number", name)
	}
	f, ok := jsonNumber(raw)
	if !ok {
		return time.Time{}, fmt.Errorf("claim %q is not a number", name)
	}
	// Year 10000 bounds every honest date and keeps the conversion exact.
	if f < 0 || f > 253402300799 || math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("claim %q is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// jsonNumber reads raw, one JSON value, as a number. Up to 15 decimal
// digits alone, what NumericDates are, are read as they stand (exactly);
// anything else is left to json.Unmarshal.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	if v, ok := plainDigits(raw); ok {
		return float64(v), true
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	return f, true
}

// plainDigits reads 1 to 15 decimal digits without a leading zero.
func plainDigits(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 15 || raw[0] == '0' && len(raw) > 1 {
		return 0, false
	}
	var v int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// maxAMR bounds the `amr` list: RFC 8176 registers fewer than twenty
// values.
const maxAMR = 32

// amrClaim reads `amr` (OpenID Connect Core §2): a JSON array of strings.
func amrClaim(members map[string]json.RawMessage) ([]string, error) {
	raw, ok := members["amr"]
	if !ok || string(raw) == "null" {
		// null is how some encoders write an absent list.
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, errors.New(`claim "amr" is not a list of strings`)
	}
	if len(list) > maxAMR {
		return nil, errors.New(`claim "amr" has too many values`)
	}
	return list, nil
}

// groupsClaim reads `groups`: a JSON array of at most MaxGroups strings,
// else nil (see Claims.Groups).
func groupsClaim(members map[string]json.RawMessage) []string {
	raw, ok := members["groups"]
	if !ok || len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) > MaxGroups {
		return nil
	}
	return list
}

func scopeClaim(members map[string]json.RawMessage) ([]string, error) {
	if raw, ok := members["scope"]; ok {
		s, ok := jsonString(raw)
		if !ok {
			return nil, errors.New(`claim "scope" is not a string`)
		}
		return strings.Fields(s), nil
	}
	if raw, ok := members["scp"]; ok {
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, errors.New(`claim "scp" is neither a string nor a list of strings`)
			}
			return strings.Fields(s), nil
		}
		return list, nil
	}
	return nil, nil
}
