package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	adminv1 "github.com/nsauth/nsauth/gen/nsauth/admin/v1"
	"github.com/nsauth/nsauth/internal/adminservice"
	"github.com/nsauth/nsauth/internal/app"
	"github.com/nsauth/nsauth/internal/config"
	"github.com/nsauth/nsauth/internal/password"
	"github.com/nsauth/nsauth/internal/seal"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/pkg/authn"
)

// ScaleConfig configures a scale run ([RunScale]).
type ScaleConfig struct {
	// Users, Events and Revocations are how many users, audit events and
	// live revocations (revoked access tokens not yet expired) to seed.
	// Users must be positive; the others may be zero.
	Users, Events, Revocations int
	// DatabaseURL, when set, runs the test on PostgreSQL: in a schema of
	// its own, created in that database and dropped at the end. Empty
	// means SQLite in a temporary data directory.
	DatabaseURL string
	// Duration is how long each CheckToken cell is driven. Default 3 s.
	Duration time.Duration
	// Concurrency of the CheckToken cells. Default 16.
	Concurrency int
	// Runs is how many times each CheckToken cell runs; the report gives
	// the median. Default 3.
	Runs int
	// Logins is how many logins are timed for the login p50. Default 100.
	Logins int
	// Queries is how many times each audit query is timed. Default 9.
	Queries int
	// UsersListTimeout bounds the time of `nsauth users list`, which reads
	// every user. Default 2 minutes.
	UsersListTimeout time.Duration
	// IdleWindow is how long the server stands idle after its start while
	// its CPU is measured: longer than the revocation set's resync
	// interval. Default 35 s.
	IdleWindow time.Duration
	// DistinctTokens is as in [Config].
	DistinctTokens int
	// Progress receives a line per step. Optional.
	Progress io.Writer
}

// ScaleReport is the outcome of a scale run.
type ScaleReport struct {
	Machine   string `json:"machine"`
	GoVersion string `json:"go_version"`
	// Backend is "sqlite" or "postgres".
	Backend     string `json:"backend"`
	Users       int    `json:"users"`
	Events      int    `json:"events"`
	Revocations int    `json:"revocations"`
	// Counted are the rows the seeded store holds after the run, counted
	// by the database: the seeded ones and those the run itself made.
	Counted ScaleCounts `json:"counted"`
	// SeedSeconds is the seeding's wall time, all tables together, and
	// Seed* each table's share.
	SeedSeconds            float64 `json:"seed_seconds"`
	SeedUsersSeconds       float64 `json:"seed_users_seconds"`
	SeedEventsSeconds      float64 `json:"seed_events_seconds"`
	SeedRevocationsSeconds float64 `json:"seed_revocations_seconds"`
	// BytesPerMillion* are the bytes the store grew by while each kind of
	// row was seeded, per million rows: the table with its indexes
	// (PostgreSQL), the database file (SQLite, checkpointed).
	BytesPerMillionUsers       float64 `json:"bytes_per_million_users"`
	BytesPerMillionEvents      float64 `json:"bytes_per_million_events"`
	BytesPerMillionRevocations float64 `json:"bytes_per_million_revocations"`
	// CheckTokenConcurrency and CheckTokenDuration describe the
	// CheckToken cells.
	CheckTokenConcurrency int    `json:"check_token_concurrency"`
	CheckTokenDuration    string `json:"check_token_duration"`
	CheckTokenRuns        int    `json:"check_token_runs"`
	// Empty and Seeded are the same measures on the store before and
	// after seeding.
	Empty  ScalePhase `json:"empty"`
	Seeded ScalePhase `json:"seeded"`
}

// ScaleCounts are row counts.
type ScaleCounts struct {
	Users           int64 `json:"users"`
	Events          int64 `json:"events"`
	LiveRevocations int64 `json:"live_revocations"`
}

// ScalePhase is what a scale run measures on one store.
type ScalePhase struct {
	// StartMillis is the server's start (app.New): opening the store and
	// loading the revocation set among the rest.
	StartMillis float64 `json:"start_ms"`
	// HeapBytes is the Go heap in use right after the start, after a
	// collection; RSSBytes the process's resident set then. The heap of
	// the phase before was released, the RSS may still hold it.
	HeapBytes uint64 `json:"heap_bytes"`
	RSSBytes  int64  `json:"rss_bytes"`
	// IdleCPUPercent is the CPU the process spent while the server stood
	// idle for [idleWindow] after its start, in percent of one core: what
	// the server does in the background (following and resyncing the
	// revocation set, among the rest).
	IdleCPUPercent float64 `json:"idle_cpu_percent"`
	// LoginP50Millis is the median of whole logins: GetAuthorizeUrl, the
	// provider's login page and form, the code exchanged by LoginCli; timed
	// in turns with the other store's (timeLogins).
	LoginP50Millis float64 `json:"login_p50_ms"`
	// LoginCPUMillis is this process's CPU per timed login (server and
	// bench), which other load on the machine changes less than p50.
	LoginCPUMillis float64 `json:"login_cpu_ms"`
	// CheckToken throughput, distinct tokens and one cached token.
	CheckTokenDistinctRPS float64 `json:"check_token_distinct_rps"`
	CheckTokenCachedRPS   float64 `json:"check_token_cached_rps"`
	// Audit* are the medians of `nsauth audit` with --user (the whole
	// history of one user: --since all), --since (the last hour) and --ref
	// (--since all), each read to its end as the command does, in pages
	// of the admin service's ListAuditEvents in process. *Events is how
	// many events the last one returned.
	AuditUserP50Millis  float64 `json:"audit_user_p50_ms"`
	AuditUserEvents     int     `json:"audit_user_events"`
	AuditSinceP50Millis float64 `json:"audit_since_p50_ms"`
	AuditSinceEvents    int     `json:"audit_since_events"`
	AuditRefP50Millis   float64 `json:"audit_ref_p50_ms"`
	AuditRefEvents      int     `json:"audit_ref_events"`
	// UsersListMillis is the time of `nsauth users list` (the admin
	// service's ListUsers, in process), which returns every user in one
	// answer; UsersListed how many it returned, and UsersListTimedOut
	// whether it gave up at the timeout.
	UsersListMillis   float64 `json:"users_list_ms"`
	UsersListed       int     `json:"users_listed"`
	UsersListTimedOut bool    `json:"users_list_timed_out,omitempty"`
	// UsersFirstPageP50Millis and UsersDeepPageP50Millis are the p50
	// times of one page of `nsauth users list` as the command asks for
	// them (500 users): the first, and one starting in the middle of the
	// alphabet ("m").
	UsersFirstPageP50Millis float64 `json:"users_first_page_p50_ms"`
	UsersDeepPageP50Millis  float64 `json:"users_deep_page_p50_ms"`
	// DataBytes is the store's size: SQLite's database and WAL files,
	// PostgreSQL's schema's tables with indexes.
	DataBytes int64 `json:"data_bytes"`
}

// scaleLocation is the store of a scale run and how to remove it.
type scaleLocation struct {
	backend string
	// env names the store for config.Load.
	env     map[string]string
	dataDir string
	url     string // PostgreSQL, with the run's schema on search_path
	remove  func()
}

// newScaleLocation makes an empty store location: a temporary data
// directory, or a new schema in the PostgreSQL database at databaseURL.
func newScaleLocation(ctx context.Context, databaseURL string) (*scaleLocation, error) {
	if databaseURL == "" {
		dir, err := os.MkdirTemp("", "nsauth-scale-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return &scaleLocation{backend: "sqlite", env: map[string]string{"NSAUTH_DATA_DIR": dir}, dataDir: dir,
			remove: func() { _ = os.RemoveAll(dir) }}, nil
	}
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("bench: the database URL must be a postgres:// URL")
	}
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("bench: connecting to PostgreSQL at %s: %w", store.RedactURL(databaseURL), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	schema := "nsauth_scale_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(store.RandomToken(9)))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return nil, fmt.Errorf("bench: creating the schema %s: %w", schema, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	loc := &scaleLocation{backend: "postgres", url: u.String()}
	// A key of the run's own: PostgreSQL's secrets are sealed with a key
	// given in the settings, and this store lives only as long as the run.
	loc.env = map[string]string{"NSAUTH_DATABASE_URL": loc.url, "NSAUTH_SECRET_KEY": seal.GenerateKey()}
	loc.remove = func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	}
	return loc, nil
}

// RunScale measures nsauth at scale: it starts the server on an empty
// store and measures it, seeds the store with cfg's users, audit events
// and live revocations (bulk writes of the store's own rows), starts the
// server again on it and measures the same again. The store is removed at
// the end.
func RunScale(ctx context.Context, cfg ScaleConfig) (_ *ScaleReport, err error) {
	if cfg.Users <= 0 || cfg.Events < 0 || cfg.Revocations < 0 {
		return nil, errors.New("bench: a scale run needs a positive number of users and no negative count")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if cfg.Logins <= 0 {
		cfg.Logins = 100
	}
	if cfg.Queries <= 0 {
		cfg.Queries = 9
	}
	if cfg.UsersListTimeout <= 0 {
		cfg.UsersListTimeout = 2 * time.Minute
	}
	if cfg.DistinctTokens <= 0 {
		cfg.DistinctTokens = authn.DefaultCacheEntries + distinctMargin
	}
	if cfg.IdleWindow <= 0 {
		cfg.IdleWindow = 35 * time.Second
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	r := &ScaleReport{
		Machine: machine(), GoVersion: runtime.Version(),
		Users: cfg.Users, Events: cfg.Events, Revocations: cfg.Revocations,
		CheckTokenConcurrency: cfg.Concurrency, CheckTokenDuration: cfg.Duration.String(), CheckTokenRuns: cfg.Runs,
	}
	// Two stores, made alike: the empty one stays so, the other is
	// seeded. Neither is measured at its first start, which makes the
	// signing key; the empty one does not hold what the seeded one's
	// measures leave behind, nor the other way round.
	var stores [2]*scaleStore
	for i := range stores {
		st, err := newScaleStore(ctx, cfg.DatabaseURL)
		if st != nil {
			defer st.loc.remove()
		}
		if err != nil {
			return nil, err
		}
		stores[i] = st
	}
	empty, full := stores[0], stores[1]
	r.Backend = empty.loc.backend

	d, err := scaleDataFor(ctx, cfg, full.cfg.Auth.Builtin, full.tg.clientID)
	if err != nil {
		return nil, err
	}
	w, err := openWriter(ctx, full.loc)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "scale: %s: seeding %d users, %d audit events, %d live revocations\n", r.Backend, d.users, d.events, d.revocations)
	start := time.Now()
	users, events, revocations, err := seed(ctx, w, d, cfg.Progress)
	if pw, ok := w.(*postgresWriter); ok && err == nil {
		// What autovacuum would do after such a load, before the planner
		// is asked about these tables.
		err = analyze(ctx, pw.conn)
	}
	if err != nil {
		_ = w.close()
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.SeedSeconds = time.Since(start).Seconds()
	if err := w.close(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r.SeedUsersSeconds, r.SeedEventsSeconds, r.SeedRevocationsSeconds = users.elapsed.Seconds(), events.elapsed.Seconds(), revocations.elapsed.Seconds()
	r.BytesPerMillionUsers = perMillion(users)
	r.BytesPerMillionEvents = perMillion(events)
	r.BytesPerMillionRevocations = perMillion(revocations)

	fmt.Fprintf(cfg.Progress, "scale: %s, empty store\n", r.Backend)
	benchLogin := func(int) (string, string) { return benchUser, empty.tg.password }
	if r.Empty, err = measurePhase(ctx, cfg, empty, nil, benchLogin); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "scale: %s, seeded store\n", r.Backend)
	seededLogin := func(i int) (string, string) {
		return d.username(int(mix("login user", i) % uint64(d.users))), scalePassword
	}
	if r.Seeded, err = measurePhase(ctx, cfg, full, d, seededLogin); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "scale: %s, %d logins on each store, in turns\n", r.Backend, cfg.Logins)
	if err := timeLogins(ctx, cfg, stores, [2]func(int) (string, string){benchLogin, seededLogin}, [2]*ScalePhase{&r.Empty, &r.Seeded}); err != nil {
		return nil, err
	}
	if r.Counted, err = countRows(ctx, full.loc); err != nil {
		return nil, err
	}
	return r, nil
}

// scaleStore is a store of a scale run, prepared as the bench's own
// (bootstrapped, holding the bench user), started once.
type scaleStore struct {
	loc *scaleLocation
	cfg *config.Server
	tg  *target
}

// newScaleStore makes and prepares a store. On error, the store's
// location, if made, is in the result, to be removed.
func newScaleStore(ctx context.Context, databaseURL string) (*scaleStore, error) {
	loc, err := newScaleLocation(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	st := &scaleStore{loc: loc}
	if st.cfg, err = serverConfig(loc.env); err != nil {
		return st, err
	}
	st.tg = &target{maxRequestBytes: st.cfg.MaxRequestBytes}
	if err = st.tg.prepareStore(ctx, st.cfg.Auth.Builtin); err != nil {
		return st, err
	}
	// The first start makes the signing key and what else a server makes
	// once: not what the measured starts should pay for.
	if err := st.tg.start(ctx, st.cfg); err != nil {
		return st, err
	}
	st.tg.stop()
	return st, nil
}

func perMillion(t seedTable) float64 {
	if t.rows == 0 {
		return 0
	}
	return float64(t.bytes) / float64(t.rows) * 1e6
}

// scaleDataFor describes the seeding: the store's audit key (made as the
// server makes it, if no server made it yet) and one password hash.
func scaleDataFor(ctx context.Context, cfg ScaleConfig, b config.Builtin, clientID string) (*scaleData, error) {
	st, err := app.OpenSealedStore(ctx, b, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	key, err := app.AuditKey(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	hash, err := password.HashWithParams(scalePassword, cheapHash)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	retention := b.AuditRetention
	if retention <= 0 {
		retention = config.DefaultAuditRetention
	}
	return &scaleData{
		users: cfg.Users, events: cfg.Events, revocations: cfg.Revocations,
		now: time.Now(), window: retention - 24*time.Hour, key: key, clientID: clientID, passwordHash: hash,
	}, nil
}

// analyze updates PostgreSQL's statistics of the current schema's tables.
func analyze(ctx context.Context, conn *pgx.Conn) error {
	for _, t := range []string{"nsauth_users", "nsauth_audit_events", "nsauth_audit_refs", "nsauth_access_tokens", "nsauth_revocations"} {
		if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
			return fmt.Errorf("analyzing %s: %w", t, err)
		}
	}
	return nil
}

// measurePhase starts the server on the store and measures it; d is the
// seeded data (nil on the empty store), loginAs names the user of the ith
// timed login.
func measurePhase(ctx context.Context, cfg ScaleConfig, st *scaleStore, d *scaleData, loginAs func(int) (string, string)) (ScalePhase, error) {
	var p ScalePhase
	tg, srvCfg := st.tg, st.cfg
	runtime.GC()
	start := time.Now()
	if err := tg.start(ctx, srvCfg); err != nil {
		return p, err
	}
	p.StartMillis = millis(time.Since(start))
	defer tg.stop()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.HeapBytes, p.RSSBytes = ms.HeapInuse, procStatus("VmRSS")
	fmt.Fprintf(cfg.Progress, "  server started in %.0f ms, heap %.1f MiB, RSS %.1f MiB\n", p.StartMillis, float64(p.HeapBytes)/(1<<20), float64(p.RSSBytes)/(1<<20))
	cpu0, t0 := selfCPU(), time.Now()
	select {
	case <-ctx.Done():
		return p, ctx.Err()
	case <-time.After(cfg.IdleWindow):
	}
	p.IdleCPUPercent = 100 * float64(selfCPU()-cpu0) / float64(time.Since(t0))
	fmt.Fprintf(cfg.Progress, "  idle for %s: %.1f %% of a core\n", cfg.IdleWindow, p.IdleCPUPercent)

	tg.distinctTokens, tg.progress = cfg.DistinctTokens, cfg.Progress
	// The CheckToken cells' token; the timed logins come later, in turns
	// with the other store's (timeLogins).
	user, pw := loginAs(0)
	tok, err := tg.loginAs(ctx, tg.browser.Fresh(), user, pw)
	if err != nil {
		return p, fmt.Errorf("bench: logging in as a %s user: %w", phaseName(d), err)
	}
	tg.token = tok.GetAccessToken()

	// The queries and the size come before the CheckToken cells, whose
	// token pool leaves thousands of events and token records behind.
	if err := measureAdmin(ctx, cfg, srvCfg.Auth.Builtin, d, &p); err != nil {
		return p, err
	}
	if p.DataBytes, err = dataSize(ctx, st.loc); err != nil {
		return p, err
	}
	for _, s := range []struct {
		scenario string
		rps      *float64
	}{{CheckTokenDistinct, &p.CheckTokenDistinctRPS}, {CheckTokenCached, &p.CheckTokenCachedRPS}} {
		var rps []float64
		for range cfg.Runs {
			res, err := runCell(ctx, tg, sideNsauth, s.scenario, "connect", cfg.Concurrency, cfg.Duration)
			if err != nil {
				return p, err
			}
			if res.Errors > 0 {
				return p, fmt.Errorf("bench: %s: %d of %d calls failed", s.scenario, res.Errors, res.Calls)
			}
			rps = append(rps, res.RPS)
		}
		*s.rps = medianFloat(rps)
		fmt.Fprintf(cfg.Progress, "  %s c=%d: %.0f req/s\n", s.scenario, cfg.Concurrency, *s.rps)
	}

	return p, nil
}

// timeLogins times cfg.Logins whole logins on each store, with both
// servers up, one on each in turn (the empty store first in even rounds,
// the seeded one in odd ones), each in a fresh browser so that it checks
// its user's password, and sets each phase's login p50 and CPU per login.
// Timed a phase at a time, minutes apart, the two p50s followed the
// machine's load as much as the stores.
func timeLogins(ctx context.Context, cfg ScaleConfig, stores [2]*scaleStore, loginAs [2]func(int) (string, string), phases [2]*ScalePhase) error {
	for _, st := range stores {
		if err := st.tg.start(ctx, st.cfg); err != nil {
			return err
		}
		defer st.tg.stop()
	}
	var took [2][]time.Duration
	var cpu [2]time.Duration
	for i := range cfg.Logins {
		for k := range 2 {
			j := (i + k) % 2
			tg := stores[j].tg
			user, pw := loginAs[j](i)
			b := tg.browser.Fresh()
			cpu0, t0 := selfCPU(), time.Now()
			if _, err := tg.loginAs(ctx, b, user, pw); err != nil {
				return fmt.Errorf("bench: logging in on the %s store: %w", [2]string{"empty", "seeded"}[j], err)
			}
			took[j] = append(took[j], time.Since(t0))
			cpu[j] += selfCPU() - cpu0
		}
	}
	for j, p := range phases {
		p.LoginP50Millis = p50(took[j])
		p.LoginCPUMillis = millis(cpu[j]) / float64(len(took[j]))
		fmt.Fprintf(cfg.Progress, "  %s store: login p50 %.2f ms over %d logins, %.2f ms of CPU each\n",
			[2]string{"empty", "seeded"}[j], p.LoginP50Millis, len(took[j]), p.LoginCPUMillis)
	}
	return nil
}

func phaseName(d *scaleData) string {
	if d == nil {
		return "bench"
	}
	return "seeded"
}

// measureAdmin times `nsauth audit` and `nsauth users list` as the
// commands run them on the store: the admin service in process.
func measureAdmin(ctx context.Context, cfg ScaleConfig, b config.Builtin, d *scaleData, p *ScalePhase) error {
	st, err := app.OpenSealedStore(ctx, b, nil, nil)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer st.Close()
	auditor, err := app.StoreAuditor(st, false, time.Now)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	svc, err := adminservice.New(adminservice.Config{Store: st, Audit: auditor, Now: time.Now})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx = adminservice.WithCaller(ctx, adminservice.Caller{Actor: "nsauth-bench", Offline: true})

	// The users, events and refs asked about: seeded ones, or on the
	// empty store the bench user and refs no event carries.
	user := func(i int) string { return benchUser }
	ref := func(i int) string { return strings.Repeat(strconv.Itoa(i%10), 32) }
	if d != nil {
		user = func(i int) string { return d.username(int(mix("audit user", i) % uint64(d.users))) }
		if d.events > 0 {
			ref = func(i int) string {
				j := int(mix("audit ref", i) % uint64(d.events))
				for !refEvent(j) {
					j = (j + 1) % d.events
				}
				return d.eventRef(j, "token")
			}
		}
	}
	since := time.Now().Add(-time.Hour).Unix()
	for _, q := range []struct {
		what   string
		req    func(i int) *adminv1.ListAuditEventsRequest
		p50    *float64
		events *int
	}{
		{"--since all --user", func(i int) *adminv1.ListAuditEventsRequest { return &adminv1.ListAuditEventsRequest{User: user(i)} }, &p.AuditUserP50Millis, &p.AuditUserEvents},
		{"--since 1h", func(int) *adminv1.ListAuditEventsRequest { return &adminv1.ListAuditEventsRequest{Since: since} }, &p.AuditSinceP50Millis, &p.AuditSinceEvents},
		{"--since all --ref", func(i int) *adminv1.ListAuditEventsRequest { return &adminv1.ListAuditEventsRequest{Ref: ref(i)} }, &p.AuditRefP50Millis, &p.AuditRefEvents},
	} {
		var times []time.Duration
		for i := range cfg.Queries {
			t0 := time.Now()
			n, err := listAudit(ctx, svc, q.req(i))
			if err != nil {
				return fmt.Errorf("bench: nsauth audit %s: %w", q.what, err)
			}
			times = append(times, time.Since(t0))
			*q.events = n
		}
		*q.p50 = p50(times)
		fmt.Fprintf(cfg.Progress, "  nsauth audit %s: p50 %.2f ms (%d events)\n", q.what, *q.p50, *q.events)
	}

	for _, pg := range []struct {
		what  string
		after string
		p50   *float64
	}{{"first page", "", &p.UsersFirstPageP50Millis}, {"a page from \"m\"", "m", &p.UsersDeepPageP50Millis}} {
		var times []time.Duration
		for range cfg.Queries {
			t0 := time.Now()
			resp, err := svc.ListUsers(ctx, connect.NewRequest(&adminv1.ListUsersRequest{AfterUsername: pg.after, Limit: adminservice.UsersPage}))
			if err != nil {
				return fmt.Errorf("bench: nsauth users list, %s: %w", pg.what, err)
			}
			times = append(times, time.Since(t0))
			if n := len(resp.Msg.GetUsers()); n > adminservice.UsersPage {
				return fmt.Errorf("bench: nsauth users list, %s: %d users in a page of %d", pg.what, n, adminservice.UsersPage)
			}
		}
		*pg.p50 = p50(times)
		fmt.Fprintf(cfg.Progress, "  nsauth users list, %s: p50 %.2f ms\n", pg.what, *pg.p50)
	}

	listCtx, cancel := context.WithTimeout(ctx, cfg.UsersListTimeout)
	defer cancel()
	t0 := time.Now()
	resp, err := svc.ListUsers(listCtx, connect.NewRequest(&adminv1.ListUsersRequest{}))
	p.UsersListMillis = millis(time.Since(t0))
	switch {
	case err == nil:
		p.UsersListed = len(resp.Msg.GetUsers())
	case listCtx.Err() != nil && ctx.Err() == nil:
		p.UsersListTimedOut = true
	default:
		return fmt.Errorf("bench: nsauth users list: %w", err)
	}
	fmt.Fprintf(cfg.Progress, "  nsauth users list: %.0f ms, %d users (timed out: %v)\n", p.UsersListMillis, p.UsersListed, p.UsersListTimedOut)
	return nil
}

// listAudit reads every event req selects, page by page as `nsauth audit`
// does, and returns how many there were.
func listAudit(ctx context.Context, svc *adminservice.Service, req *adminv1.ListAuditEventsRequest) (int, error) {
	req.Limit = adminservice.MaxAuditEvents
	n := 0
	for {
		resp, err := svc.ListAuditEvents(ctx, connect.NewRequest(req))
		if err != nil {
			return n, err
		}
		n += len(resp.Msg.GetEvents())
		if len(resp.Msg.GetEvents()) < adminservice.MaxAuditEvents {
			return n, nil
		}
		req.AfterId = resp.Msg.GetLastId()
	}
}

// countRows counts what the seeded store holds.
func countRows(ctx context.Context, loc *scaleLocation) (ScaleCounts, error) {
	var c ScaleCounts
	w, err := openWriter(ctx, loc)
	if err != nil {
		return c, err
	}
	defer w.close()
	now := time.Now().UnixMilli()
	for _, q := range []struct {
		query string
		n     *int64
	}{
		{`SELECT COUNT(*) FROM nsauth_users`, &c.Users},
		{`SELECT COUNT(*) FROM nsauth_audit_events`, &c.Events},
		{`SELECT COUNT(*) FROM nsauth_revocations WHERE expires_at > ` + strconv.FormatInt(now, 10), &c.LiveRevocations},
	} {
		if *q.n, err = w.count(ctx, q.query); err != nil {
			return c, fmt.Errorf("bench: counting rows: %w", err)
		}
	}
	return c, nil
}

// openWriter opens a connection of its own to loc's database.
func openWriter(ctx context.Context, loc *scaleLocation) (bulkWriter, error) {
	var w bulkWriter
	var err error
	if loc.backend == "sqlite" {
		w, err = openSQLiteWriter(ctx, loc.dataDir)
	} else {
		w, err = openPostgresWriter(ctx, loc.url)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return w, nil
}

// dataSize is the store's size on disk.
func dataSize(ctx context.Context, loc *scaleLocation) (int64, error) {
	if loc.backend == "sqlite" {
		return sqliteFilesSize(loc.dataDir + string(os.PathSeparator) + store.SQLiteFileName)
	}
	conn, err := pgx.Connect(ctx, loc.url)
	if err != nil {
		return 0, fmt.Errorf("bench: connecting to PostgreSQL at %s: %w", store.RedactURL(loc.url), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return postgresSchemaSize(ctx, conn)
}

// sqliteFilesSize is the size of a SQLite database and its WAL.
func sqliteFilesSize(path string) (int64, error) {
	var n int64
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("measuring the database: %w", err)
		}
		n += fi.Size()
	}
	return n, nil
}

func p50(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return millis(s[len(s)/2])
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
