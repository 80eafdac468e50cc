package servercmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/store"
)

var auditCmdT0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// auditFixture is a SQLite data directory as nsauth serve leaves it, with
// an Auditor recording into it on a clock the test moves.
type auditFixture struct {
	dir   string
	st    *store.Store
	a     *audit.Auditor
	now   time.Time
	token string // a secret value an event refers to
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	ctx := context.Background()
	f := &auditFixture{dir: t.TempDir(), now: auditCmdT0, token: "an-access-token-value"}
	clock := func() time.Time { return f.now }
	st, err := app.OpenSealedStore(ctx, config.Builtin{DataDir: f.dir}, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	key, err := app.AuditKey(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	if f.a, err = audit.New(audit.Config{Key: key, Sink: st, Now: clock, Replica: "host-1", Required: true}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Event{
		{Type: audit.LoginFailed, Outcome: audit.Failure, Username: "alice", ClientID: "neosync-cli", ClientAddr: "192.0.2.7", Reason: "bad_credentials"},
		{Type: audit.LoginSucceeded, Username: "alice", Subject: "sub-alice", ClientID: "neosync-cli", ClientAddr: "192.0.2.7"},
		{Type: audit.CodeIssued, Username: "alice", Subject: "sub-alice", ClientID: "neosync-cli", Refs: map[string]string{audit.RefCode: f.a.Ref("a-code")}},
		{Type: audit.TokenRevoked, Username: "bob", Subject: "sub-bob", ClientID: "neosync-cli", Refs: map[string]string{audit.RefToken: f.a.Ref(f.token)}},
		{Type: audit.UserChanged, Username: "carol", Reason: "added", Actor: "root"},
	} {
		f.record(t, e)
		f.now = f.now.Add(10 * time.Minute)
	}
	return f
}

func (f *auditFixture) record(t *testing.T, e audit.Event) {
	t.Helper()
	if err := f.a.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// run runs nsauth-server with args on the fixture's data directory.
func (f *auditFixture) run(ctx context.Context, a *cli.App, args ...string) int {
	return cli.Run(ctx, a, append(args, "--data-dir", f.dir), Commands...)
}

func (f *auditFixture) app(in string) *cli.App {
	a := testApp()
	a.In = strings.NewReader(in)
	a.Now = func() time.Time { return auditCmdT0.Add(time.Hour) }
	return a
}

func jsonTypes(t *testing.T, out string) []audit.Type {
	t.Helper()
	var types []audit.Type
	for _, e := range jsonEvents(t, out) {
		if e.ID == 0 || e.Time.IsZero() {
			t.Errorf("line without id or time: %+v", e)
		}
		types = append(types, e.Type)
	}
	return types
}

func TestAuditCommandFilters(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	ref := f.a.Ref(f.token)
	tests := []struct {
		name string
		args []string
		want []audit.Type
	}{
		{"default: the last day", nil, []audit.Type{audit.LoginFailed, audit.LoginSucceeded, audit.CodeIssued, audit.TokenRevoked, audit.UserChanged}},
		{"since a duration", []string{"--since", "35m"}, []audit.Type{audit.TokenRevoked, audit.UserChanged}},
		{"since a time", []string{"--since", "2026-11-30T12:20:00Z"}, []audit.Type{audit.CodeIssued, audit.TokenRevoked, audit.UserChanged}},
		{"since a later date", []string{"--since", "2026-12-01"}, nil},
		{"a type", []string{"--type", "login.failed"}, []audit.Type{audit.LoginFailed}},
		{"a type prefix and a type", []string{"--type", "login,admin.user"}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded, audit.UserChanged}},
		{"user by name", []string{"--user", "bob"}, []audit.Type{audit.TokenRevoked}},
		{"user by subject", []string{"--user", "sub-alice"}, []audit.Type{audit.LoginSucceeded, audit.CodeIssued}},
		{"client", []string{"--client", "neosync-cli", "--type", "code"}, []audit.Type{audit.CodeIssued}},
		{"ref", []string{"--ref", strings.ToUpper(ref)}, []audit.Type{audit.TokenRevoked}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := f.app("")
			if code := f.run(context.Background(), a, append([]string{"audit", "-o", "json"}, tc.args...)...); code != cli.ExitOK {
				t.Fatalf("exit %d: %s", code, a.ErrOut)
			}
			if got := jsonTypes(t, a.Out.(*bytes.Buffer).String()); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuditCommandTable(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	a := f.app("")
	if code := f.run(context.Background(), a, "audit"); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	lines := strings.Split(strings.TrimSpace(a.Out.(*bytes.Buffer).String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines, want a header and 5 events:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	tests := []struct {
		name, line string
		want       []string
	}{
		{"header", lines[0], []string{"TIME", "TYPE", "OUTCOME", "USER", "CLIENT", "ADDRESS", "DETAIL"}},
		{"failed login", lines[1], []string{"2026-11-30T12:00:00.000Z", "login.failed", "failure", "alice", "neosync-cli", "192.0.2.7", "bad_credentials"}},
		{"subject when no username", lines[3], []string{"code.issued", "alice"}},
		{"administrative change", lines[5], []string{"admin.user", "carol", "added by root"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.line, w) {
					t.Errorf("%q lacks %q", tc.line, w)
				}
			}
		})
	}
}

func TestAuditCommandRefusesBadFlags(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	tests := []struct {
		name string
		args []string
	}{
		{"unknown type", []string{"--type", "bogus"}},
		{"bad since", []string{"--since", "yesterday"}},
		{"negative since", []string{"--since", "-1h"}},
		{"bad output", []string{"-o", "yaml"}},
		{"ref not hex", []string{"--ref", "%"}},
		{"hash takes no argument", []string{"hash", "a-secret-on-argv"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := f.app("")
			if code := f.run(context.Background(), a, append([]string{"audit"}, tc.args...)...); code != cli.ExitUsage {
				t.Errorf("exit %d, want %d (usage): %s", code, cli.ExitUsage, a.ErrOut)
			}
		})
	}
}

// TestAuditHashFindsTheEvents: audit hash, given a token on standard
// input, prints the ref its events carry, and --ref finds them.
func TestAuditHashFindsTheEvents(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	a := f.app(f.token + "\n")
	if code := f.run(context.Background(), a, "audit", "hash"); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	ref := strings.TrimSpace(a.Out.(*bytes.Buffer).String())
	stored, err := f.st.AuditEvents(context.Background(), store.AuditFilter{Types: []audit.Type{audit.TokenRevoked}})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].Refs[audit.RefToken] != ref {
		t.Fatalf("audit hash printed %q; the stored event has %v", ref, stored)
	}
	b := f.app("")
	if code := f.run(context.Background(), b, "audit", "-o", "json", "--ref", ref); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, b.ErrOut)
	}
	if got := jsonTypes(t, b.Out.(*bytes.Buffer).String()); !slices.Equal(got, []audit.Type{audit.TokenRevoked}) {
		t.Errorf("--ref found %v", got)
	}
	empty := f.app("")
	if code := f.run(context.Background(), empty, "audit", "hash"); code != cli.ExitUsage {
		t.Errorf("audit hash with nothing on stdin: exit %d, want usage", code)
	}
}

// follow runs `nsauth audit --follow -o json --type types` with a until
// cancel, its polls driven through cli.App.After: polled receives when it
// waits, tick wakes it, done its exit code.
func (f *auditFixture) follow(a *cli.App, types string) (polled chan struct{}, tick chan time.Time, done chan int, cancel func()) {
	polled, tick, done = make(chan struct{}), make(chan time.Time), make(chan int)
	a.After = func(time.Duration) <-chan time.Time {
		polled <- struct{}{}
		return tick
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- f.run(ctx, a, "audit", "--follow", "-o", "json", "--type", types) }()
	return polled, tick, done, cancel
}

// TestAuditFollow: a follower prints the events that exist, then an event
// recorded after it started, and ends without error when interrupted. The
// test drives the follower's polls through cli.App.After: no sleeping.
func TestAuditFollow(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	a := f.app("")
	polled, tick, done, cancel := f.follow(a, "login,device")
	defer cancel()

	<-polled // the follower has printed what existed and waits
	f.record(t, audit.Event{Type: audit.DeviceApproved, Username: "alice", ClientID: "neosync-cli"})
	f.record(t, audit.Event{Type: audit.Logout, Username: "alice"}) // filtered out
	tick <- time.Time{}
	<-polled // it has polled again
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	want := []audit.Type{audit.LoginFailed, audit.LoginSucceeded, audit.DeviceApproved}
	if got := jsonTypes(t, a.Out.(*bytes.Buffer).String()); !slices.Equal(got, want) {
		t.Errorf("follower printed %v, want %v", got, want)
	}
}

// jsonEvents reads the JSON lines of nsauth audit -o json.
func jsonEvents(t *testing.T, out string) []audit.Event {
	t.Helper()
	var events []audit.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	return events
}

// TestAuditCommandShowsCounts: an aggregated row of refusals shows its
// count, in the table's DETAIL and as "count" in JSON; a row that is one
// event has none, and reads as before.
func TestAuditCommandShowsCounts(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	for range 3 {
		if err := f.a.RecordRefusal(context.Background(), audit.Event{Type: audit.ClientAuthFailed, Outcome: audit.Failure,
			ClientAddr: "198.51.100.4", Reason: "unknown_client", UserAgent: "curl/8"}); err != nil {
			t.Fatal(err)
		}
	}
	a := f.app("")
	if code := f.run(context.Background(), a, "audit", "--type", "login.failed,client"); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	lines := strings.Split(strings.TrimSpace(a.Out.(*bytes.Buffer).String()), "\n")
	want := []string{
		"TIME                      TYPE                      OUTCOME  USER              CLIENT                ADDRESS          DETAIL",
		"2026-11-30T12:00:00.000Z  login.failed              failure  alice             neosync-cli           192.0.2.7        bad_credentials",
		"2026-11-30T12:50:00.000Z  client.auth_failed        failure  -                 -                     198.51.100.4     unknown_client count=3",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("table:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	a = f.app("")
	if code := f.run(context.Background(), a, "audit", "--type", "login.failed,client", "-o", "json"); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	out := a.Out.(*bytes.Buffer).String()
	events := jsonEvents(t, out)
	if len(events) != 2 || events[0].Count != 0 || events[1].Count != 3 || events[1].UserAgent != "" {
		t.Errorf("JSON events %+v, want one without a count and one counting 3 without a user agent", events)
	}
	first, _, _ := strings.Cut(out, "\n")
	if strings.Contains(first, `"count"`) || !strings.Contains(out, `"count":3`) {
		t.Errorf("JSON:\n%s\nwant count only on the aggregated row", out)
	}
}

// TestAuditFollowWaitsForAggregatedRows: --follow prints an aggregated row
// once its minute is over, with the count it ends with, and what was
// recorded after it only then, in order.
func TestAuditFollowWaitsForAggregatedRows(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t)
	a := f.app("")
	var clock atomic.Int64 // the follower's, apart from the recorder's f.now
	setClock := func(t time.Time) { clock.Store(t.UnixNano()) }
	setClock(f.now.Add(10 * time.Second))
	a.Now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	polled, tick, done, cancel := f.follow(a, "client,login.succeeded")
	defer cancel()
	refuse := func() {
		if err := f.a.RecordRefusal(context.Background(), audit.Event{Type: audit.ClientAuthFailed, Outcome: audit.Failure,
			ClientAddr: "198.51.100.4", Reason: "bad_secret", ClientID: "neosync-cli"}); err != nil {
			t.Fatal(err)
		}
	}
	printed := func() []audit.Event { return jsonEvents(t, a.Out.(*bytes.Buffer).String()) }

	<-polled // the existing events are printed
	refuse()
	refuse()
	f.record(t, audit.Event{Type: audit.LoginSucceeded, Username: "alice", ClientID: "neosync-cli"})
	setClock(f.now.Add(50 * time.Second))
	tick <- time.Time{}
	<-polled
	if got := printed(); len(got) != 1 {
		t.Fatalf("within the row's minute the follower printed %+v, want only the earlier login", got)
	}
	refuse()
	setClock(f.now.Add(time.Minute + auditRowSettle))
	tick <- time.Time{}
	<-polled
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, a.ErrOut)
	}
	got := printed()
	if len(got) != 3 || got[1].Type != audit.ClientAuthFailed || got[1].Count != 3 || got[2].Type != audit.LoginSucceeded {
		t.Errorf("follower printed %+v, want the earlier login, the row counting 3, then the later login", got)
	}
}
