package issuer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
)

// failingRecorder stands for a required audit trail that cannot record
// one type of event: Record fails as audit.Auditor does under
// NSAUTH_AUDIT_REQUIRED.
type failingRecorder struct {
	mu   sync.Mutex
	fail audit.Type
}

func (r *failingRecorder) Record(_ context.Context, e audit.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Type == r.fail {
		return fmt.Errorf("%w (%s): the database is gone", audit.ErrNotRecorded, e.Type)
	}
	return nil
}

func (r *failingRecorder) RecordRefusal(ctx context.Context, e audit.Event) error {
	return r.Record(ctx, e)
}

func (r *failingRecorder) Ref(string) string { return "" }

// RecordWith stores the change, then fails as Record does: as a required
// stream that could not be written after the change committed.
func (r *failingRecorder) RecordWith(ctx context.Context, e audit.Event, write func(context.Context, *audit.Event) error) error {
	if err := write(ctx, nil); err != nil {
		return err
	}
	return r.Record(ctx, e)
}

func (r *failingRecorder) set(t audit.Type) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = t
}

// TestAuditRequiredFailsTheRequest: an event that cannot be recorded fails
// its request, and nothing is issued: no code from the login page, no
// token from the token endpoint. The client learns no more than "audit
// unavailable".
func TestAuditRequiredFailsTheRequest(t *testing.T) {
	t.Parallel()
	rec := &failingRecorder{}
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.Audit = rec })

	t.Run("login", func(t *testing.T) {
		rec.set(audit.LoginSucceeded)
		defer rec.set("")
		b := issuertest.NewBrowser(t)
		page := b.Submit(t, b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)), "alice", alicePassword)
		if page.Response.StatusCode != http.StatusInternalServerError {
			t.Fatalf("login with an unrecordable event: HTTP %d, want 500", page.Response.StatusCode)
		}
	})
	t.Run("code issued", func(t *testing.T) {
		rec.set(audit.CodeIssued)
		defer rec.set("")
		b := issuertest.NewBrowser(t)
		page := b.Submit(t, b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil)), "alice", alicePassword)
		if page.Response.StatusCode != http.StatusInternalServerError {
			t.Fatalf("a code whose issue is unrecordable: HTTP %d, want 500", page.Response.StatusCode)
		}
	})
	for _, typ := range []audit.Type{audit.CodeExchanged, audit.RefreshRotated} {
		t.Run(string(typ), func(t *testing.T) {
			v := oauth2.GenerateVerifier()
			code := h.login(v, nil)
			if typ == audit.CodeExchanged {
				rec.set(typ)
			}
			tr := h.exchange(code, v)
			if typ == audit.RefreshRotated {
				if tr.status != http.StatusOK {
					t.Fatalf("exchange: %d %s", tr.status, tr.Error)
				}
				rec.set(typ)
				tr = h.refresh(tr.RefreshToken)
			}
			rec.set("")
			if tr.Error != "server_error" || tr.AccessToken != "" || tr.RefreshToken != "" {
				t.Fatalf("got %d %s (tokens issued: %v), want server_error and no token", tr.status, tr.Error, tr.AccessToken != "")
			}
			if tr.ErrorDescription != "audit unavailable" || strings.Contains(tr.ErrorDescription, "database") {
				t.Fatalf("the client was told %q", tr.ErrorDescription)
			}
		})
	}
}

// eventLine is what TestAuditEvents compares of each event.
type eventLine struct {
	Type     audit.Type
	Outcome  audit.Outcome
	Username string
	ClientID string
	Reason   string
	Count    int64 // of an aggregated row of refusals; 0 for one event
}

// TestAuditEvents: the provider's events other than the session's
// (internal/cli's audit_e2e_test.go): a lockout, logins refused by it,
// machine grants and their refusals, revocation of an access token,
// end-session, and a scheduled key rotation, in order. Refusals are
// aggregated rows: the wrong passwords of one minute from one address are
// one row counting them.
func TestAuditEvents(t *testing.T) {
	t.Parallel()
	var trail *auditTrail
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.KeyRotation = time.Hour
		trail = withAudit(t, c)
	})
	var want []eventLine
	expect := func(lines ...eventLine) { want = append(want, lines...) }
	expect(eventLine{audit.SigningKeyRotated, audit.Success, "", "", "first_key", 0})

	b := issuertest.NewBrowser(t)
	page := b.Open(t, h.authorizeURL(oauth2.GenerateVerifier(), nil))
	for i := range issuer.DefaultLoginAttempts {
		b.Submit(t, page, "alice", fmt.Sprintf("guess-%d", i))
	}
	expect(eventLine{audit.LoginFailed, audit.Failure, "alice", h.client, "bad_password", issuer.DefaultLoginAttempts})
	expect(eventLine{audit.LoginLockedOut, audit.Failure, "alice", h.client, "too_many_failures", 1})
	b.Submit(t, page, "alice", alicePassword)
	b.Submit(t, page, "alice", alicePassword)
	expect(eventLine{audit.LoginFailed, audit.Failure, "", h.client, "locked", 2})
	h.clock.Advance(issuer.LoginWindow + time.Second)

	tr := h.tokens(nil)
	expect(eventLine{audit.LoginSucceeded, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.SessionStarted, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.CodeIssued, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.CodeExchanged, audit.Success, "alice", h.client, "", 0})

	id, secret := h.machine("deploy", []string{"read"}, 5*time.Minute)
	if r := h.clientCredentials(id, secret, nil, false); r.status != http.StatusOK {
		t.Fatalf("client credentials: %d %s", r.status, r.Error)
	}
	h.clientCredentials(id, secret+"x", nil, false)
	h.clientCredentials("m-nobody", secret, nil, false)
	h.clientCredentials(id, secret, url.Values{"scope": {"admin"}}, false)
	expect(eventLine{audit.ClientCredentialsGrant, audit.Success, "", id, "", 0},
		eventLine{audit.ClientCredentialsGrant, audit.Failure, "", id, "bad_secret", 1},
		eventLine{audit.ClientCredentialsGrant, audit.Failure, "", "", "unknown_client", 1},
		eventLine{audit.ClientCredentialsGrant, audit.Failure, "", id, "invalid_scope", 0})

	if resp, _ := h.post("/oauth/revoke", url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}}, true); resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: HTTP %d", resp.StatusCode)
	}
	expect(eventLine{audit.TokenRevoked, audit.Success, "", h.client, "", 0})

	other := h.tokens(nil)
	expect(eventLine{audit.LoginSucceeded, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.SessionStarted, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.CodeIssued, audit.Success, "alice", h.client, "", 0},
		eventLine{audit.CodeExchanged, audit.Success, "alice", h.client, "", 0})
	if resp, _ := h.get("/oauth/end_session?id_token_hint="+url.QueryEscape(other.IDToken), nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("end-session: HTTP %d", resp.StatusCode)
	}
	expect(eventLine{audit.SessionEnded, audit.Success, "", h.client, "", 0}) // the grant's browser session ended

	h.clock.Advance(46 * time.Minute)
	if len(kidsAt(t, h.url)) != 2 {
		t.Fatal("no key was added")
	}
	expect(eventLine{audit.SigningKeyRotated, audit.Success, "", "", "scheduled", 0})

	events, records := trail.records(t)
	var got []eventLine
	for _, e := range events {
		got = append(got, eventLine{e.Type, e.Outcome, e.Username, e.ClientID, e.Reason, e.Count})
		if e.Time.IsZero() || (e.Replica != "test") != (e.Count > 0) || e.Count > 0 && e.ClientAddr != "127.0.0.1" {
			t.Errorf("%s: time %v, replica %q, address %q, count %d", e.Type, e.Time, e.Replica, e.ClientAddr, e.Count)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", lines(got), lines(want))
	}
	for _, s := range []string{secret, alicePassword, tr.AccessToken, tr.RefreshToken, tr.IDToken, other.IDToken, other.AccessToken, other.RefreshToken} {
		if strings.Contains(records, s) {
			t.Fatalf("the audit records contain a secret:\n%s", records)
		}
	}
}

func lines(ls []eventLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "  %v\n", l)
	}
	return b.String()
}

// TestAuditDeviceDecisions: approving and denying a device login record
// one event each, naming the user and the device's client, and neither the
// device code nor the user code.
func TestAuditDeviceDecisions(t *testing.T) {
	t.Parallel()
	var trail *auditTrail
	h := newHarness(t, sqlite(), func(c *issuer.Config) { trail = withAudit(t, c) })
	approved, denied := h.startDevice("openid offline_access"), h.startDevice("openid")
	b := issuertest.NewBrowser(t)
	if res := decide(h, b, h.approvalPage(b, approved.UserCode), "approve"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("approve: HTTP %d", res.Response.StatusCode)
	}
	if res := decide(h, b, h.approvalPage(b, denied.UserCode), "deny"); res.Response.StatusCode != http.StatusOK {
		t.Fatalf("deny: HTTP %d", res.Response.StatusCode)
	}
	events, records := trail.records(t)
	var got []eventLine
	for _, e := range events {
		if e.Type == audit.DeviceApproved || e.Type == audit.DeviceDenied {
			got = append(got, eventLine{e.Type, e.Outcome, e.Username, e.ClientID, e.Reason, e.Count})
		}
	}
	want := []eventLine{{audit.DeviceApproved, audit.Success, "alice", h.client, "", 0}, {audit.DeviceDenied, audit.Success, "alice", h.client, "", 0}}
	if !slices.Equal(got, want) {
		t.Errorf("device events:\n%s\nwant:\n%s", lines(got), lines(want))
	}
	for _, d := range []deviceAuth{approved, denied} {
		for _, s := range []string{d.DeviceCode, d.UserCode, strings.ReplaceAll(d.UserCode, "-", "")} {
			if strings.Contains(records, s) {
				t.Fatalf("the audit records contain a device or user code:\n%s", records)
			}
		}
	}
}

// TestAuditTokenExchange: a token exchange records its grant or the
// category of its refusal, never the subject token or the one issued.
func TestAuditTokenExchange(t *testing.T) {
	t.Parallel()
	var trail *auditTrail
	f := newExchangeFixture(t, sqlite(), func(c *issuer.Config) { trail = withAudit(t, c) })
	subject := f.ciToken(nil)
	ok := f.exchange(subject, nil)
	if ok.status != http.StatusOK {
		t.Fatalf("exchange: %d %s", ok.status, ok.Error)
	}
	f.exchange(subject, url.Values{"client_id": {"m-someone-else"}})
	f.exchange(subject, url.Values{"scope": {"admin"}})
	f.exchange(f.ciToken(func(c map[string]any) { c["sub"] = "repo:evil/app:ref:refs/heads/main" }), nil)
	if err := f.st.SetMachineClientDisabled(ctx, f.client.ID, true); err != nil {
		t.Fatal(err)
	}
	f.exchange(subject, nil)

	events, records := trail.records(t)
	var got []eventLine
	for _, e := range events {
		if e.Type == audit.TokenExchangeGrant {
			got = append(got, eventLine{e.Type, e.Outcome, e.Username, e.ClientID, e.Reason, e.Count})
		}
	}
	id := f.client.ID
	want := []eventLine{
		{audit.TokenExchangeGrant, audit.Success, "", id, "", 0},
		{audit.TokenExchangeGrant, audit.Failure, "", id, "client_mismatch", 0},
		{audit.TokenExchangeGrant, audit.Failure, "", id, "invalid_scope", 0},
		{audit.TokenExchangeGrant, audit.Failure, "", "", "no_matching_policy", 1},
		{audit.TokenExchangeGrant, audit.Failure, "", id, "client_disabled", 0},
	}
	if !slices.Equal(got, want) {
		t.Errorf("exchange events:\n%s\nwant:\n%s", lines(got), lines(want))
	}
	for _, s := range []string{subject, ok.AccessToken} {
		if strings.Contains(records, s) {
			t.Fatalf("the audit records contain a token:\n%s", records)
		}
	}
}
