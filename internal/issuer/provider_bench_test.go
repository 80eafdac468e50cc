package issuer_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

// These benchmarks drive the built-in provider's endpoints over real HTTP
// on SQLite, from as many goroutines as the machine has cores times 4, and
// report beside ns/op the process's CPU time per call ("cpu-µs/op":
// server and client together, as in a deployment where the load comes
// from elsewhere it is the server's alone plus a small client share). The
// raw signature's rate on the same cores is the ceiling of the token
// endpoint: `go test -run '^$' -bench 'Provider' ./internal/issuer/`.

// benchHarness is a harness without the limits a benchmark's single client
// would hit, recording its audit events to the store as nsauth serve does
// by default: the audit row is part of what a token costs.
func benchHarness(b *testing.B) *harness {
	b.Helper()
	watchCommits()
	return newHarness(b, sqlite(), func(c *issuer.Config) {
		c.MachineTokensPerMinute = -1
		c.MachineTokensPerAddressPerMinute = -1
		a, err := audit.New(audit.Config{Key: []byte("an audit key of thirty-two bytes"), Sink: c.Store, Now: c.Now, Replica: "bench", GroupCommit: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close(context.Background()) })
		c.Audit = a
	})
}

// benchClient keeps enough idle connections for every goroutine.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
}

// parallelism is the goroutines per core of these benchmarks.
const parallelism = 4

// formPool holds one form per goroutine of a run: each takes one, posts it
// again and again (a refresh posts the token the last answer rotated to)
// and puts it back, so that the next run (of a larger b.N) continues.
func formPool(f func() url.Values) chan url.Values {
	forms := make(chan url.Values, parallelism*runtime.GOMAXPROCS(0))
	for range cap(forms) {
		forms <- f()
	}
	return forms
}

// runPosts posts forms to endpoint b.N times in parallel, with basic
// authentication id:secret, and fails on any answer but 200. Beside the
// CPU it reports the write transactions committed per call in h's
// database ("commits/op": its own and its share of the audit trail's
// batches).
func runPosts(b *testing.B, h *harness, client *http.Client, endpoint, id, secret string, forms chan url.Values) {
	b.Helper()
	b.SetParallelism(parallelism)
	dir := storetest.SQLiteDir(b, h.st)
	defer func(before int64) {
		b.ReportMetric(float64(commits(dir)-before)/float64(b.N), "commits/op")
	}(commits(dir))
	start := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		f := <-forms
		defer func() { forms <- f }()
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(f.Encode()))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("HTTP %d: %s", resp.StatusCode, body)
				return
			}
			if next := nextForm(body); next != nil {
				f = next(f)
			}
		}
	})
	b.StopTimer()
	reportCPU(b, start)
}

// nextForm returns, for a refresh's answer, how the next request's form
// follows from it (the rotated refresh token); nil for other answers.
func nextForm(body []byte) func(url.Values) url.Values {
	var tr struct {
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(body, &tr) != nil || tr.RefreshToken == "" {
		return nil
	}
	return func(f url.Values) url.Values {
		if f.Get("grant_type") != "refresh_token" {
			return f
		}
		f.Set("refresh_token", tr.RefreshToken)
		return f
	}
}

// processCPU is the CPU time the process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkProviderTokenEndpoint: the client-credentials grant (one
// signature per call) against the raw RS256 signature of a key of the same
// size, both on every core.
func BenchmarkProviderTokenEndpoint(b *testing.B) {
	h := benchHarness(b)
	id, secret := h.machine("bench", []string{"read"}, 0)
	client := benchClient()
	forms := formPool(func() url.Values { return url.Values{"grant_type": {"client_credentials"}} })
	b.Run("client_credentials", func(b *testing.B) {
		runPosts(b, h, client, h.url+"/oauth/token", id, secret, forms)
	})
	b.Run("raw RS256 signature", func(b *testing.B) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			b.Fatal(err)
		}
		start := processCPU()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			digest := sha256.Sum256([]byte("a header.a payload of an access token"))
			for pb.Next() {
				if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		reportCPU(b, start)
	})
}

// BenchmarkProviderIntrospection: RFC 7662 introspection of an active
// machine token by a resource server (the bootstrap client).
func BenchmarkProviderIntrospection(b *testing.B) {
	h := benchHarness(b)
	id, secret := h.machine("bench", []string{"read"}, 0)
	tr := h.clientCredentials(id, secret, nil, false)
	if tr.status != http.StatusOK {
		b.Fatalf("client credentials: HTTP %d %s", tr.status, tr.Error)
	}
	runPosts(b, h, benchClient(), h.url+"/oauth/introspect", h.client, h.secret, formPool(func() url.Values {
		return url.Values{"token": {tr.AccessToken}}
	}))
}

// BenchmarkProviderRefresh: the refresh-token grant, each goroutine
// rotating a session of its own (an access token, an ID token and a new
// refresh token per call).
func BenchmarkProviderRefresh(b *testing.B) {
	h := benchHarness(b)
	forms := formPool(func() url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {h.tokens(nil).RefreshToken}}
	})
	runPosts(b, h, benchClient(), h.url+"/oauth/token", h.client, h.secret, forms)
}
