package federation_test

import (
	"strings"
	"testing"

	"github.com/nsauth/nsauth/internal/federation"
)

func TestMatchSubject(t *testing.T) {
	t.Parallel()
	const gh = "repo:acme/app:ref:refs/heads/main"
	tests := []struct {
		name, pattern, subject string
		want                   bool
	}{
		{"exact", gh, gh, true},
		{"exact differs", gh, gh + "2", false},
		{"exact is not a prefix", "repo:acme/app", gh, false},
		{"case matters", "repo:Acme/app:ref:refs/heads/main", gh, false},
		{"wildcard at the end", "repo:acme/app:ref:refs/heads/*", gh, true},
		{"wildcard spans slashes", "repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/release/1.2", true},
		{"wildcard needs a character", "repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/", false},
		{"wildcard stops at a colon", "repo:acme/app:ref:refs/heads/*", "repo:acme/app:ref:refs/heads/x:evil", false},
		{"whole field", "repo:acme/*:ref:refs/heads/main", gh, true},
		{"whole field, other org", "repo:acme/*:ref:refs/heads/main", "repo:evil/app:ref:refs/heads/main", false},
		{"wildcard cannot eat fields", "repo:acme/*", gh, false},
		{"wildcard cannot invent fields", "repo:*:ref:refs/heads/main", "repo:acme:x:ref:refs/heads/main", false},
		{"middle of a field", "repo:acme/app-*-svc:environment:prod", "repo:acme/app-billing-svc:environment:prod", true},
		{"middle needs a character", "repo:acme/app-*-svc:environment:prod", "repo:acme/app--svc:environment:prod", false},
		{"two wildcards in a field", "repo:acme/*-*:pull_request", "repo:acme/a-b-c:pull_request", true},
		{"backtracking", "x:*ab", "x:aab", true},
		{"backtracking fails", "x:*ab", "x:aba", false},
		{"question mark is literal", "repo:acme/ap?", "repo:acme/app", false},
		{"question mark matches itself", "repo:acme/ap?", "repo:acme/ap?", true},
		{"kubernetes", "system:serviceaccount:ci:*", "system:serviceaccount:ci:deployer", true},
		{"kubernetes other namespace", "system:serviceaccount:ci:*", "system:serviceaccount:prod:deployer", false},
		{"empty subject", "x:*", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := federation.MatchSubject(tt.pattern, tt.subject); got != tt.want {
				t.Errorf("MatchSubject(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
			}
		})
	}
}

func TestMatchSubjectWorstCase(t *testing.T) {
	t.Parallel()
	// Many wildcards against a long field that almost matches: linear
	// backtracking answers at once, where a naive recursion would not.
	pattern := "x:" + strings.Repeat("a*", 200) + "b"
	subject := "x:" + strings.Repeat("a", 500)
	if federation.MatchSubject(pattern, subject) {
		t.Fatal("matched")
	}
}

func TestCheckPolicy(t *testing.T) {
	t.Parallel()
	const own = "https://nsauth.example.com"
	good := federation.Policy{Name: "deploy", Issuer: "https://token.actions.githubusercontent.com", Audience: "nsauth",
		Subject: "repo:acme/app:ref:refs/heads/main", ClientID: "ci-deployer"}
	tests := []struct {
		name   string
		change func(p *federation.Policy)
		want   string // part of the error; "" for none
	}{
		{"good", func(*federation.Policy) {}, ""},
		{"issuer with a path", func(p *federation.Policy) { p.Issuer = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC" }, ""},
		{"loopback http", func(p *federation.Policy) { p.Issuer = "http://127.0.0.1:9000" }, ""},
		{"own issuer", func(p *federation.Policy) { p.Issuer = own }, "this server's own"},
		{"own issuer with a slash", func(p *federation.Policy) { p.Issuer = own + "/" }, "this server's own"},
		{"http elsewhere", func(p *federation.Policy) { p.Issuer = "http://ci.example.com" }, "https"},
		{"query", func(p *federation.Policy) { p.Issuer = "https://ci.example.com?x=1" }, "query"},
		{"no audience", func(p *federation.Policy) { p.Audience = "" }, "audience"},
		{"only wildcards", func(p *federation.Policy) { p.Subject = "*:*" }, "besides wildcards"},
		{"double star", func(p *federation.Policy) { p.Subject = "repo:acme/**" }, "**"},
		{"no client", func(p *federation.Policy) { p.ClientID = "" }, "client"},
		{"space in name", func(p *federation.Policy) { p.Name = "a b" }, "name"},
		{"negative ttl", func(p *federation.Policy) { p.MaxTTL = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := good
			tt.change(&p)
			err := federation.CheckPolicy(&p, own)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckPolicy: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("CheckPolicy = %v, want an error about %q", err, tt.want)
			}
		})
	}
}
