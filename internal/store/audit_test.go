package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// testClock is a settable clock for stores and auditors.
type testClock struct{ ms atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.ms.Store(t.UnixMilli())
	return c
}

func (c *testClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

var auditT0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// auditedStore is a store with an Auditor writing to it, on a test clock.
func auditedStore(t *testing.T, b storetest.Backend, opts store.Options) (*store.Store, *audit.Auditor, *testClock) {
	t.Helper()
	clock := newTestClock(auditT0)
	opts.Now = clock.Now
	st := b.Open(t, opts)
	key, err := st.EnsureSecret(context.Background(), audit.KeyName, store.RandomToken(32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := audit.New(audit.Config{Key: []byte(key), Sink: st, Now: clock.Now, Replica: "r1", Required: true})
	if err != nil {
		t.Fatal(err)
	}
	return st, a, clock
}

func TestAuditEventsFilters(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		st, a, clock := auditedStore(t, b, store.Options{})
		ctx := context.Background()
		tokenRef := a.Ref("access-token-1")
		events := []audit.Event{
			{Type: audit.LoginFailed, Outcome: audit.Failure, Username: "alice", ClientAddr: "192.0.2.1", Reason: "bad_credentials"},
			{Type: audit.LoginSucceeded, Username: "alice", Subject: "sub-alice", ClientID: "neosync-cli"},
			{Type: audit.CodeIssued, Subject: "sub-alice", ClientID: "neosync-cli", Refs: map[string]string{audit.RefCode: a.Ref("code-1")}},
			{Type: audit.TokenRevoked, Subject: "sub-bob", Username: "bob", ClientID: "other", Refs: map[string]string{audit.RefToken: tokenRef}},
			{Type: audit.UserChanged, Username: "carol", Reason: "added", Actor: "root"},
		}
		for _, e := range events {
			if err := a.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
		}
		tests := []struct {
			name   string
			filter store.AuditFilter
			want   []audit.Type
		}{
			{"everything", store.AuditFilter{}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded, audit.CodeIssued, audit.TokenRevoked, audit.UserChanged}},
			{"since is inclusive", store.AuditFilter{Since: auditT0.Add(2 * time.Minute)}, []audit.Type{audit.CodeIssued, audit.TokenRevoked, audit.UserChanged}},
			{"until is exclusive", store.AuditFilter{Until: auditT0.Add(2 * time.Minute)}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded}},
			{"types", store.AuditFilter{Types: []audit.Type{audit.LoginFailed, audit.UserChanged}}, []audit.Type{audit.LoginFailed, audit.UserChanged}},
			{"user by username", store.AuditFilter{User: "alice"}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded}},
			{"user by subject", store.AuditFilter{User: "sub-alice"}, []audit.Type{audit.LoginSucceeded, audit.CodeIssued}},
			{"client", store.AuditFilter{ClientID: "neosync-cli"}, []audit.Type{audit.LoginSucceeded, audit.CodeIssued}},
			{"ref", store.AuditFilter{Ref: tokenRef}, []audit.Type{audit.TokenRevoked}},
			{"ref of nothing", store.AuditFilter{Ref: a.Ref("unknown")}, nil},
			{"limit", store.AuditFilter{Limit: 2}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded}},
			{"newest with a limit, oldest first", store.AuditFilter{Limit: 2, Newest: true}, []audit.Type{audit.TokenRevoked, audit.UserChanged}},
			{"newest of a user", store.AuditFilter{User: "sub-alice", Limit: 1, Newest: true}, []audit.Type{audit.CodeIssued}},
			{"newest without a limit is everything", store.AuditFilter{Newest: true}, []audit.Type{audit.LoginFailed, audit.LoginSucceeded, audit.CodeIssued, audit.TokenRevoked, audit.UserChanged}},
			{"combined", store.AuditFilter{User: "alice", Types: []audit.Type{audit.LoginSucceeded}, ClientID: "neosync-cli"}, []audit.Type{audit.LoginSucceeded}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := st.AuditEvents(ctx, tc.filter)
				if err != nil {
					t.Fatal(err)
				}
				var types []audit.Type
				for _, e := range got {
					types = append(types, e.Type)
				}
				if !slices.Equal(types, tc.want) {
					t.Errorf("got %v, want %v", types, tc.want)
				}
			})
		}
		t.Run("fields round-trip, and after-id continues", func(t *testing.T) {
			all, err := st.AuditEvents(ctx, store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			e := all[3]
			if e.ID == 0 || !e.Time.Equal(auditT0.Add(3*time.Minute)) || e.Replica != "r1" || e.Refs[audit.RefToken] != tokenRef ||
				e.Username != "bob" || e.Subject != "sub-bob" || e.Outcome != audit.Success {
				t.Errorf("stored event %+v", e)
			}
			if all[4].Actor != "root" || all[4].Reason != "added" {
				t.Errorf("admin event %+v", all[4])
			}
			rest, err := st.AuditEvents(ctx, store.AuditFilter{AfterID: e.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(rest) != 1 || rest[0].Type != audit.UserChanged {
				t.Errorf("after id %d: %+v", e.ID, rest)
			}
		})
		t.Run("a ref that is not hex is refused", func(t *testing.T) {
			if _, err := st.AuditEvents(ctx, store.AuditFilter{Ref: `%"`}); err == nil {
				t.Error("a LIKE pattern was accepted as a ref")
			}
		})
	})
}

func TestAuditRetention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		retention time.Duration
		age       time.Duration // the clock's advance after the first event
		kept      int           // of two events, the second recorded at the end
	}{
		{"older than the retention go", time.Hour, 2 * time.Hour, 1},
		{"within the retention stay", time.Hour, 30 * time.Minute, 2},
		{"default is 90 days", 0, 89 * 24 * time.Hour, 2},
		{"default ends after 90 days", 0, 91 * 24 * time.Hour, 1},
		{"negative keeps for good", -1, 10 * 365 * 24 * time.Hour, 2},
	}
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				st, a, clock := auditedStore(t, b, store.Options{AuditRetention: tc.retention})
				ctx := context.Background()
				if err := a.Record(ctx, audit.Event{Type: audit.SigningKeyRotated}); err != nil {
					t.Fatal(err)
				}
				clock.Advance(tc.age)
				if err := a.Record(ctx, audit.Event{Type: audit.SigningKeyRotated}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.DeleteExpired(ctx); err != nil {
					t.Fatal(err)
				}
				got, err := st.AuditEvents(ctx, store.AuditFilter{})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.kept {
					t.Errorf("kept %d events, want %d", len(got), tc.kept)
				}
			})
		}
	})
}

// TestAuditRequiredFailsClosed: with recording required, an event that the
// store cannot write (its database is closed) is an error the caller must
// turn into a failed request; without, it is counted and Record succeeds.
func TestAuditRequiredFailsClosed(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, required := range []bool{true, false} {
			st := b.Open(t, store.Options{})
			a, err := audit.New(audit.Config{Key: []byte(store.RandomToken(32)), Sink: st, Required: required})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			err = a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "alice"})
			switch {
			case required && !errors.Is(err, audit.ErrNotRecorded):
				t.Errorf("required: Record on a closed store = %v, want ErrNotRecorded", err)
			case !required && err != nil:
				t.Errorf("not required: Record on a closed store = %v, want nil", err)
			}
			if a.Failures() != 1 {
				t.Errorf("required=%v: Failures = %d, want 1", required, a.Failures())
			}
		}
	})
}

// TestAuditHoldsNoSecret: the HMAC key is sealed at rest, and events built
// with Ref for known secrets hold none of them, in the database or the
// stream.
func TestAuditHoldsNoSecret(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		st, _, clock := auditedStore(t, b, store.Options{})
		key, err := st.Secret(ctx, audit.KeyName)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := store.RawForTest(st, `SELECT value FROM nsauth_instance_values WHERE name = ?`, audit.KeyName)
		if err != nil {
			t.Fatal(err)
		}
		if !seal.IsSealed(raw) || bytes.Contains(raw, []byte(key)) {
			t.Errorf("the audit key is stored in clear: %q", raw)
		}

		var stream bytes.Buffer
		a, err := audit.New(audit.Config{Key: []byte(key), Sink: st, Stream: audit.NewStream(&stream), Now: clock.Now, Required: true})
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string]string{
			audit.RefToken:   "eyJhbGciOiJFUzI1NiJ9.access-token-secret-part",
			audit.RefRefresh: "refresh-token-secret-value-0123456789",
			audit.RefCode:    "authorization-code-secret-value",
			audit.RefDevice:  "device-code-secret-value",
		}
		for name, v := range secrets {
			if err := a.Record(ctx, audit.Event{Type: audit.RefreshReuseDetected, Outcome: audit.Failure, Refs: map[string]string{name: a.Ref(v)}}); err != nil {
				t.Fatal(err)
			}
		}
		stored, err := st.AuditEvents(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		dump, _ := json.Marshal(stored)
		places := map[string][]byte{"stored events": dump, "stream": stream.Bytes()}
		if b.Name == "sqlite" {
			dir := storetest.SQLiteDir(t, st)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err == nil {
					places["file "+e.Name()] = data
				}
			}
		}
		for where, data := range places {
			for name, v := range secrets {
				if bytes.Contains(data, []byte(v)) {
					t.Errorf("%s holds the %s secret", where, name)
				}
				// The files (database and write-ahead log) hold the refs
				// somewhere; the rows and the stream, in each event.
				if isRecord(where) && !bytes.Contains(data, []byte(a.Ref(v))) {
					t.Errorf("%s lacks the ref of the %s secret", where, name)
				}
			}
		}
	})
}

func isRecord(where string) bool { return where == "stored events" || where == "stream" }

// refusalTally is what a test expects of aggregated rows: the count of each
// (type, address, reason), apart from RefusalsDropped rows, whose counts
// are summed under dropped.
type refusalTally struct {
	counts  map[string]int64
	rows    int
	dropped int64
}

func tallyRefusals(t *testing.T, st *store.Store) refusalTally {
	t.Helper()
	events, err := st.AuditEvents(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := refusalTally{counts: map[string]int64{}, rows: len(events)}
	for _, e := range events {
		if e.Count < 1 {
			t.Fatalf("a refusal was stored as a single event: %+v", e)
		}
		if e.UserAgent != "" || e.TraceID != "" || e.Replica != "" || e.Time.Second() != 0 || e.Time.Nanosecond() != 0 {
			t.Errorf("an aggregated row keeps what varies per request, or a time within its minute: %+v", e)
		}
		if e.Type == audit.RefusalsDropped {
			got.dropped += e.Count
			continue
		}
		got.counts[string(e.Type)+" "+e.ClientAddr+" "+e.Reason] += e.Count
	}
	return got
}

// TestAuditRefusalsAggregateAcrossReplicas: two replicas (two stores on one
// database, each with its own Auditor) record the same refusals at the same
// time, many goroutines each; every (address, reason) ends as one row of
// the minute whose count is the number of refusals sent, whichever replica
// recorded them. A count kept by reading the row and writing it back would
// lose some of them here.
func TestAuditRefusalsAggregateAcrossReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := newTestClock(auditT0.Add(17 * time.Second))
		first := b.Open(t, store.Options{Now: clock.Now})
		second := b.Reopen(t, first, store.Options{Now: clock.Now})
		var auditors []*audit.Auditor
		for i, st := range []*store.Store{first, second} {
			a, err := audit.New(audit.Config{Sink: st, Now: clock.Now, Replica: fmt.Sprintf("r%d", i), Required: true})
			if err != nil {
				t.Fatal(err)
			}
			auditors = append(auditors, a)
		}
		const (
			addresses = 4
			workers   = 8 // per replica
			each      = 25
		)
		reasons := []string{"unknown_client", "bad_secret"}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, a := range auditors {
			for w := range workers {
				wg.Go(func() {
					<-start
					for i := range each {
						e := audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure,
							ClientAddr: fmt.Sprintf("192.0.2.%d", (w+i)%addresses), Reason: reasons[i%len(reasons)],
							UserAgent: fmt.Sprintf("agent-%d", i), TraceID: fmt.Sprintf("%032x", i)}
						if err := a.RecordRefusal(context.Background(), e); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
		}
		close(start)
		wg.Wait()

		got := tallyRefusals(t, first)
		var sum int64
		for _, n := range got.counts {
			sum += n
		}
		if want := int64(len(auditors) * workers * each); sum != want || got.dropped != 0 {
			t.Errorf("counts sum to %d (dropped %d), want %d: %v", sum, got.dropped, want, got.counts)
		}
		if want := addresses * len(reasons); got.rows != want || len(got.counts) != want {
			t.Errorf("%d rows for %d (address, reason) pairs, want one each: %v", got.rows, len(got.counts), got.counts)
		}

		// The next minute starts rows of its own.
		clock.Advance(time.Minute)
		if err := auditors[1].RecordRefusal(context.Background(), audit.Event{Type: audit.ClientCredentialsGrant, Outcome: audit.Failure,
			ClientAddr: "192.0.2.0", Reason: "bad_secret"}); err != nil {
			t.Fatal(err)
		}
		events, err := first.AuditEvents(context.Background(), store.AuditFilter{Since: auditT0.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].Count != 1 || !events[0].Time.Equal(auditT0.Add(time.Minute)) {
			t.Errorf("the next minute's refusal: %+v, want one row of its own, count 1", events)
		}
	})
}

// TestAuditRefusalRowsAreBounded: past its bound of rows a minute, an
// Auditor counts refusals in the minute's dropped row of their type and
// reason; nothing goes uncounted, and the rows of single events keep no
// count.
func TestAuditRefusalRowsAreBounded(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := newTestClock(auditT0)
		st := b.Open(t, store.Options{Now: clock.Now})
		const limit = 5
		a, err := audit.New(audit.Config{Sink: st, Now: clock.Now, Required: true, RefusalRowsPerMinute: limit})
		if err != nil {
			t.Fatal(err)
		}
		const addresses, each = 12, 3
		for i := range addresses * each {
			if err := a.RecordRefusal(context.Background(), audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure,
				ClientAddr: fmt.Sprintf("198.51.100.%d", i%addresses), Reason: "unknown_user"}); err != nil {
				t.Fatal(err)
			}
		}
		got := tallyRefusals(t, st)
		if got.rows != limit+1 || len(got.counts) != limit {
			t.Errorf("%d rows (%d of addresses), want %d and one dropped row", got.rows, len(got.counts), limit)
		}
		var kept int64
		for _, n := range got.counts {
			kept += n
		}
		if kept+got.dropped != addresses*each || uint64(got.dropped) != a.RefusalsDropped() || got.dropped == 0 {
			t.Errorf("kept %d + dropped %d (metric %d), want %d in all", kept, got.dropped, a.RefusalsDropped(), addresses*each)
		}
		if err := a.Record(context.Background(), audit.Event{Type: audit.LoginSucceeded, Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		events, err := st.AuditEvents(context.Background(), store.AuditFilter{Types: []audit.Type{audit.LoginSucceeded}})
		if err != nil || len(events) != 1 || events[0].Count != 0 {
			t.Errorf("a single event: %+v (%v), want count 0", events, err)
		}
	})
}

// TestInsertAuditEvents: a batch of group commit stores each event as the
// row InsertAuditEvent stores for it, in the order given, however many
// statements it takes (more than audit.MaxBatch events take two).
func TestInsertAuditEvents(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		for _, n := range []int{1, 3, audit.MaxBatch + 6} {
			var es []audit.Event
			for i := range n {
				e := audit.Event{Time: auditT0.Add(time.Duration(i) * time.Millisecond), Type: audit.ClientCredentialsGrant, Outcome: audit.Success,
					Subject: fmt.Sprintf("s%d", i), ClientID: "machine", ClientAddr: "192.0.2.1", UserAgent: "ua", TraceID: "t", Replica: "r1"}
				if i%2 == 0 {
					e.Outcome, e.Reason, e.Refs = audit.Failure, "invalid_scope", map[string]string{audit.RefToken: audit.Hash([]byte("k"), fmt.Sprint(i))}
				}
				es = append(es, e)
			}
			batched, single := b.Open(t, store.Options{}), b.Open(t, store.Options{})
			if err := batched.InsertAuditEvents(context.Background(), es); err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if err := single.InsertAuditEvent(context.Background(), e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := batched.AuditEvents(context.Background(), store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			want, err := single.AuditEvents(context.Background(), store.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].ID = 0
			}
			for i := range want {
				want[i].ID = 0
			}
			if len(got) != n || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%d events: stored in a batch\n%v\none by one\n%v", n, got, want)
			}
		}
	})
}

// TestRecordAccessTokenWithEvent: a machine token's record and its event
// are committed together or not at all: a record that cannot be stored
// (here, a token id already taken) leaves no event, and without an event
// the token is recorded alone.
func TestRecordAccessTokenWithEvent(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t, store.Options{})
		c := &store.MachineClient{Name: "machine", SecretHash: store.HashSecret("not a secret")}
		if err := s.CreateMachineClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		event := func(subject string) *audit.Event {
			return &audit.Event{Time: auditT0, Type: audit.ClientCredentialsGrant, Outcome: audit.Success, Subject: subject, ClientID: c.ID}
		}
		token := func(id string) *store.AccessToken {
			return &store.AccessToken{ID: id, GrantID: store.NewID(), ClientID: c.ID, ExpiresAt: time.Now().Add(time.Hour)}
		}
		tests := []struct {
			name      string
			token     *store.AccessToken
			event     *audit.Event
			wantErr   bool
			wantEvent bool
		}{
			{"together", token("t1"), event("first"), false, true},
			{"the record fails: no event", token("t1"), event("second"), true, false},
			{"no event: the record alone", token("t2"), nil, false, false},
		}
		for _, tc := range tests {
			err := s.RecordAccessTokenWithEvent(ctx, tc.token, tc.event)
			if (err != nil) != tc.wantErr {
				t.Fatalf("%s: RecordAccessTokenWithEvent = %v, want an error: %v", tc.name, err, tc.wantErr)
			}
			if !tc.wantErr {
				if _, err := s.ActiveAccessToken(ctx, tc.token.ID); err != nil {
					t.Fatalf("%s: the token was not recorded: %v", tc.name, err)
				}
			}
			if tc.event == nil {
				continue
			}
			got, err := s.AuditEvents(ctx, store.AuditFilter{User: tc.event.Subject})
			if err != nil {
				t.Fatal(err)
			}
			if (len(got) == 1) != tc.wantEvent || len(got) > 1 {
				t.Errorf("%s: %d events stored, want one: %v", tc.name, len(got), tc.wantEvent)
			}
		}
	})
}
