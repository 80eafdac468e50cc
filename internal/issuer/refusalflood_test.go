package issuer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// The refusal flood: every kind of request a client without credentials
// can have refused, sent as an attacker sends it (over HTTP, from 200
// loopback source addresses, with the per-address limits off so that
// nothing but the audit trail stands in the way), against two replicas
// sharing one database. Each address alternates between the replicas, so
// both count into the same rows.

const refusalFloodSources = 200

// floodPerAddress is how many refused requests of a kind each address
// sends in TestRefusalFloodIsAggregated: the kind's own number, enough to
// show what its rows are (two, one to each replica, for a kind with one
// reason; past the login counters' limit for the others), or
// $NSAUTH_TEST_FLOOD_PER_ADDRESS. Rows count (address, reason) pairs, not
// requests, so more requests make no more rows, only a slower test: the
// figure of the issue that found this, 20,000 of each kind, is
// NSAUTH_TEST_FLOOD_PER_ADDRESS=100, which takes minutes per backend.
func floodPerAddress(t *testing.T, kind refusalKind) int {
	t.Helper()
	v := os.Getenv("NSAUTH_TEST_FLOOD_PER_ADDRESS")
	if v == "" {
		return kind.perAddress
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < kind.perAddress {
		t.Fatalf("NSAUTH_TEST_FLOOD_PER_ADDRESS=%q: want a number of at least %d", v, kind.perAddress)
	}
	return n
}

// floodSource is one attacking address: a browser whose connections come
// from ip (kept alive), and the login page it holds, for the kinds that
// need one.
type floodSource struct {
	ip      string
	browser *issuertest.Browser
	hosts   []string // the replicas' host:port
	page    *issuertest.Page
}

func newFloodSource(t testing.TB, ip string, hosts []string) *floodSource {
	b := issuertest.NewBrowser(t)
	d := dialerFrom(ip)
	b.Client.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp4", addr)
		},
		MaxIdleConnsPerHost: 1,
	}
	t.Cleanup(b.Client.CloseIdleConnections)
	return &floodSource{ip: ip, browser: b, hosts: hosts}
}

// to points req at the j-th request's replica.
func (s *floodSource) to(req *http.Request, j int) *http.Request {
	req.URL.Host = s.hosts[j%len(s.hosts)]
	req.Host = req.URL.Host
	return req
}

// do sends the j-th request and returns its status.
func (s *floodSource) do(t testing.TB, req *http.Request, j int) int {
	resp, err := s.browser.Client.Do(s.to(req, j))
	if err != nil {
		t.Errorf("%s: %s %s: %v", s.ip, req.Method, req.URL.Path, err)
		return -1
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (s *floodSource) post(t testing.TB, j int, path string, form url.Values, user, pass string) int {
	req, err := http.NewRequest(http.MethodPost, "http://"+s.hosts[0]+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return s.do(t, req, j)
}

// withFields is the page's hidden fields with kv set.
func withFields(p *issuertest.Page, kv ...string) url.Values {
	out := url.Values{}
	for k, v := range p.Form {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// refusalKind is a kind of refused request.
type refusalKind struct {
	name string
	// perAddress is how many requests of the kind each address sends by
	// default (floodPerAddress).
	perAddress int
	// login says each source first opens a login page (an auth request
	// and its CSRF cookie); device, the device page.
	login, device bool
	// send sends a source's j-th request of the kind and returns the
	// status of its refusal.
	send func(t testing.TB, f *floodFixture, s *floodSource, j int) int
	// reasons, when the kind has one reason whatever the counters say, is
	// it: every (address, reason) must then be exactly one row.
	reason string
	// typed are values the requests carry that no record may hold.
	typed []string
}

const (
	floodSecretGuess   = "guessed-client-secret-7f3a"
	floodPasswordTyped = "typed-password-9c1e"
	floodUserTyped     = "typed-username-"
	floodUserCode      = "BCDF-GHJK"
	floodSubjectToken  = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NpLmV4YW1wbGUifQ.c2lnbmF0dXJlLWd1ZXNz"
)

func refusalKinds() []refusalKind {
	token := func(grant string, form url.Values) url.Values {
		form.Set("grant_type", grant)
		return form
	}
	return []refusalKind{
		{name: "unknown client at the token endpoint", perAddress: 2, reason: "unknown_client", typed: []string{"m-nobody-", floodSecretGuess},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/token", token("client_credentials", url.Values{}), fmt.Sprintf("m-nobody-%d", j), floodSecretGuess)
			}},
		{name: "bad client secret", perAddress: 2, reason: "bad_secret", typed: []string{floodSecretGuess},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/token", token("client_credentials", url.Values{}), f.machineID, fmt.Sprintf("%s-%d", floodSecretGuess, j))
			}},
		{name: "machine client credentials without a secret", perAddress: 2, reason: "invalid_request",
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/token", token("client_credentials", url.Values{"client_id": {f.machineID}}), "", "")
			}},
		{name: "bad token exchange", perAddress: 2, reason: "no_matching_policy", typed: []string{floodSubjectToken},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/token", token("urn:ietf:params:oauth:grant-type:token-exchange", url.Values{
					"subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "subject_token": {floodSubjectToken}}), "", "")
			}},
		{name: "revocation with bad client auth", perAddress: 2, reason: "bad_secret", typed: []string{floodSecretGuess},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/revoke", url.Values{"token": {"anything"}}, f.client, floodSecretGuess)
			}},
		{name: "introspection with bad client auth", perAddress: 2, reason: "bad_secret", typed: []string{floodSecretGuess},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/oauth/introspect", url.Values{"token": {"anything"}}, f.client, floodSecretGuess)
			}},
		{name: "device code entry", perAddress: floodLoginAttempts + 2, device: true, typed: []string{floodUserCode, strings.ReplaceAll(floodUserCode, "-", "")},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/device", withFields(s.page, "user_code", floodUserCode), "", "")
			}},
		{name: "unknown-user login", perAddress: floodLoginAttempts + 2, login: true, typed: []string{floodUserTyped, floodPasswordTyped},
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				return s.post(t, j, "/login", withFields(s.page, "username", fmt.Sprintf("%s%d", floodUserTyped, j), "password", floodPasswordTyped), "", "")
			}},
		{name: "bad passkey assertion", perAddress: floodLoginAttempts + 2, login: true,
			send: func(t testing.TB, f *floodFixture, s *floodSource, j int) int {
				body, _ := json.Marshal(map[string]string{"authRequestID": s.page.Form.Get("authRequestID"), "mode": "passwordless"})
				req, err := http.NewRequest(http.MethodPost, "http://"+s.hosts[0]+"/login/passkey/begin", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-CSRF-Token", s.page.Form.Get("csrf"))
				s.do(t, req, j) // begun or not, the attacker sends his assertion
				return s.post(t, j, "/login/passkey/finish", withFields(s.page, "mode", "passwordless", "credential", `{"id":"x","type":"public-key"}`), "", "")
			}},
	}
}

// floodLoginAttempts is the flood fixture's login attempt limit: the
// default's counters fill as its do, after fewer password checks (each
// costs an unknown username as much as a known one).
const floodLoginAttempts = 2

// floodFixture is a provider with the per-address limits off, its audit
// trail, a second replica on its database, and a machine client.
type floodFixture struct {
	*harness
	trails    []*auditTrail // the replicas'
	hosts     []string
	machineID string
}

func newFloodFixture(t *testing.T, b storetest.Backend, ac audit.Config) *floodFixture {
	t.Helper()
	f := &floodFixture{}
	unlimited := func(c *issuer.Config) {
		c.AuthorizePerMinute, c.MachineTokensPerMinute, c.MachineTokensPerAddressPerMinute, c.ExchangePerMinute = -1, -1, -1, -1
		c.LoginAttempts = floodLoginAttempts
	}
	f.harness = newHarness(t, b, func(c *issuer.Config) {
		// A host name, not an IP address, so that passkeys are offered.
		c.Issuer = strings.Replace(c.Issuer, "127.0.0.1", "localhost", 1)
		unlimited(c)
		f.trails = append(f.trails, withAuditConfig(t, c, ac))
	})
	replica := f.replica(func(c *issuer.Config) {
		unlimited(c)
		f.trails = append(f.trails, withAuditConfig(t, c, ac))
	})
	// Both by the issuer's host name, so that the browser's cookies go to
	// either.
	f.hosts = []string{f.host(), strings.Replace(replica, "127.0.0.1", "localhost", 1)}
	f.machineID, _ = f.machine("deploy", []string{"read"}, 0)
	return f
}

// floodInFlight bounds the addresses sending at once. More would only
// queue the requests' writes past the audit trail's write timeout (on two
// cores), and a write that times out is counted apart (Failures), not in
// the rows this test checks.
const floodInFlight = 16

// flood sends perAddress requests of kind from each of refusalFloodSources
// addresses, floodInFlight addresses at a time, and returns how many each
// address had refused.
func (f *floodFixture) flood(t *testing.T, kind refusalKind, perAddress int) map[string]int64 {
	t.Helper()
	refused := make(map[string]int64, refusalFloodSources)
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, floodInFlight)
	for _, ip := range floodAddresses(256, refusalFloodSources) {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			s := newFloodSource(t, ip, f.hosts)
			switch {
			case kind.login:
				s.page = s.browser.Open(t, f.authorizeURL(oauth2.GenerateVerifier(), nil))
				if s.page.Response.StatusCode != http.StatusOK || s.page.Form.Get("authRequestID") == "" {
					t.Errorf("%s: no login page: HTTP %d", ip, s.page.Response.StatusCode)
					return
				}
			case kind.device:
				req, _ := http.NewRequest(http.MethodGet, f.url+"/device", nil)
				s.page = s.browser.Do(t, req)
			}
			var n int64
			for j := range perAddress {
				if status := kind.send(t, f, s, j); status >= 400 {
					n++
				} else {
					t.Errorf("%s: request %d was not refused: HTTP %d", ip, j, status)
				}
			}
			mu.Lock()
			refused[ip] = n
			mu.Unlock()
		})
	}
	wg.Wait()
	return refused
}

// TestRefusalFloodIsAggregated sends refused requests of each kind from
// 200 addresses (floodPerAddress each) and checks the audit trail: fewer than 2,000 rows for each kind; every
// address appears with the number of its refusals (the counts of its rows
// sum to it, and nothing went to a dropped row); a kind with one reason
// has exactly one row per address, however the requests were split across
// the replicas; and no row holds what the requests typed.
func TestRefusalFloodIsAggregated(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFloodFixture(t, b, audit.Config{})
		for _, kind := range refusalKinds() {
			t.Run(kind.name, func(t *testing.T) {
				// A minute of its own: the rows of the kinds before, which
				// may share a reason, are complete.
				f.clock.Advance(time.Minute)
				perAddress := floodPerAddress(t, kind)
				before := f.lastEventID(t)
				refused := f.flood(t, kind, perAddress)
				events, err := f.st.AuditEvents(ctx, store.AuditFilter{AfterID: before})
				if err != nil {
					t.Fatal(err)
				}
				if len(events) >= 2000 {
					t.Errorf("%d requests added %d rows, want fewer than 2,000", refusalFloodSources*perAddress, len(events))
				}
				counted := map[string]int64{}
				rows := map[string]int{}
				keys := map[string]int{}
				for _, e := range events {
					switch {
					case e.Count < 1:
						t.Errorf("a refusal is a row of its own: %+v", e)
					case e.Type == audit.RefusalsDropped:
						t.Errorf("refusals were dropped from their addresses' rows: %+v", e)
					case e.Type == audit.LoginLockedOut:
						// Not a refusal of its own: the failure that filled a
						// counter, which is counted as a login failure too.
					default:
						counted[e.ClientAddr] += e.Count
						rows[e.ClientAddr]++
						keys[fmt.Sprintf("%s %s %s %s %s", e.Type, e.ClientAddr, e.Reason, e.Subject, e.Target)]++
						if kind.reason != "" && e.Reason != kind.reason {
							t.Errorf("%s: reason %q, want %q", e.ClientAddr, e.Reason, kind.reason)
						}
					}
				}
				for _, tr := range f.trails {
					if n := tr.auditor.Failures(); n > 0 {
						t.Fatalf("%d events could not be written", n)
					}
				}
				if len(refused) != refusalFloodSources {
					t.Fatalf("%d addresses sent their requests, want %d", len(refused), refusalFloodSources)
				}
				for ip, n := range refused {
					if counted[ip] != n {
						t.Errorf("%s had %d requests refused; its rows count %d", ip, n, counted[ip])
					}
					if kind.reason != "" && rows[ip] != 1 {
						t.Errorf("%s: %d rows for one reason, want one", ip, rows[ip])
					}
				}
				for key, n := range keys {
					if n > 1 {
						t.Errorf("%d rows for %s in one minute, want one", n, key)
					}
				}
				dump, _ := json.Marshal(events)
				for _, s := range append(kind.typed, f.secret) {
					if strings.Contains(string(dump), s) {
						t.Errorf("a row holds %q, which a request carried", s)
					}
				}
				t.Logf("%d requests from %d addresses: %d rows", refusalFloodSources*perAddress, refusalFloodSources, len(events))
			})
		}
	})
}

// lastEventID is the ID of the last stored event, 0 when none.
func (f *floodFixture) lastEventID(t *testing.T) int64 {
	t.Helper()
	events, err := f.st.AuditEvents(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].ID
}

// TestSimultaneousRefusalsOnTwoReplicas: 100 refusals from one address
// reach two replicas at the same instant (all but the last byte written on
// every connection, then the last bytes together). They make one row,
// counting all 100: the replicas add to it in the database rather than
// each writing back what it read.
func TestSimultaneousRefusalsOnTwoReplicas(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFloodFixture(t, b, audit.Config{})
		const n = 100
		body := "grant_type=client_credentials"
		reqs := make([][]byte, n)
		for i := range reqs {
			reqs[i] = []byte(fmt.Sprintf("POST /oauth/token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
				"Authorization: Basic %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", f.host(), basic(f.machineID, floodSecretGuess), len(body), body))
		}
		before := f.lastEventID(t)
		codes := sendTogether(t, "127.0.0.9", f.hosts, reqs, nil)
		checkOnly(t, "simultaneous refusals", tally(codes), http.StatusUnauthorized)
		events, err := f.st.AuditEvents(ctx, store.AuditFilter{AfterID: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].Count != n || events[0].ClientAddr != "127.0.0.9" || events[0].Reason != "bad_secret" {
			t.Fatalf("rows %+v, want one bad_secret row of 127.0.0.9 counting %d", events, n)
		}
	})
}

// TestRefusalFloodIsBounded: with room for 50 rows a minute on each
// replica, refusals from 200 addresses add at most 100 rows of addresses
// and one of what was dropped, whose count, with theirs, sums to every
// refusal; the replicas' metric counts the same.
func TestRefusalFloodIsBounded(t *testing.T) {
	t.Parallel()
	const bound = 50
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		f := newFloodFixture(t, b, audit.Config{RefusalRowsPerMinute: bound})
		kind := refusalKinds()[0]
		before := f.lastEventID(t)
		refused := f.flood(t, kind, kind.perAddress)
		events, err := f.st.AuditEvents(ctx, store.AuditFilter{AfterID: before})
		if err != nil {
			t.Fatal(err)
		}
		var sent, kept, dropped int64
		var dropRows int
		for _, n := range refused {
			sent += n
		}
		for _, e := range events {
			if e.Type == audit.RefusalsDropped {
				dropped += e.Count
				dropRows++
				if e.Target != string(audit.ClientCredentialsGrant) || e.Reason != kind.reason {
					t.Errorf("dropped row %+v, want one of %s %s", e, audit.ClientCredentialsGrant, kind.reason)
				}
				continue
			}
			kept += e.Count
		}
		if rows := len(events) - dropRows; rows > len(f.trails)*bound || dropRows != 1 {
			t.Errorf("%d rows of addresses and %d dropped rows, want at most %d and one", rows, dropRows, len(f.trails)*bound)
		}
		var metric uint64
		for _, tr := range f.trails {
			metric += tr.auditor.RefusalsDropped()
		}
		if kept+dropped != sent || dropped == 0 || uint64(dropped) != metric {
			t.Errorf("%d refusals: %d in rows of addresses, %d dropped (metric %d)", sent, kept, dropped, metric)
		}
	})
}
