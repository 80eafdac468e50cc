package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer/events"
)

// trail keeps what it is given, or fails every write with err.
type trail struct {
	mu       sync.Mutex
	rows     []audit.Event
	refusals []audit.Event
	err      error
}

func (t *trail) Record(_ context.Context, e audit.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rows = append(t.rows, e)
	return t.err
}

func (t *trail) RecordRefusal(_ context.Context, e audit.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refusals = append(t.refusals, e)
	return t.err
}

func (t *trail) Ref(secret string) string { return "ref-of-" + secret[:1] }

// RecordWith stores the change, then keeps the event as Record does.
func (t *trail) RecordWith(ctx context.Context, e audit.Event, write func(context.Context, *audit.Event) error) error {
	if err := write(ctx, nil); err != nil {
		return err
	}
	return t.Record(ctx, e)
}

// counts is every metric an Observer was told, by name.
type counts map[string]int

func observer(c counts) *events.Observer {
	return &events.Observer{
		Login:   func(o string) { c["login:"+o]++ },
		Lockout: func() { c["lockout"]++ },
		Replay:  func(k string) { c["replay:"+k]++ },
	}
}

// TestEachEventCountsExactlyOnce: every event the provider emits moves
// exactly the metric it stands for, once, and no other.
func TestEachEventCountsExactlyOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    audit.Event
		want counts
	}{
		{"login completed", audit.Event{Type: events.LoginCompleted}, counts{"login:success": 1}},
		{"login errored", audit.Event{Type: events.LoginErrored}, counts{"login:error": 1}},
		{"bad password", audit.Event{Type: audit.LoginFailed, Reason: "bad_password"}, counts{"login:wrong_credentials": 1}},
		{"unknown user", audit.Event{Type: audit.LoginFailed, Reason: "unknown_user"}, counts{"login:wrong_credentials": 1}},
		{"disabled", audit.Event{Type: audit.LoginFailed, Reason: "disabled"}, counts{"login:wrong_credentials": 1}},
		{"refused while locked", audit.Event{Type: audit.LoginFailed, Reason: "locked"}, counts{"login:locked_out": 1}},
		{"rate limited", audit.Event{Type: audit.LoginFailed, Reason: "rate_limited"}, counts{"login:busy": 1}},
		{"hashing busy", audit.Event{Type: audit.LoginFailed, Reason: "busy"}, counts{"login:busy": 1}},
		{"forged login form", audit.Event{Type: audit.LoginFailed, Reason: "csrf"}, counts{}},
		{"wrong code", audit.Event{Type: audit.SecondFactorFailed, Reason: "wrong_code"}, counts{"login:wrong_credentials": 1}},
		{"wrong recovery code", audit.Event{Type: audit.SecondFactorFailed, Reason: "wrong_recovery_code"}, counts{"login:wrong_credentials": 1}},
		{"replayed code", audit.Event{Type: audit.SecondFactorFailed, Reason: "replayed"}, counts{"login:wrong_credentials": 1}},
		{"second factor locked", audit.Event{Type: audit.SecondFactorFailed, Reason: "locked"}, counts{"login:locked_out": 1}},
		{"second factor rate limited", audit.Event{Type: audit.SecondFactorFailed, Reason: "rate_limited"}, counts{"login:busy": 1}},
		{"enrolment needed", audit.Event{Type: audit.SecondFactorFailed, Reason: "enrolment_needed"}, counts{}},
		{"forged second factor form", audit.Event{Type: audit.SecondFactorFailed, Reason: "csrf"}, counts{}},
		{"passkey bad assertion", audit.Event{Type: audit.PasskeyFailed, Reason: "bad_assertion"}, counts{"login:wrong_credentials": 1}},
		{"passkey unknown", audit.Event{Type: audit.PasskeyFailed, Reason: "unknown_credential"}, counts{"login:wrong_credentials": 1}},
		{"passkey expired", audit.Event{Type: audit.PasskeyFailed, Reason: "expired"}, counts{"login:wrong_credentials": 1}},
		{"passkey clone", audit.Event{Type: audit.PasskeyFailed, Reason: "clone_warning"}, counts{"login:wrong_credentials": 1}},
		{"passkey disabled", audit.Event{Type: audit.PasskeyFailed, Reason: "disabled"}, counts{"login:wrong_credentials": 1}},
		{"passkey registration refused", audit.Event{Type: audit.PasskeyFailed, Reason: "bad_attestation"}, counts{}},
		{"lockout", audit.Event{Type: audit.LoginLockedOut}, counts{"lockout": 1}},
		{"code replayed", audit.Event{Type: audit.CodeReplayed}, counts{"replay:authorization_code": 1}},
		{"refresh reuse", audit.Event{Type: audit.RefreshReuseDetected}, counts{"replay:refresh_token": 1}},
		{"device code replayed", audit.Event{Type: events.DeviceCodeReplayed}, counts{"replay:device_code": 1}},
		{"password accepted", audit.Event{Type: audit.LoginSucceeded}, counts{}},
		{"code exchanged", audit.Event{Type: audit.CodeExchanged}, counts{}},
		{"client refused", audit.Event{Type: audit.ClientAuthFailed, Reason: "bad_secret"}, counts{}},
		{"logout", audit.Event{Type: audit.Logout}, counts{}},
	}
	for _, tc := range tests {
		for _, way := range []string{"Record", "Refusal", "Note"} {
			t.Run(tc.name+"/"+way, func(t *testing.T) {
				t.Parallel()
				got := counts{}
				rec := events.New(&trail{}, observer(got), nil)
				ctx := context.Background()
				switch way {
				case "Record":
					_ = rec.Record(ctx, tc.e)
				case "Refusal":
					_ = rec.Refusal(ctx, tc.e)
				case "Note":
					rec.Note(ctx, tc.e)
				}
				if len(got) != len(tc.want) {
					t.Errorf("metrics %v, want exactly %v", got, tc.want)
				}
				for k, n := range tc.want {
					if got[k] != n {
						t.Errorf("%s moved by %d, want %d (all: %v)", k, got[k], n, got)
					}
				}
			})
		}
	}
}

// TestOneRowPerEvent: Record writes one row with the request's address
// and user agent, Refusal one aggregated refusal under the address's
// group, Note none; a required event that could not be written fails the
// caller, and its happening is counted all the same.
func TestOneRowPerEvent(t *testing.T) {
	t.Parallel()
	ctx := events.WithClient(context.Background(), events.Client{Addr: "2001:db8::1", Group: "2001:db8::/64", UserAgent: "curl"})
	tr := &trail{}
	got := counts{}
	rec := events.New(tr, observer(got), nil)
	if err := rec.Record(ctx, audit.Event{Type: audit.CodeReplayed}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Refusal(ctx, audit.Event{Type: audit.LoginFailed, Reason: "bad_password"}); err != nil {
		t.Fatal(err)
	}
	rec.Note(ctx, audit.Event{Type: events.LoginCompleted})
	if len(tr.rows) != 1 || tr.rows[0].ClientAddr != "2001:db8::1" || tr.rows[0].UserAgent != "curl" {
		t.Errorf("rows %+v, want one with the address and user agent", tr.rows)
	}
	if len(tr.refusals) != 1 || tr.refusals[0].ClientAddr != "2001:db8::/64" || tr.refusals[0].UserAgent != "" {
		t.Errorf("refusals %+v, want one under the address's group", tr.refusals)
	}
	if want := (counts{"replay:authorization_code": 1, "login:wrong_credentials": 1, "login:success": 1}); len(got) != len(want) ||
		got["replay:authorization_code"] != 1 || got["login:wrong_credentials"] != 1 || got["login:success"] != 1 {
		t.Errorf("metrics %v, want %v", got, want)
	}

	failing := &trail{err: errors.New("disk full")}
	got = counts{}
	rec = events.New(failing, observer(got), nil)
	if err := rec.Record(ctx, audit.Event{Type: audit.RefreshReuseDetected}); err == nil {
		t.Error("Record hid the trail's error")
	}
	if err := rec.Refusal(ctx, audit.Event{Type: audit.LoginLockedOut}); err == nil {
		t.Error("Refusal hid the trail's error")
	}
	if got["replay:refresh_token"] != 1 || got["lockout"] != 1 || len(got) != 2 {
		t.Errorf("metrics %v, want the refresh replay and the lockout once each", got)
	}
}

// TestLogLineFromEvent: each event logs one line, with its fields and
// never its refs; a nil Observer counts nothing and does not fail.
func TestLogLineFromEvent(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	rec := events.New(&trail{}, nil, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	_ = rec.Record(ctx, audit.Event{Type: audit.Logout, Subject: "u-1", ClientID: "cli",
		Refs: rec.Refs(audit.RefGrant, "grant-secret", audit.RefToken, "")})
	rec.Note(ctx, audit.Event{Type: events.DeviceCodeReplayed, ClientID: "tv"})
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", n, out)
	}
	for _, want := range []string{`msg="session ended"`, "event=session.logout", "user_id=u-1", "client_id=cli", "level=WARN", "client_id=tv"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ref-of") || strings.Contains(out, "grant-secret") {
		t.Errorf("the log holds a ref or a secret:\n%s", out)
	}
	if refs := rec.Refs(audit.RefGrant, "g", audit.RefToken, ""); len(refs) != 1 || refs[audit.RefGrant] != "ref-of-g" {
		t.Errorf("Refs %v, want the grant's alone", refs)
	}
}

// TestFailedLogsItsCauseOnce: a check that failed on an internal error is
// counted as an errored login and logged once, at error, with its cause;
// it writes no audit row.
func TestFailedLogsItsCauseOnce(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tr, c := &trail{}, counts{}
	rec := events.New(tr, observer(c), slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	rec.Failed(context.Background(), audit.Event{Type: events.LoginErrored, ClientID: "cli", Reason: "password"}, errors.New("database is locked"))
	out := buf.String()
	if n := strings.Count(out, "\n"); n != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", n, out)
	}
	for _, want := range []string{"level=ERROR", `error="database is locked"`, "reason=password", "client_id=cli"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	if len(c) != 1 || c["login:error"] != 1 {
		t.Errorf("metrics %v, want login:error once", c)
	}
	if len(tr.rows)+len(tr.refusals) != 0 {
		t.Errorf("%d rows written, want none", len(tr.rows)+len(tr.refusals))
	}
}

// TestBrowserEventsLogAtInfo: the passkey and enrolment-link events log
// the lines (and level) the login pages logged before the events were the
// one source of their lines.
func TestBrowserEventsLogAtInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		e    audit.Event
		msg  string
	}{
		{"passkey refused", audit.Event{Type: audit.PasskeyFailed, Outcome: audit.Failure, Reason: "bad_assertion"}, `msg="passkey refused"`},
		{"passkey registered", audit.Event{Type: audit.PasskeyRegistered, Username: "ada", Target: "laptop"}, `msg="passkey registered"`},
		{"enrolment link used", audit.Event{Type: audit.EnrolLinkUsed, Username: "ada"}, `msg="enrolment link used"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			rec := events.New(&trail{}, nil, slog.New(slog.NewTextHandler(&buf, nil)))
			_ = rec.Record(context.Background(), tc.e)
			out := buf.String()
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, tc.msg) || !strings.Contains(out, "level=INFO") {
				t.Fatalf("want one info line %s, got:\n%s", tc.msg, out)
			}
		})
	}
}

// TestSystemEventNamesNoClient: a happening no request caused (a signing
// key added on schedule) is one row with no client address or user agent,
// even when the request that triggered the work is in ctx, and one log
// line.
func TestSystemEventNamesNoClient(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tr := &trail{}
	rec := events.New(tr, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	ctx := events.WithClient(context.Background(), events.Client{Addr: "192.0.2.7", Group: "192.0.2.7", UserAgent: "curl"})
	if err := rec.System(ctx, audit.Event{Type: audit.SigningKeyRotated, Target: "kid-1", Reason: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	if len(tr.rows) != 1 || tr.rows[0].ClientAddr != "" || tr.rows[0].UserAgent != "" || tr.rows[0].Target != "kid-1" {
		t.Fatalf("rows %+v, want one row for kid-1 naming no client", tr.rows)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `msg="added a signing key"`) || !strings.Contains(out, "target=kid-1") || strings.Contains(out, "192.0.2.7") {
		t.Fatalf("want one line for the new key, naming no client:\n%s", out)
	}
}
