package issuer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

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

// TestOneWriteTransactionPerToken: a token issued by client credentials,
// by a token exchange or by a refresh is one write transaction in all: its record (with the
// refresh token's rotation) and its audit event are committed together
// (audit.Recorder.RecordWith), whether the tokens are asked for one at a
// time or many at once. A code exchange makes three: the code redeemed
// (first, alone, so that it is used once), the tokens with their event,
// and the auth request forgotten. Every token answered has its event,
// naming it, in the trail.
func TestOneWriteTransactionPerToken(t *testing.T) {
	watchCommits()
	t.Parallel()
	key := []byte("an audit key of thirty-two bytes")
	var auditor *audit.Auditor
	f := newExchangeFixture(t, sqlite(), func(c *issuer.Config) {
		c.MachineTokensPerMinute = -1
		c.MachineTokensPerAddressPerMinute = -1
		c.ExchangePerMinute, c.ExchangePerPolicyMinute = -1, -1
		a, err := audit.New(audit.Config{Key: key, Sink: c.Store, Now: c.Now, GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		c.Audit, auditor = a, a
	})
	h := f.harness
	t.Cleanup(func() { _ = auditor.Close(context.Background()) })
	dir := storetest.SQLiteDir(t, h.st)
	id, secret := h.machine("one-commit", []string{"read"}, 0)
	h.clientCredentials(id, secret, nil, false) // a first use may write (a signing key, say)
	ciJob := f.ciToken(nil)                     // a CI job's token, exchanged again and again
	const rounds, concurrent = 2, 8
	// Each case's grants, prepared before its writes are counted.
	var refreshTokens, codes, verifiers []string
	for range 2 * rounds * concurrent {
		refreshTokens = append(refreshTokens, h.tokens(nil).RefreshToken)
	}
	for range rounds * (1 + concurrent) {
		v := oauth2.GenerateVerifier()
		codes, verifiers = append(codes, h.login(v, nil)), append(verifiers, v)
	}
	var next atomic.Int64 // the next prepared grant of the running case
	tests := []struct {
		name   string
		issue  func() tokenResponse
		writes int
		event  audit.Type
	}{
		{"client credentials", func() tokenResponse { return h.clientCredentials(id, secret, nil, false) }, 1, audit.ClientCredentialsGrant},
		{"refresh", func() tokenResponse { return h.refresh(refreshTokens[next.Add(1)-1]) }, 1, audit.RefreshRotated},
		{"code exchange", func() tokenResponse { i := next.Add(1) - 1; return h.exchange(codes[i], verifiers[i]) }, 3, audit.CodeExchanged},
		{"token exchange", func() tokenResponse {
			a := f.exchange(ciJob, nil)
			return tokenResponse{status: a.status, AccessToken: a.AccessToken, Error: a.Error}
		}, 1, audit.TokenExchangeGrant},
	}
	named := map[string]audit.Type{} // a token's ref → the type of its event
	var issued []tokenResponse
	var types []audit.Type
	for _, tc := range tests {
		for _, at := range []int{1, concurrent} {
			t.Run(fmt.Sprintf("%s, %d at once", tc.name, at), func(t *testing.T) {
				before := commits(dir)
				for range rounds {
					answers := make(chan tokenResponse, at)
					for range at {
						go func() { answers <- tc.issue() }()
					}
					for range at {
						tr := <-answers
						if tr.status != http.StatusOK || tr.AccessToken == "" {
							t.Fatalf("HTTP %d %s", tr.status, tr.Error)
						}
						issued, types = append(issued, tr), append(types, tc.event)
					}
				}
				if got, want := commits(dir)-before, int64(rounds*at*tc.writes); got != want {
					t.Errorf("%d tokens made %d write transactions, want %d", rounds*at, got, want)
				}
			})
		}
		next.Store(0)
	}
	events, _ := (&auditTrail{st: h.st, stream: &lockedBuffer{}}).records(t)
	for _, e := range events {
		if e.Outcome != audit.Failure && e.Refs[audit.RefToken] != "" {
			named[e.Refs[audit.RefToken]] = e.Type
		}
	}
	for i, tr := range issued {
		if got := named[audit.Hash(key, tr.AccessToken)]; got != types[i] {
			t.Errorf("token %d of %d: its event is %q, want %q", i+1, len(issued), got, types[i])
		}
	}
}
