package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the lost-answer diagnosis
	"golang.org/x/oauth2"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	adminPassword = "faults-admin-password"
	redirectURI   = "http://127.0.0.1:4242/api/auth/callback"
	// issuerURL is the replicas' shared issuer: the address a load balancer
	// in front of them would have. Nothing ever connects to it: replicas
	// reach their provider in process, and the test's browser is pointed
	// at one replica or the other.
	issuerURL = "http://127.0.0.1:1"

	sessionsPerReplica = 16
	// reuseWarning is what the provider logs when a rotated refresh token
	// comes back and its family is revoked.
	reuseWarning = "refresh token reused"

	durationEnv = "NSAUTH_FAULTS_DURATION"
	seedEnv     = "NSAUTH_FAULTS_SEED"
)

// TestReplicaFaults is issue 11's fault test. Two replicas run on one
// PostgreSQL database, each through its own TCP proxy, at their own
// addresses; 16 sessions per replica loop RefreshCli and CheckToken while
// replica A is killed with SIGKILL (timed to land while refreshes are in
// flight) and restarted at the same address, and the proxies cut every
// database connection for a few seconds, alternately both replicas' and
// one replica's. A client whose call fails retries the same refresh token
// on the other replica, as a client that never saw the answer must.
//
// It passes when every session survives to a last refresh and CheckToken,
// every answer was OK or Unavailable (transport errors only from a replica
// that was down), no refresh token was taken for reused, and replica B's
// resident memory did not grow by half. The summary gives calls and
// outcomes, the longest time a session went without a successful call,
// the faults, how many refreshes lost their answer after the database had
// committed them, and B's memory.
func TestReplicaFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two replicas for minutes")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs SIGKILL, /proc and the 127.0.0.0/8 loopback: Linux only")
	}
	duration, seed := runSettings(t, durationEnv, 2*time.Minute, 20*time.Second, seedEnv)
	rng := rand.New(rand.NewPCG(seed, 0))

	pgURL := storetest.PostgresURL(t)
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bin := buildNsauth(t)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logDir := t.TempDir()
	home := t.TempDir()
	replicas := make([]*replica, 2)
	proxies := make([]*storetest.Proxy, 2)
	secretKey := seal.GenerateKey() // the replicas' one key-encryption key
	for i, name := range []string{"A", "B"} {
		u, err := url.Parse(pgURL)
		if err != nil {
			t.Fatal(err)
		}
		proxies[i] = storetest.StartProxy(t, u.Host)
		u.Host = proxies[i].Addr()
		addr := servetest.FreeAddr(t, fmt.Sprintf("127.0.0.%d", i+2))
		replicas[i] = &replica{
			name: name, bin: bin, addr: addr, url: "http://" + addr, logDir: logDir,
			args: []string{
				"--listen", addr, "--issuer", issuerURL, "--log-format", "json",
				// Every session comes from 127.0.0.1 and logs in as admin:
				// no per-address or per-account limit may refuse them.
				"--rate-limit", "0", "--authorize-rate-limit", "0", "--login-attempts", "1000",
			},
			env: []string{
				"HOME=" + home,
				"NSAUTH_DATABASE_URL=" + u.String(),
				"NSAUTH_SECRET_KEY=" + secretKey,
				"NSAUTH_ADMIN_PASSWORD=" + adminPassword,
			},
		}
	}
	startReplicas(t, ctx, replicas)
	var wg sync.WaitGroup

	transport := &http.Transport{MaxIdleConnsPerHost: 2 * sessionsPerReplica, IdleConnTimeout: time.Minute}
	t.Cleanup(transport.CloseIdleConnections)
	httpClient := &http.Client{Transport: transport}
	endpoints := make([]*endpoint, len(replicas))
	for i, r := range replicas {
		endpoints[i] = &endpoint{r: r, api: mgmtv1alpha1connect.NewAuthServiceClient(httpClient, r.url)}
	}

	// Log every session in up front, on its home replica.
	sessions := make([]*session, 0, len(replicas)*sessionsPerReplica)
	for i := range len(replicas) * sessionsPerReplica {
		s := &session{
			id: i, home: i % len(replicas), endpoints: endpoints, db: db,
			rng:   rand.New(rand.NewPCG(seed, uint64(i)+1)),
			pause: 150 * time.Millisecond,
			calls: map[string]int{}, lostAnswers: map[outcome]int{},
		}
		tok := login(t, endpoints[s.home])
		s.refreshToken, s.accessToken = tok.GetRefreshToken(), tok.GetAccessToken()
		if s.refreshToken == "" {
			t.Fatal("LoginCli gave no refresh token for scope offline_access")
		}
		sessions = append(sessions, s)
	}

	start := time.Now()
	stop := start.Add(duration)
	warmUp := min(max(duration/8, 5*time.Second), 15*time.Second)
	coolDown := min(max(duration/10, 5*time.Second), 15*time.Second)
	for _, s := range sessions {
		wg.Go(func() { s.run(ctx, stop) })
	}

	// Replica B is never killed: its memory is sampled from the end of the
	// warm-up to the end of the run. The baseline is taken once it has
	// been through one kill of A (serving A's sessions too) and one outage:
	// what it needs for the faults themselves is not a leak.
	survivor := replicas[1]
	sleep(ctx, warmUp)
	var mem rssFigures
	if mem.warm, err = survivor.rssKiB(); err != nil {
		t.Fatalf("reading replica B's RSS: %v", err)
	}
	var memMu sync.Mutex
	mem.peak = mem.warm
	samplerDone := make(chan struct{})
	samplerCtx, stopSampler := context.WithCancel(ctx)
	go func() {
		defer close(samplerDone)
		for samplerCtx.Err() == nil {
			if v, err := survivor.rssKiB(); err == nil {
				memMu.Lock()
				mem.peak = max(mem.peak, v)
				mem.samples = append(mem.samples, rssSample{time.Since(start), v})
				memMu.Unlock()
			}
			sleep(samplerCtx, 2*time.Second)
		}
	}()
	var baselineErr error
	faults := runFaults(t, ctx, rng, replicas, endpoints, proxies, start.Add(duration-coolDown), func() {
		v, err := survivor.rssKiB()
		memMu.Lock()
		mem.baseline, baselineErr = v, err
		memMu.Unlock()
	})
	if baselineErr != nil {
		t.Fatalf("reading replica B's RSS: %v", baselineErr)
	}

	wg.Wait()
	stopSampler()
	<-samplerDone
	if mem.end, err = survivor.rssKiB(); err != nil {
		t.Fatalf("reading replica B's RSS: %v", err)
	}
	elapsed := time.Since(start)

	finishSessions(ctx, sessions)
	reuses := countReuses(t, replicas)
	summarize(t, sessions, faults, reuses, elapsed, mem)

	for _, s := range sessions {
		if s.lost != "" {
			t.Errorf("session %d (home replica %s) lost: %s", s.id, replicas[s.home].name, s.lost)
		}
		if s.refreshes < 2 {
			t.Errorf("session %d made %d successful refreshes: the run proves nothing for it", s.id, s.refreshes)
		}
		for _, v := range s.violations[:min(len(s.violations), 5)] {
			t.Errorf("session %d: %s", s.id, v)
		}
		if len(s.violations) > 5 {
			t.Errorf("session %d: %d more violations", s.id, len(s.violations)-5)
		}
	}
	for i, r := range replicas {
		if reuses[i] > 0 {
			t.Errorf("replica %s logged %q %d time(s): a session's family was revoked", r.name, reuseWarning, reuses[i])
		}
		if !r.running() {
			t.Errorf("replica %s is not running at the end (it was started %d time(s))", r.name, r.starts)
		}
	}
	if t.Failed() {
		// The replicas' logs hold no secret (the secret-hygiene tests see to
		// it) and vanish with the test's temporary directory: show their
		// warnings and errors.
		for _, r := range replicas {
			summary, err := r.logSummary(10)
			if err != nil {
				t.Logf("reading replica %s's logs: %v", r.name, err)
			}
			t.Logf("replica %s's warnings and errors (started %d time(s)):\n%s", r.name, r.starts, summary)
		}
	}
	if faults.kills == 0 || faults.outages == 0 {
		t.Errorf("the run had %d kill(s) and %d outage(s): both kinds must happen", faults.kills, faults.outages)
	}
	// Flat memory, with a generous bound: over the default two minutes the
	// verifier's cache of checked tokens (authn.DefaultCacheEntries, each
	// refresh a new token) is still filling, which measured +13 to +29 %
	// from the baseline; a five-minute run levelled off at +39 % from the
	// third minute on. Growth by more than half is not the cache.
	if mem.end > mem.baseline*3/2 {
		t.Errorf("replica B's RSS grew from %d KiB after the first kill and outage to %d KiB at the end (more than +50%%)", mem.baseline, mem.end)
	}
}

// login runs a whole CLI login on ep as admin: an authorize URL from the
// AuthService, the login form posted by an HTTP client sent to the replica
// instead of the issuer's address, LoginCli.
func login(t *testing.T, ep *endpoint) *mgmtv1alpha1.AccessToken {
	t.Helper()
	ctx := context.Background()
	verifier := oauth2.GenerateVerifier()
	challenge, method := oauth2.S256ChallengeFromVerifier(verifier), "S256"
	authz, err := ep.api.GetAuthorizeUrl(ctx, connect.NewRequest(&mgmtv1alpha1.GetAuthorizeUrlRequest{
		State: "faults", RedirectUri: redirectURI, Scope: "openid offline_access",
		CodeChallenge: &challenge, CodeChallengeMethod: &method,
	}))
	if err != nil {
		t.Fatalf("GetAuthorizeUrl on replica %s: %v", ep.r.name, err)
	}
	browser := issuertest.NewBrowser(t)
	browser.Rewrite = func(u *url.URL) { u.Host = ep.r.addr }
	loc := browser.Login(t, authz.Msg.GetUrl(), "admin", adminPassword)
	resp, err := ep.api.LoginCli(ctx, connect.NewRequest(&mgmtv1alpha1.LoginCliRequest{
		Code: loc.Query().Get("code"), RedirectUri: redirectURI, CodeVerifier: &verifier,
	}))
	if err != nil {
		t.Fatalf("LoginCli on replica %s: %v", ep.r.name, err)
	}
	return resp.Msg.GetAccessToken()
}

// faultLog is what runFaults did.
type faultLog struct {
	kills, outages  int
	inFlightAtKill  []int64
	restartTimes    []time.Duration
	outageDurations []time.Duration
}

// rssFigures are replica B's resident set sizes, in KiB.
type rssFigures struct {
	warm     int64 // at the end of the warm-up
	baseline int64 // after the first kill and the first outage
	end      int64 // when the sessions stopped
	peak     int64 // highest of the samples, every 2 s from the warm-up
	// samples are every sample from the warm-up on, for the summary's
	// timeline.
	samples []rssSample
}

type rssSample struct {
	at  time.Duration // since the sessions started
	kib int64
}

// outageLength is how long the database stays cut each time.
const outageLength = 3 * time.Second

// runFaults alternates the two faults until end: SIGKILL replica A while
// refreshes are in flight to it and start it again after a short pause,
// then cut the database connections for outageLength (both replicas', then
// A's alone, then B's alone, in turn), with a random pause before each.
// At least one of each happens however short the run; afterFirstRound is
// called once both have.
func runFaults(t *testing.T, ctx context.Context, rng *rand.Rand, replicas []*replica, endpoints []*endpoint, proxies []*storetest.Proxy, end time.Time, afterFirstRound func()) faultLog {
	t.Helper()
	var log faultLog
	a := replicas[0]
	for i := 0; ctx.Err() == nil; i++ {
		pause := 2*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
		if i >= 2 && time.Now().Add(pause+outageLength).After(end) {
			break
		}
		sleep(ctx, pause)
		if i%2 == 0 {
			// Wait (briefly) for refreshes in flight, so that some kills
			// land between a rotation's commit and its answer.
			deadline := time.Now().Add(2 * time.Second)
			for endpoints[0].refreshing.Load() < 2 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			inFlight := endpoints[0].refreshing.Load()
			if err := a.kill(); err != nil {
				t.Fatal(err)
			}
			log.kills++
			log.inFlightAtKill = append(log.inFlightAtKill, inFlight)
			killedAt := time.Now()
			sleep(ctx, 500*time.Millisecond+time.Duration(rng.Int64N(int64(1500*time.Millisecond))))
			sctx, scancel := context.WithTimeout(ctx, time.Minute)
			err := a.start(sctx)
			scancel()
			if err != nil {
				t.Fatal(err)
			}
			log.restartTimes = append(log.restartTimes, time.Since(killedAt))
			t.Logf("fault %d: SIGKILL replica A with %d refresh(es) in flight to it; serving again %v later", i+1, inFlight, time.Since(killedAt).Round(time.Millisecond))
			continue
		}
		var cut []*storetest.Proxy
		var which string
		switch (i / 2) % 3 {
		case 0:
			cut, which = proxies, "both replicas'"
		case 1:
			cut, which = proxies[:1], "replica A's"
		default:
			cut, which = proxies[1:], "replica B's"
		}
		for _, p := range cut {
			p.Cut()
		}
		cutAt := time.Now()
		sleep(ctx, outageLength)
		for _, p := range cut {
			p.Restore()
		}
		log.outages++
		log.outageDurations = append(log.outageDurations, time.Since(cutAt))
		t.Logf("fault %d: cut %s database connections for %v", i+1, which, time.Since(cutAt).Round(time.Millisecond))
		if i == 1 {
			afterFirstRound()
		}
	}
	return log
}

// summarize logs the figures of the run: no token, only counts and times.
func summarize(t *testing.T, sessions []*session, faults faultLog, reuses []int, elapsed time.Duration, mem rssFigures) {
	t.Helper()
	calls := map[string]int{}
	lostAnswers := map[outcome]int{}
	total, refreshes, refused, lostSessions, violations := 0, 0, 0, 0, 0
	var gaps []time.Duration
	for _, s := range sessions {
		for k, v := range s.calls {
			calls[k] += v
			total += v
		}
		refreshes += s.refreshes
		refused += s.refused
		for k, v := range s.lostAnswers {
			lostAnswers[k] += v
		}
		violations += len(s.violations)
		if s.lost != "" {
			lostSessions++
		}
		gaps = append(gaps, s.longestGap)
	}
	slices.Sort(gaps)
	var b strings.Builder
	fmt.Fprintf(&b, "fault run: %v, %d sessions, %d calls (%.0f/s), %d successful refreshes\n", elapsed.Round(time.Second), len(sessions), total, float64(total)/elapsed.Seconds(), refreshes)
	for _, k := range slices.Sorted(maps.Keys(calls)) {
		fmt.Fprintf(&b, "  %-45s %d\n", k, calls[k])
	}
	fmt.Fprintf(&b, "faults: %d SIGKILL of replica A (refreshes in flight at each: %v; serving again after %v), %d database outages (%v)\n",
		faults.kills, faults.inFlightAtKill, roundAll(faults.restartTimes), faults.outages, roundAll(faults.outageDurations))
	fmt.Fprintf(&b, "longest unavailability per session: max %v, median %v, min %v\n",
		gaps[len(gaps)-1].Round(time.Millisecond), gaps[len(gaps)/2].Round(time.Millisecond), gaps[0].Round(time.Millisecond))
	fmt.Fprintf(&b, "refreshes committed in the database whose answer the client did not get (then retried with the used token): %d", sum(lostAnswers))
	for _, k := range slices.Sorted(maps.Keys(lostAnswers)) {
		fmt.Fprintf(&b, ", %d after %q", lostAnswers[k], k)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "false reuse detections logged (%q): %d on A, %d on B; refreshes refused (Unauthenticated, reuse or not): %d; sessions lost: %d; other violations: %d\n",
		reuseWarning, reuses[0], reuses[1], refused, lostSessions, violations)
	fmt.Fprintf(&b, "replica B RSS: %d KiB after warm-up, %d KiB after the first kill and outage, %d KiB at the end (%+.1f%% from there), %d KiB peak sampled",
		mem.warm, mem.baseline, mem.end, 100*float64(mem.end-mem.baseline)/float64(mem.baseline), mem.peak)
	// A timeline of about ten points, to tell growth that levels off (the
	// verifier's cache of checked tokens filling up to its bound) from
	// growth that goes on.
	b.WriteString("; timeline:")
	step := max(len(mem.samples)/10, 1)
	for i := 0; i < len(mem.samples); i += step {
		fmt.Fprintf(&b, " %v %d", mem.samples[i].at.Round(time.Second), mem.samples[i].kib)
	}
	t.Log(b.String())
}

func sum[K comparable](m map[K]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
