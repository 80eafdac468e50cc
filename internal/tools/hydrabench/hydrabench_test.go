package main

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	bins := []string{"-hydra", "h", "-nsauth-server", "n"}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", bins, ""},
		{"one config", append(slices.Clone(bins), "-hydra-configs", "tuned"), ""},
		{"unknown config", append(slices.Clone(bins), "-hydra-configs", "fast"), `unknown value "fast"`},
		{"unknown scenario", append(slices.Clone(bins), "-scenarios", "refresh"), `unknown value "refresh"`},
		{"no binaries", nil, "are required"},
		{"no rounds", append(slices.Clone(bins), "-rounds", "0"), "-rounds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags(%q): %v", tc.args, err)
				}
				if o.concurrency != 16 || len(o.scenarios) != 2 {
					t.Errorf("parseFlags(%q) = %+v, want concurrency 16 and both scenarios", tc.args, o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

func TestStatistics(t *testing.T) {
	t.Parallel()
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 1 2 = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median of 4 1 2 3 = %v, want 2.5", got)
	}
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i))
	}
	if p50, p99 := percentile(ds, 50), percentile(ds, 99); p50 != 100 || p99 != 198 {
		t.Errorf("p50, p99 of 1…200 = %d, %d; want 100, 198", p50, p99)
	}
	if got := order(3, 0); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("order(3, 0) = %v", got)
	}
	if got := order(3, 1); !slices.Equal(got, []int{2, 1, 0}) {
		t.Errorf("order(3, 1) = %v", got)
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding.EncodeToString
	jwt := func(alg string, sigBytes int) string {
		return enc([]byte(`{"alg":"`+alg+`"}`)) + "." + enc([]byte("{}")) + "." + enc(make([]byte, sigBytes))
	}
	if alg, bits, err := signature(jwt("RS256", 512)); err != nil || alg != "RS256" || bits != 4096 {
		t.Errorf("signature(RS256, 512 bytes) = %q, %d, %v; want RS256, 4096", alg, bits, err)
	}
	if _, _, err := signature(jwt("ES256", 64)); err == nil {
		t.Error("signature(ES256) accepted, want an error: the key size is not the signature's")
	}
	if _, _, err := signature("opaque"); err == nil {
		t.Error("signature of an opaque token accepted")
	}
}

// TestDrive: every request counts, as a success or an error; an
// introspection answer that is not active is an error, and the error
// shown is the status and error code, never the body.
func TestDrive(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != basicAuth("id", "s3cret") {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"error":"server_error","error_description":"a secret detail"}`)
		case 1:
			_, _ = io.WriteString(w, `{"active":true}`)
		default:
			_, _ = io.WriteString(w, `{"active":false}`)
		}
	}))
	t.Cleanup(srv.Close)
	client := newClient(4)
	noCPU := func() (time.Duration, bool) { return 0, false }

	c := drive(context.Background(), client, call{url: srv.URL, auth: basicAuth("id", "s3cret"), body: "token=t", active: true}, 4, 200*time.Millisecond, noCPU)
	if c.ok == 0 || c.errors == 0 || int64(c.ok+c.errors) != n.Load() {
		t.Fatalf("drive: %d ok, %d errors, %d requests served; want both kinds, all counted", c.ok, c.errors, n.Load())
	}
	if c.ok > c.errors {
		t.Errorf("drive: %d ok, %d errors; inactive answers must count as errors", c.ok, c.errors)
	}
	if strings.Contains(c.firstError, "secret") {
		t.Errorf("first error %q shows the body", c.firstError)
	}
	if c.p50 <= 0 || c.p99 < c.p50 || c.cpuKnown {
		t.Errorf("drive: p50 %v, p99 %v, cpu known %v", c.p50, c.p99, c.cpuKnown)
	}

	c = drive(context.Background(), client, call{url: srv.URL, auth: basicAuth("id", "wrong"), body: "grant_type=client_credentials"}, 2, 50*time.Millisecond, noCPU)
	if c.ok != 0 || c.firstError != "HTTP 401 invalid_client" {
		t.Errorf("drive with a wrong secret: %d ok, first error %q; want none ok, HTTP 401 invalid_client", c.ok, c.firstError)
	}
}

// TestReport: the ratio is nsauth's req/s over the target's in the same
// round, the median over rounds with the lowest and highest beside it.
func TestReport(t *testing.T) {
	t.Parallel()
	o := &options{rounds: 3, duration: time.Second, concurrency: 16, scenarios: []string{scenarioIntrospection}}
	targets := []*target{{name: "nsauth", config: "built-in"}, {name: "hydra", config: "tuned"}}
	perSecond := func(n int) cell {
		return cell{ok: n, elapsed: time.Second, p50: time.Millisecond, p99: 2 * time.Millisecond}
	}
	res := results{scenarioIntrospection: {
		{perSecond(1000), perSecond(900), perSecond(1200)},
		{perSecond(100), perSecond(300), perSecond(200)},
	}}
	var b strings.Builder
	if err := writeReport(&b, o, &machine{platform: "test"}, targets, res); err != nil {
		t.Fatal(err)
	}
	want := "| introspection | hydra (tuned) | 200 | 1.0 | 2.0 | — | 0 | 6.0 (3.0–10.0) |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("report:\n%s\nwant a row %q", b.String(), want)
	}
}
