package issuer_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// floodRequests is the security finding's figure: 20,000 authorize
// requests from one address once grew the SQLite data directory by 115 MB.
const floodRequests = 20000

// Bounds on the flood, so a slow machine fails the test rather than
// hanging it.
const (
	// floodWorkers is as many concurrent clients as the SQLite store has
	// connections: with more, requests only queue for them, and the flood
	// measured slower (on two CPUs, under the race detector or not).
	floodWorkers  = 4
	floodDeadline = 3 * time.Minute
	// maxFloodGrowth is the acceptance bound on the data directory's
	// growth. Stateless auth requests should leave it about unchanged.
	maxFloodGrowth = 10 << 20
)

// storedAuthRequests counts the rows of the auth request table, read
// from the SQLite file on a connection of its own.
func storedAuthRequests(t *testing.T, dir string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.SQLiteFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM nsauth_auth_requests`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// floodResult counts a flood's answers.
type floodResult struct {
	mu       sync.Mutex
	statuses map[int]int
	// badRetryAfter counts 429 answers without a positive whole-second
	// Retry-After, or without the plain-text page.
	badRetryAfter int
	errs          []error
	elapsed       time.Duration
}

func (r *floodResult) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("statuses %v, %d transport errors", r.statuses, len(r.errs))
}

// flood sends n GET requests for target from workers concurrent clients
// over keep-alive loopback connections. done counts the answers as they
// come. It stops early when ctx ends.
func flood(ctx context.Context, target string, n, workers int, done *atomic.Int64) *floodResult {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res := &floodResult{statuses: map[int]int{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				status, bad, err := floodOne(ctx, client, target)
				res.mu.Lock()
				if err != nil {
					res.errs = append(res.errs, err)
				} else {
					res.statuses[status]++
				}
				if bad {
					res.badRetryAfter++
				}
				res.mu.Unlock()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func floodOne(ctx context.Context, client *http.Client, target string) (int, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	bad := false
	if resp.StatusCode == http.StatusTooManyRequests {
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		bad = err != nil || secs < 1 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
			!strings.Contains(string(body), "Too many")
	}
	return resp.StatusCode, bad, nil
}

// timedLogin runs a whole login (authorize, login page, form post, code,
// token exchange) and returns how long it took.
func timedLogin(h *harness) time.Duration {
	h.t.Helper()
	start := time.Now()
	h.tokens(nil)
	return time.Since(start)
}

// TestAuthorizeFlood is the security finding's reproduction. With the rate
// limit off, 20,000 authorize requests from one address must leave the
// data directory (almost) as it was, and a login during the flood must
// work; with the default limit, the flood is answered 429. It does not run
// in parallel with other tests: it measures.
func TestAuthorizeFlood(t *testing.T) {
	t.Run("limit disabled, nothing stored", func(t *testing.T) {
		h := newHarness(t, sqlite(), func(c *issuer.Config) { c.AuthorizePerMinute = -1 })
		dir := storetest.SQLiteDir(t, h.st)
		baseline := timedLogin(h)
		before := storetest.DataDirSize(t, dir)

		ctx, cancel := context.WithTimeout(context.Background(), floodDeadline)
		defer cancel()
		var done atomic.Int64
		resc := make(chan *floodResult, 1)
		go func() {
			resc <- flood(ctx, h.authorizeURL(oauth2.GenerateVerifier(), nil), floodRequests, floodWorkers, &done)
		}()
		for done.Load() < floodRequests/10 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		during := timedLogin(h)
		overlapped := done.Load() < floodRequests
		res := <-resc
		if ctx.Err() != nil {
			t.Fatalf("the flood did not finish within %v: %d of %d answered, %v", floodDeadline, done.Load(), floodRequests, res)
		}
		after := storetest.DataDirSize(t, dir)
		rows := storedAuthRequests(t, dir)

		t.Logf("flood: %d GET /authorize from one address in %v (%.0f requests/s, %d workers): %v",
			floodRequests, res.elapsed.Round(time.Millisecond), float64(floodRequests)/res.elapsed.Seconds(), floodWorkers, res)
		t.Logf("data directory: %d bytes before, %d after: %+d bytes (the login's records included); %d rows in nsauth_auth_requests",
			before, after, after-before, rows)
		t.Logf("login (authorize, form, code, token): %v alone, %v during the flood (still running when it ended: %v)",
			baseline.Round(time.Millisecond), during.Round(time.Millisecond), overlapped)

		if len(res.errs) > 0 || res.statuses[http.StatusFound] != floodRequests {
			t.Fatalf("want %d redirects to the login page: %v (first error: %v)", floodRequests, res, firstErr(res.errs))
		}
		if after-before > maxFloodGrowth {
			t.Fatalf("the data directory grew by %d bytes, bound %d", after-before, maxFloodGrowth)
		}
		// The two logins' requests were stored and deleted when their codes
		// were redeemed; the flood's never were.
		if rows > 2 {
			t.Fatalf("%d auth requests stored after the flood and two logins", rows)
		}
	})

	t.Run("default limit answers 429 with Retry-After", func(t *testing.T) {
		h := newHarness(t, sqlite(), nil)
		dir := storetest.SQLiteDir(t, h.st)
		before := storetest.DataDirSize(t, dir)
		const n = 200
		ctx, cancel := context.WithTimeout(context.Background(), floodDeadline)
		defer cancel()
		var done atomic.Int64
		res := flood(ctx, h.authorizeURL(oauth2.GenerateVerifier(), nil), n, floodWorkers, &done)
		after := storetest.DataDirSize(t, dir)
		t.Logf("limited flood: %d GET /authorize in %v: %v; data directory %+d bytes",
			n, res.elapsed.Round(time.Millisecond), res, after-before)
		// The test clock stands still: the burst passes, nothing refills.
		if len(res.errs) > 0 || res.statuses[http.StatusFound] != issuer.DefaultAuthorizePerMinute ||
			res.statuses[http.StatusTooManyRequests] != n-issuer.DefaultAuthorizePerMinute {
			t.Fatalf("want %d redirects and %d refusals: %v (first error: %v)",
				issuer.DefaultAuthorizePerMinute, n-issuer.DefaultAuthorizePerMinute, res, firstErr(res.errs))
		}
		if res.badRetryAfter > 0 {
			t.Fatalf("%d refusals lack a Retry-After in whole seconds or the plain page", res.badRetryAfter)
		}
		// Neither the 60 requests let through nor the refusals write.
		if after != before {
			t.Fatalf("the data directory changed by %+d bytes", after-before)
		}
	})
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}
