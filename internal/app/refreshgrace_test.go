package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/issuer/issuertest"
	"github.com/nsauth/nsauth/internal/servetest"
)

// RefreshCli presents every caller's refresh token to the built-in
// provider as one client, the broker's. These tests are the attack on the
// rotation grace as it was found: a thief and the client present the same
// refresh token to RefreshCli, over Connect on real connections from two
// loopback addresses. Only the client's retry from the address that
// rotated (as the RPC layer sees it, proxies resolved) may get the same
// new refresh token; any other presentation within the grace revokes the
// login, whoever came first.

var (
	theClient = issuertest.Source{IP: "127.0.0.2"}
	theThief  = issuertest.Source{IP: "127.0.0.3"}
	// Through the proxy the servers trust (127.0.0.1).
	clientBehindProxy = issuertest.Source{IP: "127.0.0.1", ForwardedFor: "198.51.100.20"}
	thiefBehindProxy  = issuertest.Source{IP: "127.0.0.1", ForwardedFor: "198.51.100.21"}
)

// refreshCall is one RefreshCli call from by to the server at base.
type refreshCall struct {
	by   issuertest.Source
	base string
	rt   string
}

// refreshAnswer is RefreshCli's answer: the tokens, or the Connect error
// code.
type refreshAnswer struct {
	access, refresh string
	code            string // "" on success
}

// callRefreshCli makes every call at once, each on its own connection
// from its own source address, all but the last byte first (Connect's
// unary protocol, JSON over HTTP/1.1, as any client may speak it).
func callRefreshCli(t *testing.T, calls ...refreshCall) []refreshAnswer {
	t.Helper()
	sent := make([]issuertest.Sent, len(calls))
	for i, c := range calls {
		body, err := protojson.Marshal(&mgmtv1alpha1.RefreshCliRequest{RefreshToken: c.rt})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, c.base+mgmtv1alpha1connect.AuthServiceRefreshCliProcedure, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		u, err := url.Parse(c.base)
		if err != nil {
			t.Fatal(err)
		}
		sent[i] = issuertest.Sent{From: c.by, Host: u.Host, Request: req}
	}
	out := make([]refreshAnswer, len(calls))
	for i, a := range issuertest.SendTogether(t, sent...) {
		if a.Status != http.StatusOK {
			// A Connect error: {"code": "unauthenticated", "message": …}.
			var e struct{ Code string }
			if err := json.Unmarshal(a.Body, &e); err != nil || e.Code == "" {
				t.Fatalf("call %d from %s: HTTP %d %s", i, calls[i].by.IP, a.Status, a.Body)
			}
			out[i].code = e.Code
			continue
		}
		var resp mgmtv1alpha1.RefreshCliResponse
		if err := protojson.Unmarshal(a.Body, &resp); err != nil {
			t.Fatalf("call %d from %s: %v", i, calls[i].by.IP, err)
		}
		out[i].access, out[i].refresh = resp.GetAccessToken().GetAccessToken(), resp.GetAccessToken().GetRefreshToken()
		if out[i].access == "" || out[i].refresh == "" {
			t.Fatalf("call %d from %s answered without tokens", i, calls[i].by.IP)
		}
	}
	return out
}

// wantLoginRevoked fails unless a's tokens are dead: its refresh token is
// refused, and its access token is refused by CheckToken on every server
// (a replica learns of a revocation within a second; it is given ten).
func wantLoginRevoked(t *testing.T, what string, a refreshAnswer, servers []*servetest.Server) {
	t.Helper()
	if r := callRefreshCli(t, refreshCall{theClient, servers[0].URL, a.refresh})[0]; r.code != connect.CodeUnauthenticated.String() {
		t.Errorf("%s's refresh token afterwards: %+v, want unauthenticated (login revoked)", what, r.code)
	}
	for _, s := range servers {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := checkToken(s.URL, a.access)
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s's access token afterwards, at %s: CheckToken = %v, want unauthenticated", what, s.URL, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// startReplicas starts n servers of one built-in provider on backend
// (replicas share a PostgreSQL database), trusting 127.0.0.1 as a proxy.
func startReplicas(t *testing.T, backend string, n int) []*servetest.Server {
	b := newSealedBackend(t, backend)
	args := append(append([]string{}, sealedArgs...), "--trusted-proxies", "127.0.0.1", "--login-attempts", "1000")
	var out []*servetest.Server
	for range n {
		out = append(out, servetest.Start(t, servetest.Options{Env: b.env, Args: args}))
	}
	return out
}

func TestRefreshCliGraceThief(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			// One SQLite server; two PostgreSQL replicas, the second
			// presentation going to the other one.
			servers := startReplicas(t, backend, map[string]int{"sqlite": 1, "postgres": 2}[backend])
			second := servers[len(servers)-1]
			for _, tc := range []struct {
				name          string
				first, second issuertest.Source
				sameToken     bool // second gets first's new refresh token; otherwise the login is revoked
			}{
				{name: "thief first, then the client's retry", first: theThief, second: theClient},
				{name: "client first, then the thief", first: theClient, second: theThief},
				{name: "the client's retry from its own address", first: theClient, second: theClient, sameToken: true},
				{name: "behind the proxy, the client's retry", first: clientBehindProxy, second: clientBehindProxy, sameToken: true},
				{name: "behind the proxy, thief first", first: thiefBehindProxy, second: clientBehindProxy},
				{name: "a forged X-Forwarded-For from an untrusted peer", first: clientBehindProxy, second: issuertest.Source{IP: theThief.IP, ForwardedFor: clientBehindProxy.ForwardedFor}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					rt := login(t, servers[0]).GetRefreshToken()
					first := callRefreshCli(t, refreshCall{tc.first, servers[0].URL, rt})[0]
					if first.code != "" {
						t.Fatalf("first RefreshCli: %s", first.code)
					}
					got := callRefreshCli(t, refreshCall{tc.second, second.URL, rt})[0]
					if tc.sameToken {
						if got.code != "" || got.refresh != first.refresh {
							t.Fatalf("retry: %q, same refresh token: %v; want the first answer's", got.code, got.refresh == first.refresh)
						}
						if r := callRefreshCli(t, refreshCall{tc.second, second.URL, got.refresh})[0]; r.code != "" {
							t.Fatalf("the new refresh token after the retry: %s", r.code)
						}
						return
					}
					if got.code != connect.CodeUnauthenticated.String() || got.refresh != "" {
						t.Fatalf("second RefreshCli: %q, tokens given: %v; want unauthenticated and nothing", got.code, got.refresh != "")
					}
					wantLoginRevoked(t, "the first caller", first, servers)
				})
			}
			t.Run("simultaneous", func(t *testing.T) {
				rt := login(t, servers[0]).GetRefreshToken()
				var calls []refreshCall
				for i := range 8 {
					by := theClient
					if i%2 == 1 {
						by = theThief
					}
					calls = append(calls, refreshCall{by, servers[(i/2)%len(servers)].URL, rt})
				}
				servedTo := map[string]bool{}
				var issued []refreshAnswer
				for i, a := range callRefreshCli(t, calls...) {
					switch a.code {
					case "":
						servedTo[calls[i].by.IP] = true
						issued = append(issued, a)
					case connect.CodeUnauthenticated.String():
					default:
						t.Errorf("call %d from %s: %s, want tokens or unauthenticated", i, calls[i].by.IP, a.code)
					}
				}
				if len(servedTo) > 1 {
					t.Errorf("the thief and the client both got tokens of one login")
				}
				for _, a := range issued {
					wantLoginRevoked(t, "a winner", a, servers)
				}
			})
		})
	}
}
