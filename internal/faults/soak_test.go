//go:build soak

package faults_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/gen/nsauth/admin/v1/adminv1connect"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

const (
	soakDurationEnv = "NSAUTH_SOAK_DURATION"
	soakSeedEnv     = "NSAUTH_SOAK_SEED"
	// soakAccessTTL is the replicas' access-token life, the shortest
	// allowed, so that the clock's jumps (clockJump) outlive it and the
	// verifier's clock skew (60 s) together.
	soakAccessTTL = time.Minute
	clockJump     = 3 * time.Minute
	// revocationDeadline is how soon a revocation must reach CheckToken on
	// the other replica after each fault (issue 26).
	revocationDeadline = time.Second
	// flatBound is how far replica B's RSS and goroutines may move over
	// the last half of the run.
	flatBound = 0.10

	soakSessionsPerReplica = 8
	soakPeople             = 4
	soakPassword           = "soak-user-password"
)

// TestSoak is issue 26's soak: two replicas on a PostgreSQL cluster of
// the test's own, each through a TCP proxy, under mixed traffic (sessions
// looping RefreshCli and CheckToken over Connect and over gRPC on HTTP/2;
// people logging in through the login page with password and TOTP;
// device logins; machine clients' client-credentials grants; admin
// commands) while faults come in turn: SIGKILL of replica A and of
// replica B, the database connections cut (both replicas', A's, B's),
// PostgreSQL restarted, and the replicas' clock jumping forward past the
// access tokens' life. After each fault a login is revoked and CheckToken
// on the other replica must refuse its access token within a second.
//
// It passes when no session is lost, no refresh token is taken for
// reused, every completed login is in the audit trail, every revocation
// arrived in time, no call had an answer but OK or Unavailable (between
// faults: OK only, for the sessions; no Internal or HTTP 500 of the admin
// commands, the token endpoint or the login pages, even during faults),
// and replica B's RSS and goroutines moved by at most 10 % over the last
// half: the medians of a sample a second in its first eighth and in its
// last (B is killed only in the first 3/8 of the run). Password hashing
// (argon2id takes 19 MiB a hash) swings RSS by tens of MiB from second to
// second, which a median of 75 samples rides out and a leak does not;
// the figures also give each window's 10th percentile and the heap in
// use. NSAUTH_SOAK_DURATION sets the length (default 10m);
// NSAUTH_SOAK_RESOURCES=FILE writes every sample of B to FILE as CSV.
//
//	go test -tags soak -run TestSoak -count=1 -timeout 40m -v ./internal/faults/
func TestSoak(t *testing.T) {
	duration, seed := runSettings(t, soakDurationEnv, 10*time.Minute, time.Minute, soakSeedEnv)

	rng := rand.New(rand.NewPCG(seed, 0))
	pg := startPGCluster(t)
	db, err := sql.Open("pgx", pg.url("nsauth"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	bin := buildNsauth(t, "nsauthsoak")

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	logDir := t.TempDir()
	home := t.TempDir()
	clock := &soakClockFile{path: filepath.Join(t.TempDir(), "clock")}
	if err := clock.write(0); err != nil {
		t.Fatal(err)
	}
	replicas := make([]*replica, 2)
	proxies := make([]*storetest.Proxy, 2)
	secretKey := seal.GenerateKey()
	for i, name := range []string{"A", "B"} {
		proxies[i] = storetest.StartProxy(t, "127.0.0.1:"+pg.port)
		u, _ := url.Parse(pg.url("nsauth"))
		u.Host = proxies[i].Addr()
		addr := servetest.FreeAddr(t, fmt.Sprintf("127.0.0.%d", i+2))
		replicas[i] = &replica{
			name: name, bin: bin, addr: addr, url: "http://" + addr, logDir: logDir,
			args: []string{
				"--listen", addr, "--issuer", issuerURL, "--log-format", "json",
				"--access-token-ttl", soakAccessTTL.String(),
				"--rate-limit", "0", "--authorize-rate-limit", "0", "--login-attempts", "1000",
				"--device-poll-rate-limit", "0", "--machine-token-rate-limit", "0", "--machine-token-address-rate-limit", "0",
			},
			env: []string{
				"HOME=" + home,
				"NSAUTH_DATABASE_URL=" + u.String(),
				"NSAUTH_SECRET_KEY=" + secretKey,
				"NSAUTH_ADMIN_PASSWORD=" + adminPassword,
				"NSAUTH_SOAK_CLOCK_FILE=" + clock.path,
			},
		}
	}
	startReplicas(t, ctx, replicas)
	var wg sync.WaitGroup

	// Clients: Connect over HTTP/1.1, gRPC over HTTP/2 without TLS.
	h1 := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Transport{Protocols: &protocols, IdleConnTimeout: time.Minute}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2.CloseIdleConnections)
	h1Client, h2Client := &http.Client{Transport: h1}, &http.Client{Transport: h2}
	log := &callLog{}
	faults := &faultWindows{}
	tr := &soakTraffic{faults: faults, clock: clock, log: log}
	connectEPs, grpcEPs := make([]*endpoint, 2), make([]*endpoint, 2)
	for i, r := range replicas {
		connectEPs[i] = &endpoint{r: r, api: mgmtv1alpha1connect.NewAuthServiceClient(h1Client, r.url)}
		grpcEPs[i] = &endpoint{r: r, api: mgmtv1alpha1connect.NewAuthServiceClient(h2Client, r.url, connect.WithGRPC())}
		tr.endpoints = append(tr.endpoints, &soakEndpoint{
			r: r, api: connectEPs[i], grpc: grpcEPs[i],
			admin: adminv1connect.NewAdminServiceClient(h1Client, r.url),
			web:   &http.Client{Transport: h1, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		})
	}

	// The accounts: the administrator's login for the admin commands,
	// people with TOTP, device users, a machine client, the probe of
	// revocations.
	adminTok := login(t, connectEPs[0])
	admin := &adminSession{refresh: adminTok.GetRefreshToken(), access: adminTok.GetAccessToken()}
	adm := tr.endpoints[0].admin
	mustAdmin := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	people := make([]*person, soakPeople)
	for i := range people {
		p := &person{name: fmt.Sprintf("soak-person-%d", i), password: soakPassword}
		_, err := adm.CreateUser(ctx, withBearer(&adminv1.CreateUserRequest{Username: p.name, Password: p.password}, admin.access))
		mustAdmin("CreateUser "+p.name, err)
		enrolTOTP(t, ctx, tr, p, admin)
		people[i] = p
	}
	deviceUsers := []string{"soak-device-0", "soak-device-1"}
	for _, u := range append(slices.Clone(deviceUsers), "soak-probe") {
		_, err := adm.CreateUser(ctx, withBearer(&adminv1.CreateUserRequest{Username: u, Password: soakPassword}, admin.access))
		mustAdmin("CreateUser "+u, err)
	}
	mc, err := adm.CreateMachineClient(ctx, withBearer(&adminv1.CreateMachineClientRequest{Name: "soak-machine"}, admin.access))
	mustAdmin("CreateMachineClient", err)
	machineID, machineSecret := mc.Msg.GetClient().GetId(), mc.Msg.GetClientSecret()

	// Sessions: half of them call over gRPC.
	sessions := make([]*session, 0, 2*soakSessionsPerReplica)
	for i := range 2 * soakSessionsPerReplica {
		eps := connectEPs
		if i%4 >= 2 {
			eps = grpcEPs
		}
		s := &session{
			id: i, home: i % 2, endpoints: eps, db: db,
			rng:   rand.New(rand.NewPCG(seed, uint64(i)+1)),
			pause: 400 * time.Millisecond,
			calls: map[string]int{}, lostAnswers: map[outcome]int{},
			clockJumps: &clock.jumps,
		}
		rpcSuffix := ""
		if i%4 >= 2 {
			rpcSuffix = " (gRPC)"
		}
		s.observe = func(method string, start time.Time, took time.Duration, o outcome) {
			log.add(method+rpcSuffix, start, took, o)
		}
		tok := login(t, eps[s.home])
		s.refreshToken, s.accessToken = tok.GetRefreshToken(), tok.GetAccessToken()
		sessions = append(sessions, s)
	}

	start := time.Now()
	stop := start.Add(duration)
	// B is last killed before 3/8 of the run, so that the process measured
	// over the last half has run for more than a minute (at 10 minutes)
	// when it begins: longer than the access tokens live, and so longer
	// than it takes for its caches of token checks to hold as many entries
	// as there are live tokens. Memory growing from an empty process to
	// that is warm-up, not the growth the check looks for.
	lastKillB := start.Add(duration * 3 / 8)
	for _, s := range sessions {
		wg.Go(func() { s.run(ctx, stop) })
	}
	personStats, deviceStats, machineStats, adminStats := newActorStats(), newActorStats(), newActorStats(), newActorStats()
	var actors sync.WaitGroup
	for i, p := range people {
		r := rand.New(rand.NewPCG(seed, 100+uint64(i)))
		actors.Go(func() {
			loop(ctx, stop, r, 4*time.Second, func(n int) {
				personStats.done(p.name, tr.personLogin(ctx, tr.endpoints[(i+n)%2], p))
			})
		})
	}
	for i, u := range deviceUsers {
		r := rand.New(rand.NewPCG(seed, 200+uint64(i)))
		actors.Go(func() {
			loop(ctx, stop, r, 5*time.Second, func(n int) {
				deviceStats.done(u, tr.deviceLogin(ctx, tr.endpoints[(i+n)%2], u, soakPassword))
			})
		})
	}
	actors.Go(func() {
		loop(ctx, stop, rand.New(rand.NewPCG(seed, 300)), time.Second, func(n int) {
			machineStats.done(machineID, tr.machineToken(ctx, tr.endpoints[n%2], machineID, machineSecret))
		})
	})
	actors.Go(func() {
		loop(ctx, stop, rand.New(rand.NewPCG(seed, 400)), 2*time.Second, func(n int) {
			adminStats.done("admin", tr.adminRound(ctx, tr.endpoints[n%2], admin, n))
		})
	})

	// Replica B's memory and goroutines, every second, from /metrics.
	var res resourceLog
	samplerCtx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for samplerCtx.Err() == nil {
			if m, err := processMetrics(replicas[1]); err == nil {
				res.add(time.Since(start), m)
			}
			sleep(samplerCtx, resourceInterval)
		}
	}()

	flog := runSoakFaults(t, ctx, rng, tr, replicas, proxies, pg, lastKillB, stop.Add(-15*time.Second))

	wg.Wait()
	actors.Wait()
	stopSampler()
	<-samplerDone
	elapsed := time.Since(start)

	finishSessions(ctx, sessions)
	reuses := countReuses(t, replicas)
	audited, err := auditCounts(ctx, db)
	if err != nil {
		t.Fatalf("reading the audit trail: %v", err)
	}

	// The figures.
	var b strings.Builder
	summarizeSoak(&b, sessions, elapsed, flog, reuses, log, faults,
		map[string]*actorStats{"people (password + TOTP)": personStats, "devices": deviceStats, "machines": machineStats, "admin commands": adminStats},
		&res)
	t.Log(b.String())

	// The assertions.
	for _, s := range sessions {
		if s.lost != "" {
			t.Errorf("session %d (home replica %s) lost: %s", s.id, replicas[s.home].name, s.lost)
		}
		if s.refreshes < 2 {
			t.Errorf("session %d made %d successful refreshes", s.id, s.refreshes)
		}
		for _, v := range s.violations[:min(len(s.violations), 5)] {
			t.Errorf("session %d: %s", s.id, v)
		}
	}
	for i, r := range replicas {
		if reuses[i] > 0 {
			t.Errorf("replica %s logged %q %d time(s): a false reuse detection", r.name, reuseWarning, reuses[i])
		}
		if !r.running() {
			t.Errorf("replica %s is not running at the end", r.name)
		}
	}
	if n := audited["refresh.reuse_detected"][""]; n > 0 {
		t.Errorf("the audit trail has %d refresh.reuse_detected event(s)", n)
	}
	for _, c := range []struct {
		what, eventType string
		stats           *actorStats
	}{
		{"person login (second factor)", "login.second_factor_succeeded", personStats},
		{"person login (code exchanged)", "code.exchanged", personStats},
		{"device login (approved)", "device.approved", deviceStats},
		{"machine token", "grant.client_credentials", machineStats},
	} {
		if c.stats.completed == 0 {
			t.Errorf("no %s completed: that traffic never ran", c.what)
		}
		for who, n := range c.stats.perUser {
			if got := audited[c.eventType][who]; got < n {
				t.Errorf("%s: %s completed %d time(s), the audit trail has %d %s event(s)", c.what, who, n, got, c.eventType)
			}
		}
	}
	for name, st := range map[string]*actorStats{"people": personStats, "devices": deviceStats, "machines": machineStats, "admin": adminStats} {
		for _, v := range st.violations[:min(len(st.violations), 5)] {
			t.Errorf("%s, %s", name, v)
		}
	}
	if adminStats.completed == 0 {
		t.Error("no round of admin commands completed")
	}
	for _, p := range flog.probes {
		if p.err != "" {
			t.Errorf("after %s: %s", p.fault, p.err)
		} else if p.took > revocationDeadline {
			t.Errorf("after %s: the revocation reached CheckToken on the other replica in %v (more than %v)", p.fault, p.took.Round(time.Millisecond), revocationDeadline)
		}
	}
	for _, kind := range faultKinds {
		if flog.count[kind] == 0 {
			t.Errorf("no %q fault happened: the run was too short", kind)
		}
	}
	if msg := res.flat(flatBound); msg != "" {
		t.Error(msg)
	}
	if t.Failed() {
		for _, r := range replicas {
			summary, err := r.logSummary(10)
			if err != nil {
				t.Logf("reading replica %s's logs: %v", r.name, err)
			}
			t.Logf("replica %s's warnings and errors (started %d time(s)):\n%s", r.name, r.starts, summary)
		}
	}
}

// enrolTOTP gives p a TOTP second factor through an enrolment link.
func enrolTOTP(t *testing.T, ctx context.Context, tr *soakTraffic, p *person, admin *adminSession) {
	t.Helper()
	ep := tr.endpoints[0]
	link, err := ep.admin.CreateUserEnrolLink(ctx, withBearer(&adminv1.CreateUserEnrolLinkRequest{Username: p.name}, admin.access))
	if err != nil {
		t.Fatalf("CreateUserEnrolLink %s: %v", p.name, err)
	}
	b := newBrowser(ep.r, tr.faults, tr.log)
	must := func(pg *page, err error) *page {
		t.Helper()
		if err != nil {
			t.Fatalf("enrolling %s: %v", p.name, err)
		}
		return pg
	}
	form := must(b.do("enrol link", link.Msg.GetUrl(), nil))
	page := must(b.post("enrol password", "/login/enrol", form, url.Values{"password": {p.password}}))
	m := enrolSecretField.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("enrolling %s: no secret shown: HTTP %d\n%s", p.name, page.status, page.body)
	}
	p.secret = m[1]
	p.lastStep = tr.clock.now().Unix() / 30
	code, err := totpCode(p.secret, p.lastStep)
	if err != nil {
		t.Fatal(err)
	}
	codes := must(b.post("enrol code", "/login/mfa/enroll", page, url.Values{"code": {code}}))
	if done := must(b.post("enrol done", "/login/mfa/continue", codes, nil)); !strings.Contains(done.body, "second factor is set up") {
		t.Fatalf("enrolling %s: HTTP %d\n%s", p.name, done.status, done.body)
	}
}

// auditCounts counts the successful audit events of each type by
// username, or by client id when there is none.
func auditCounts(ctx context.Context, db *sql.DB) (map[string]map[string]int, error) {
	rows, err := db.QueryContext(ctx, `SELECT type, CASE WHEN username <> '' THEN username ELSE client_id END, count(*)
		FROM nsauth_audit_events WHERE outcome = 'success' GROUP BY 1, 2`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var typ, who string
		var n int
		if err := rows.Scan(&typ, &who, &n); err != nil {
			return nil, err
		}
		if out[typ] == nil {
			out[typ] = map[string]int{}
		}
		out[typ][who] += n
		out[typ][""] += n
	}
	return out, rows.Err()
}

// The faults, in turn.
const (
	faultKillA     = "SIGKILL replica A"
	faultKillB     = "SIGKILL replica B"
	faultCutBoth   = "cut both replicas' database connections"
	faultCutA      = "cut replica A's database connections"
	faultCutB      = "cut replica B's database connections"
	faultPGRestart = "restart PostgreSQL"
	faultClock     = "jump the clock forward"
)

var faultKinds = []string{faultKillA, faultCutBoth, faultClock, faultKillB, faultCutA, faultPGRestart, faultCutB}

type soakFaultLog struct {
	count  map[string]int
	took   map[string][]time.Duration // how long each fault lasted (to serving again)
	probes []revocationProbe
}

type revocationProbe struct {
	fault string
	took  time.Duration
	err   string
}

// runSoakFaults runs the faults in turn until end, a random 4 to 8 s
// apart, each followed by a revocation probe. Replica B is killed only
// before lastKillB, so that its memory over the last half is one warm
// process's.
func runSoakFaults(t *testing.T, ctx context.Context, rng *rand.Rand, tr *soakTraffic, replicas []*replica, proxies []*storetest.Proxy, pg *pgCluster, lastKillB, end time.Time) soakFaultLog {
	t.Helper()
	flog := soakFaultLog{count: map[string]int{}, took: map[string][]time.Duration{}}
	for i := 0; ctx.Err() == nil; i++ {
		kind := faultKinds[i%len(faultKinds)]
		if kind == faultKillB && time.Now().After(lastKillB) {
			kind = faultKillA
		}
		pause := 4*time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		if time.Now().Add(pause + 10*time.Second).After(end) {
			break
		}
		sleep(ctx, pause)
		tr.faults.begin()
		began := time.Now()
		switch kind {
		case faultKillA, faultKillB:
			r := replicas[0]
			if kind == faultKillB {
				r = replicas[1]
			}
			if err := r.kill(); err != nil {
				t.Fatal(err)
			}
			sleep(ctx, 500*time.Millisecond+time.Duration(rng.Int64N(int64(time.Second))))
			sctx, scancel := context.WithTimeout(ctx, time.Minute)
			err := r.start(sctx)
			scancel()
			if err != nil {
				t.Fatal(err)
			}
		case faultCutBoth, faultCutA, faultCutB:
			cut := proxies
			if kind == faultCutA {
				cut = proxies[:1]
			} else if kind == faultCutB {
				cut = proxies[1:]
			}
			for _, p := range cut {
				p.Cut()
			}
			sleep(ctx, outageLength)
			for _, p := range cut {
				p.Restore()
			}
		case faultPGRestart:
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
			_, err := pg.restart(rctx)
			rcancel()
			if err != nil {
				t.Fatal(err)
			}
		case faultClock:
			witness := loginWitness(ctx, tr)
			if err := tr.clock.jump(clockJump); err != nil {
				t.Fatal(err)
			}
			if msg := jumpReached(ctx, tr, witness); msg != "" {
				t.Errorf("fault %d (%s): %s", i+1, kind, msg)
			}
		}
		took := time.Since(began)
		tr.faults.end()
		flog.count[kind]++
		flog.took[kind] = append(flog.took[kind], took)
		p := probeRevocation(ctx, tr, i%2)
		p.fault = fmt.Sprintf("fault %d (%s)", i+1, kind)
		flog.probes = append(flog.probes, p)
		t.Logf("%s fault %d: %s, %v; revocation reached the other replica's CheckToken in %v%s", began.Format("15:04:05.000"), i+1, kind, took.Round(time.Millisecond), p.took.Round(time.Millisecond), map[bool]string{true: " — " + p.err, false: ""}[p.err != ""])
	}
	return flog
}

// loginWitness logs the probe user in before a clock jump, for
// [jumpReached]; it returns "" when no login succeeds within 60 s (which
// jumpReached reports).
func loginWitness(ctx context.Context, tr *soakTraffic) string {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if tok, _ := tr.passwordLogin(ctx, tr.endpoints[0], "soak-probe", soakPassword); tok != nil {
			return tok.GetAccessToken()
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return ""
}

// jumpReached checks that the clock jump took effect on both replicas: an
// access token issued before it (living a minute; the jump is longer) is
// refused by each replica's CheckToken within two seconds (the replicas
// read the clock's file every 50 ms). It returns what went wrong, or "".
func jumpReached(ctx context.Context, tr *soakTraffic, witness string) string {
	if witness == "" {
		return "no login before the clock jump within 60 s to check that the jump took effect"
	}
	for _, ep := range tr.endpoints {
		deadline := time.Now().Add(2 * time.Second)
		for {
			o, _ := tr.checkTokenAs(ctx, ep.r, ep.api, "CheckToken of a token from before a clock jump", witness)
			if o == outcome(connect.CodeUnauthenticated.String()) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Sprintf("replica %s's CheckToken still answered %s for a token issued before the jump, 2 s after it: the jump did not reach its clock", ep.r.name, o)
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}
	return ""
}

// probeRevocation logs the probe user in on replica on, checks the access
// token on the other replica, revokes the login with RevokeCli on on, and
// measures how long until the other replica's CheckToken refuses it.
// Getting there may take retries (a replica may still be reconnecting);
// the measure starts when RevokeCli has answered.
func probeRevocation(ctx context.Context, tr *soakTraffic, on int) revocationProbe {
	epOn, epOther := tr.endpoints[on], tr.endpoints[1-on]
	deadline := time.Now().Add(60 * time.Second)
	var tok *mgmtv1alpha1.AccessToken
	var lastErr error
	for tok == nil {
		if time.Now().After(deadline) {
			return revocationProbe{err: fmt.Sprintf("no probe login within 60 s: %v", lastErr)}
		}
		tok, lastErr = tr.passwordLogin(ctx, epOn, "soak-probe", soakPassword)
		if tok == nil {
			sleep(ctx, 200*time.Millisecond)
		}
	}
	for {
		o, err := tr.checkToken(ctx, epOther, false, tok.GetAccessToken())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return revocationProbe{err: fmt.Sprintf("the other replica's CheckToken did not accept the probe's token within 60 s: %s", o)}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	for {
		o, err := tr.log.timed("RevokeCli", epOn.r, func() error {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			_, err := epOn.api.api.RevokeCli(cctx, connect.NewRequest(&mgmtv1alpha1.RevokeCliRequest{RefreshToken: tok.GetRefreshToken()}))
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return revocationProbe{err: fmt.Sprintf("RevokeCli did not succeed within 60 s: %s", o)}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	revoked := time.Now()
	for {
		o, _ := tr.checkTokenAs(ctx, epOther.r, epOther.api, "CheckToken of the revoked probe", tok.GetAccessToken())
		if o == outcome(connect.CodeUnauthenticated.String()) {
			return revocationProbe{took: time.Since(revoked)}
		}
		if time.Since(revoked) > 10*time.Second {
			return revocationProbe{took: time.Since(revoked), err: fmt.Sprintf("CheckToken on the other replica still answered %s 10 s after the revocation", o)}
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// passwordLogin logs user in on ep with the password alone.
func (tr *soakTraffic) passwordLogin(ctx context.Context, ep *soakEndpoint, user, password string) (*mgmtv1alpha1.AccessToken, error) {
	verifier := oauthVerifier()
	authz, err := tr.authorize(ctx, ep, verifier)
	if err != nil {
		return nil, err
	}
	b := newBrowser(ep.r, tr.faults, tr.log)
	form, err := b.do("authorize", authz, nil)
	if err != nil {
		return nil, err
	}
	if form.form.Get("authRequestID") == "" {
		return nil, b.unexpected("authorize", form)
	}
	res, err := b.post("login", "/login", form, url.Values{"username": {user}, "password": {password}})
	if err != nil {
		return nil, err
	}
	loc, err := url.Parse(res.location)
	if err != nil || loc.Query().Get("code") == "" {
		return nil, b.unexpected("login", res)
	}
	return tr.exchange(ctx, ep, loc.Query().Get("code"), verifier)
}

// summarizeSoak writes the run's figures: no token, only counts and times.
func summarizeSoak(b *strings.Builder, sessions []*session, elapsed time.Duration, flog soakFaultLog, reuses []int, log *callLog, faults *faultWindows,
	actors map[string]*actorStats, res *resourceLog) {
	log.mu.Lock()
	calls := slices.Clone(log.calls)
	log.mu.Unlock()
	fmt.Fprintf(b, "soak: %v, %d sessions, %d calls (%.0f/s)\n", elapsed.Round(time.Second), len(sessions), len(calls), float64(len(calls))/elapsed.Seconds())

	// Outcomes and latency by RPC, between and during faults.
	type key struct{ rpc, when string }
	lat := map[key][]time.Duration{}
	outcomes := map[string]map[outcome]int{}
	for _, c := range calls {
		when := "between"
		if faults.during(c.start, c.start.Add(c.took)) {
			when = "during"
		}
		if c.o == outcomeOK {
			lat[key{c.rpc, when}] = append(lat[key{c.rpc, when}], c.took)
		}
		if outcomes[c.rpc] == nil {
			outcomes[c.rpc] = map[outcome]int{}
		}
		outcomes[c.rpc][c.o]++
	}
	fmt.Fprintf(b, "  %-38s %8s %9s %9s %8s %9s %9s  %s\n", "RPC / step", "ok betw.", "p50", "p99", "ok dur.", "p50", "p99", "other outcomes")
	for _, rpc := range slices.Sorted(maps.Keys(outcomes)) {
		bt, du := lat[key{rpc, "between"}], lat[key{rpc, "during"}]
		var others []string
		for _, o := range slices.Sorted(maps.Keys(outcomes[rpc])) {
			if o != outcomeOK {
				others = append(others, fmt.Sprintf("%s %d", o, outcomes[rpc][o]))
			}
		}
		fmt.Fprintf(b, "  %-38s %8d %9s %9s %8d %9s %9s  %s\n", rpc, len(bt), pct(bt, 50), pct(bt, 99), len(du), pct(du, 50), pct(du, 99), strings.Join(others, ", "))
	}
	total, refreshes, refused, lostSessions, violations, expired := 0, 0, 0, 0, 0, 0
	lostAnswers := map[outcome]int{}
	var gaps []time.Duration
	for _, s := range sessions {
		refreshes += s.refreshes
		refused += s.refused
		expired += s.expired
		for k, v := range s.lostAnswers {
			lostAnswers[k] += v
		}
		violations += len(s.violations)
		if s.lost != "" {
			lostSessions++
		}
		gaps = append(gaps, s.longestGap)
		for _, v := range s.calls {
			total += v
		}
	}
	slices.Sort(gaps)
	fmt.Fprintf(b, "sessions: %d calls, %d refreshes, %d access tokens expired by a clock jump and refreshed; longest unavailability per session max %v, median %v\n",
		total, refreshes, expired, gaps[len(gaps)-1].Round(time.Millisecond), gaps[len(gaps)/2].Round(time.Millisecond))
	fmt.Fprintf(b, "  refreshes committed whose answer was lost (retried with the used token): %d; refused: %d; sessions lost: %d; violations: %d\n",
		sum(lostAnswers), refused, lostSessions, violations)
	for _, name := range slices.Sorted(maps.Keys(actors)) {
		a := actors[name]
		var failed []string
		for _, k := range slices.Sorted(maps.Keys(a.failed)) {
			failed = append(failed, fmt.Sprintf("%s %d", k, a.failed[k]))
		}
		fmt.Fprintf(b, "%s: %d attempted, %d completed; failed: %s\n", name, a.attempts, a.completed, strings.Join(failed, ", "))
	}
	b.WriteString("faults:\n")
	for _, k := range faultKinds {
		fmt.Fprintf(b, "  %-42s %2d  %v\n", k, flog.count[k], roundAll(flog.took[k]))
	}
	var probes []time.Duration
	for _, p := range flog.probes {
		probes = append(probes, p.took)
	}
	sorted := slices.Clone(probes)
	slices.Sort(sorted)
	if len(sorted) > 0 {
		fmt.Fprintf(b, "revocation to the other replica's CheckToken after each fault: max %v, median %v (%d probes)\n",
			sorted[len(sorted)-1].Round(time.Millisecond), sorted[len(sorted)/2].Round(time.Millisecond), len(sorted))
	}
	fmt.Fprintf(b, "false reuse detections logged: %d on A, %d on B\n", reuses[0], reuses[1])
	res.summarize(b)
}

// pct is the p-th percentile of ds, or "-".
func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)*p/100, len(s)-1)
	return s[i].Round(100 * time.Microsecond).String()
}
