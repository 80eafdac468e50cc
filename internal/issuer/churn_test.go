package issuer_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/issuer"
)

// TestClientLimitSurvivesKeyChurn is the attack that reset a machine
// client's token limit: the client spends its budget, then token requests
// naming bogus client ids, from 41 addresses (under the per-address
// limit), push the per-client limiter past its bound (10,100 ids past
// 10,000 in the attack; here, to keep the test quick, 1,100 past a bound
// of 1,000: the same churn, a tenth of the requests). The client must
// still be limited afterwards: no key is forgotten while its bucket is
// short. (ratelimit's TestChurnNeverResetsALimitedKey churns the default
// bound with the attack's numbers.)
func TestClientLimitSurvivesKeyChurn(t *testing.T) {
	t.Parallel()
	const bound = 1000
	h := newHarness(t, sqlite(), func(c *issuer.Config) { c.RateLimitKeys = bound })
	id, secret := h.machine("victim", []string{"read"}, 0)
	const perClient = 60 // the default NSAUTH_MACHINE_TOKEN_RATE_LIMIT_PER_MINUTE
	for i := range perClient {
		if tr := h.clientCredentials(id, secret, nil, false); tr.status != http.StatusOK {
			t.Fatalf("request %d of the client's budget: HTTP %d %s", i+1, tr.status, tr.Error)
		}
	}
	if tr := h.clientCredentials(id, secret, nil, false); tr.status != http.StatusTooManyRequests {
		t.Fatalf("request over the client's budget: HTTP %d, want 429", tr.status)
	}

	const addresses, bogus = 41, bound + 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for a := range addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DialContext: dialerFrom(fmt.Sprintf("127.0.0.%d", 10+a)).DialContext}, Timeout: time.Minute}
			defer client.CloseIdleConnections()
			for n := a; n < bogus; n += addresses {
				req, _ := http.NewRequest(http.MethodPost, h.url+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(fmt.Sprintf("bogus-client-%05d", n), "guess")
				resp, err := client.Do(req)
				code := -1
				if err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// The clock stands still: once the bound is reached, all keys short of
	// tokens, the last newcomers share one bucket and some are refused.
	checkOnly(t, "the bogus client ids", codes, http.StatusUnauthorized, http.StatusTooManyRequests)
	t.Logf("%d bogus client ids from %d addresses: %v", bogus, addresses, codes)

	if tr := h.clientCredentials(id, secret, nil, false); tr.status != http.StatusTooManyRequests {
		t.Fatalf("after the churn the client's request got HTTP %d, want 429: its limit was reset", tr.status)
	}
	h.clock.Advance(time.Minute)
	if tr := h.clientCredentials(id, secret, nil, false); tr.status != http.StatusOK {
		t.Fatalf("a minute later: HTTP %d %s", tr.status, tr.Error)
	}
}
