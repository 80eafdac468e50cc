package connector

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParseProfile: whatever claims an upstream sends, reading the
// profile never panics, refuses only with ReasonMalformed, and keeps the
// groups bounded, non-empty and unique; a kept email is a verified one of
// an allowed domain.
func FuzzParseProfile(f *testing.F) {
	f.Add(`{"sub":"x","email":"a@b.example","email_verified":true,"groups":["a","a",""],"preferred_username":"u"}`, "groups")
	f.Add(`{"email":"a@B.EXAMPLE","email_verified":"true","roles":"admin"}`, "roles")
	f.Add(`{"groups":null,"email_verified":1}`, "groups")
	f.Fuzz(func(t *testing.T, claims, groupsClaim string) {
		p, err := parseProfile(rawClaims(claims), groupsClaim)
		if err != nil {
			if r := ReasonOf(err); r != ReasonMalformed {
				t.Fatalf("refused with %q", r)
			}
			return
		}
		if len(p.groups) > maxGroups || slices.Contains(p.groups, "") {
			t.Fatalf("groups %q", p.groups)
		}
		for i, g := range p.groups {
			if len(g) > maxGroupLen || slices.Contains(p.groups[i+1:], g) {
				t.Fatalf("group %q too long or repeated", g)
			}
		}
		email, err := checkEmail(p.email, p.emailVerified, []string{"b.example"})
		if err == nil && (!p.emailVerified || !strings.HasSuffix(strings.ToLower(email), "@b.example")) {
			t.Fatalf("kept email %q (verified %v)", email, p.emailVerified)
		}
	})
}
