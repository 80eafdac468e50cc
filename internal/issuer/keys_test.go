package issuer_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
	"github.com/nsauth/nsauth/internal/store"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

func kidsAt(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KID)
	}
	slices.Sort(out)
	return out
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	hdr, _ := jwtParts(t, token)
	kid, _ := hdr["kid"].(string)
	return kid
}

// TestKeyRotationSchedule follows one rotation with a one-hour period and
// 15-minute tokens: the successor is published 15 minutes before it signs,
// and the old key stays until the last token it signed has expired (plus
// two minutes of slack).
func TestKeyRotationSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.KeyRotation = time.Hour })
	first := kidsAt(t, h.url)
	if len(first) != 1 {
		t.Fatalf("%d keys at first start, want 1", len(first))
	}
	k1 := first[0]
	if kid := kidOf(t, h.tokens(nil).AccessToken); kid != k1 {
		t.Fatalf("signed with %q, want %q", kid, k1)
	}

	h.clock.Advance(44 * time.Minute)
	if got := kidsAt(t, h.url); !slices.Equal(got, first) {
		t.Fatalf("at 44 min: keys %v, want only the first", got)
	}
	h.clock.Advance(2 * time.Minute) // 46 min: rotation - prepublish has passed
	both := kidsAt(t, h.url)
	if len(both) != 2 {
		t.Fatalf("at 46 min: keys %v, want the first and its successor", both)
	}
	k2 := both[0]
	if k2 == k1 {
		k2 = both[1]
	}
	late := h.tokens(nil)
	if kid := kidOf(t, late.AccessToken); kid != k1 {
		t.Fatalf("the successor signs before it is due: %q", kid)
	}

	h.clock.Advance(16 * time.Minute) // 62 min: the successor signs
	tr := h.tokens(nil)
	if kidOf(t, tr.AccessToken) != k2 || kidOf(t, tr.IDToken) != k2 {
		t.Fatalf("at 62 min: signed with %q / %q, want %q", kidOf(t, tr.AccessToken), kidOf(t, tr.IDToken), k2)
	}
	if got := kidsAt(t, h.url); len(got) != 2 {
		t.Fatalf("at 62 min: keys %v; the old key left while its tokens live", got)
	}

	h.clock.Advance(17 * time.Minute) // 79 min: past 61 + 15 + 2
	if got := kidsAt(t, h.url); !slices.Equal(got, []string{k2}) {
		t.Fatalf("at 79 min: keys %v, want only %q", got, k2)
	}
	keys, err := h.st.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("store holds %d unexpired keys, want 1", len(keys))
	}
}

// TestReplicasAgreeOnKeys runs two providers on one database, as two
// processes would, and has both decide about rotation at once.
func TestReplicasAgreeOnKeys(t *testing.T) {
	t.Parallel()
	storetest.ForEach(t, func(t *testing.T, b storetest.Backend) {
		clock := storetest.NewClock(time.Time{})
		first := b.Open(t, store.Options{Now: clock.Now})
		if _, err := issuer.Bootstrap(ctx, first, issuer.BootstrapConfig{AdminPassword: "admin-password-1"}); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		issuerURL := "http://" + ln.Addr().String()
		ln.Close()
		var urls []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 2 {
			st := first
			if i == 1 {
				st = b.Reopen(t, first, store.Options{Now: clock.Now})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Both start at once on an empty key table.
				iss, err := issuer.New(ctx, issuer.Config{Issuer: issuerURL, Store: st, Now: clock.Now, KeyRotation: time.Hour})
				if err != nil {
					t.Error(err)
					return
				}
				srv := httptest.NewServer(iss.Handler())
				t.Cleanup(srv.Close)
				mu.Lock()
				urls = append(urls, srv.URL)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(urls) != 2 {
			t.Fatal("a replica failed to start")
		}
		a, c := kidsAt(t, urls[0]), kidsAt(t, urls[1])
		if len(a) != 1 || !slices.Equal(a, c) {
			t.Fatalf("after concurrent first starts: %v and %v, want one shared key", a, c)
		}

		clock.Advance(46 * time.Minute)
		results := make([][]string, 2)
		for i, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = kidsAt(t, u)
			}()
		}
		wg.Wait()
		if len(results[0]) != 2 || !slices.Equal(results[0], results[1]) {
			t.Fatalf("after a concurrent rotation check: %v and %v, want the same two keys", results[0], results[1])
		}
	})
}
