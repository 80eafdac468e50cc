package issuer_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqlitedriver "modernc.org/sqlite"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// commitCounts counts SQLite's commits of write transactions, by the
// directory of the database file, for the connections opened after
// watchCommits first ran.
var (
	commitCounts sync.Map // directory → *atomic.Int64
	watchOnce    sync.Once
)

// watchCommits has every SQLite connection opened from now on count its
// commits in commitCounts. Call it before any parallel test runs: the
// driver's hooks are not guarded against connections opened meanwhile.
func watchCommits() {
	watchOnce.Do(func() {
		sqlitedriver.RegisterConnectionHook(func(conn sqlitedriver.ExecQuerierContext, dsn string) error {
			u, err := url.Parse(dsn)
			hooks, ok := conn.(sqlitedriver.HookRegisterer)
			if err != nil || !ok {
				return nil
			}
			n, _ := commitCounts.LoadOrStore(filepath.Dir(u.Path), new(atomic.Int64))
			hooks.RegisterCommitHook(func() int32 { n.(*atomic.Int64).Add(1); return 0 })
			return nil
		})
	})
}

// commits is the count of write transactions committed in the database
// of the store in dir.
func commits(dir string) int64 {
	n, ok := commitCounts.Load(dir)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// heldSink is the store as an audit sink whose batches wait for release:
// while they wait, the only write transactions are the requests' own.
type heldSink struct {
	audit.BatchSink
	started chan struct{} // receives once per batch, before it waits
	mu      sync.Mutex
	release chan struct{} // closed: batches go through
}

func (s *heldSink) InsertAuditEvents(ctx context.Context, es []audit.Event) error {
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	s.started <- struct{}{}
	<-release
	return s.BatchSink.InsertAuditEvents(ctx, es)
}

// hold makes the batches from now on wait, until the returned function
// lets them through.
func (s *heldSink) hold() (let func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.started) > 0 {
		<-s.started
	}
	release := make(chan struct{})
	s.release = release
	return func() { close(release) }
}

// TestOneWriteTransactionPerToken: a refresh commits one write
// transaction of its own, the rotation with its access token's record (a
// code exchange's refresh and access tokens share one too); its audit
// event is committed with the events of the requests beside it by the
// audit trail's group commit, in one transaction per batch. With the
// audit writer held on the event of a first request, n more concurrent
// requests make n commits, where an audit row each would make 2n; once
// released, their events are stored in one more, and each request
// answers. (A machine token's event shares its record's transaction
// instead: TestMachineTokenOneWriteTransaction.)
func TestOneWriteTransactionPerToken(t *testing.T) {
	watchCommits()
	t.Parallel()
	sink := &heldSink{started: make(chan struct{}, 64), release: make(chan struct{})}
	close(sink.release)
	var auditor *audit.Auditor
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		sink.BatchSink = c.Store
		a, err := audit.New(audit.Config{Key: []byte("an audit key of thirty-two bytes"), Sink: sink, Now: c.Now, GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Audit, auditor = a, a
	})
	t.Cleanup(func() { _ = auditor.Close(context.Background()) })
	dir := storetest.SQLiteDir(t, h.st)
	const n = 4
	var refreshTokens, codes, verifiers []string
	for range n + 1 {
		refreshTokens = append(refreshTokens, h.tokens(nil).RefreshToken)
		v := oauth2.GenerateVerifier()
		codes, verifiers = append(codes, h.login(v, nil)), append(verifiers, v)
	}
	if commits(dir) == 0 {
		t.Fatal("no commit was counted: the hook is not watching the harness's database")
	}
	tests := []struct {
		name  string
		issue func(i int) tokenResponse
		// before is a token's write transactions before its event is
		// recorded, writes all of them but its event's. A code exchange
		// redeems the code before it records its tokens, and forgets the
		// auth request after its event.
		before, writes int64
	}{
		{"refresh", func(i int) tokenResponse { return h.refresh(refreshTokens[i]) }, 1, 1},
		{"code exchange", func(i int) tokenResponse { return h.exchange(codes[i], verifiers[i]) }, 2, 3},
	}
	for _, tc := range tests {
		name, issue := tc.name, tc.issue
		t.Run(name, func(t *testing.T) {
			let := sink.hold()
			var once sync.Once
			defer once.Do(let)
			answers := make(chan tokenResponse, n+1)
			before := commits(dir)
			go func() { answers <- issue(n) }()
			select {
			case <-sink.started: // the writer holds the first request's event
			case <-time.After(10 * time.Second):
				t.Fatal("no audit batch was written: group commit is off")
			}
			for i := range n {
				go func() { answers <- issue(i) }()
			}
			for deadline := time.Now().Add(10 * time.Second); auditor.Queued() < n; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d events queued, want %d", auditor.Queued(), n)
				}
			}
			if got, want := commits(dir)-before, tc.before*(n+1); got != want {
				t.Errorf("%d tokens made %d write transactions, want %d", n+1, got, want)
			}
			once.Do(let)
			for range n + 1 {
				if tr := <-answers; tr.status != http.StatusOK || tr.AccessToken == "" {
					t.Fatalf("HTTP %d %s", tr.status, tr.Error)
				}
			}
			if got, want := commits(dir)-before, tc.writes*(n+1)+2; got != want {
				t.Errorf("with their events, %d tokens made %d write transactions, want %d", n+1, got, want)
			}
		})
	}
	events, _ := (&auditTrail{st: h.st, stream: &lockedBuffer{}}).records(t)
	count := map[audit.Type]int{}
	for _, e := range events {
		count[e.Type]++
	}
	for _, typ := range []audit.Type{audit.RefreshRotated, audit.CodeExchanged} {
		if count[typ] < n+1 {
			t.Errorf("%d %s events stored, want %d or more", count[typ], typ, n+1)
		}
	}
}

// TestMachineTokenOneWriteTransaction: a client-credentials token is one
// write transaction in all, its record and its audit event together
// (audit.Recorder.RecordWith), whether the tokens are asked for one at a
// time or many at once; and every token answered has its event, naming
// it, in the trail.
func TestMachineTokenOneWriteTransaction(t *testing.T) {
	watchCommits()
	t.Parallel()
	key := []byte("an audit key of thirty-two bytes")
	var auditor *audit.Auditor
	h := newHarness(t, sqlite(), func(c *issuer.Config) {
		c.MachineTokensPerMinute = -1
		c.MachineTokensPerAddressPerMinute = -1
		a, err := audit.New(audit.Config{Key: key, Sink: c.Store, Now: c.Now, GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Audit, auditor = a, a
	})
	t.Cleanup(func() { _ = auditor.Close(context.Background()) })
	dir := storetest.SQLiteDir(t, h.st)
	id, secret := h.machine("one-commit", []string{"read"}, 0)
	h.clientCredentials(id, secret, nil, false) // the client's first use may write (a key, say)
	var issued []string
	for _, tc := range []struct {
		name       string
		concurrent int
	}{
		{"one at a time", 1},
		{"sixteen at once", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const rounds = 4
			before := commits(dir)
			for range rounds {
				answers := make(chan tokenResponse, tc.concurrent)
				for range tc.concurrent {
					go func() { answers <- h.clientCredentials(id, secret, nil, false) }()
				}
				for range tc.concurrent {
					tr := <-answers
					if tr.status != http.StatusOK || tr.AccessToken == "" {
						t.Fatalf("HTTP %d %s", tr.status, tr.Error)
					}
					issued = append(issued, tr.AccessToken)
				}
			}
			if got, want := commits(dir)-before, int64(rounds*tc.concurrent); got != want {
				t.Errorf("%d tokens made %d write transactions, want %d", rounds*tc.concurrent, got, want)
			}
		})
	}
	events, _ := (&auditTrail{st: h.st, stream: &lockedBuffer{}}).records(t)
	named := map[string]bool{}
	for _, e := range events {
		if e.Type == audit.ClientCredentialsGrant && e.Outcome != audit.Failure {
			named[e.Refs[audit.RefToken]] = true
		}
	}
	for i, tok := range issued {
		if !named[audit.Hash(key, tok)] {
			t.Fatalf("token %d of %d has no %s event naming it", i+1, len(issued), audit.ClientCredentialsGrant)
		}
	}
}
