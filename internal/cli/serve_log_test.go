package cli_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/servetest"
)

// logLines returns the JSON log lines in logs (the banner is skipped).
func logLines(logs string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

func findLog(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// TestServeSaysWhereItListensAndWhenItStops: the URL logged works, an
// all-interfaces listener says it is reachable from elsewhere, and a
// graceful stop ends with a line that says so. (A built-in provider on all
// interfaces needs NSAUTH_ISSUER: config refuses it without one, as
// TestIssuerRequiredOffLoopback shows.)
func TestServeSaysWhereItListensAndWhenItStops(t *testing.T) {
	t.Parallel()
	const allInterfaces = "listening on all interfaces: reachable from other machines"
	tests := []struct {
		name    string
		env     func(t *testing.T) map[string]string
		listen  string
		wantAll bool
	}{
		{"loopback", func(*testing.T) map[string]string { return map[string]string{"AUTH_ENABLED": "false"} }, "127.0.0.1:0", false},
		{"all interfaces", func(*testing.T) map[string]string { return map[string]string{"AUTH_ENABLED": "false"} }, "0.0.0.0:0", true},
		{"all interfaces, built-in provider", func(t *testing.T) map[string]string {
			return map[string]string{"NSAUTH_DATA_DIR": t.TempDir(), "NSAUTH_ADMIN_PASSWORD": "serve-log-test-password", "NSAUTH_ISSUER": "https://auth.example.com"}
		}, "0.0.0.0:0", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// (servetest passes --listen, so HOST=0.0.0.0 cannot be used here;
			// config.Load makes both the same listen address.)
			s := servetest.Start(t, servetest.Options{Env: tc.env(t), Args: []string{"--listen", tc.listen}})
			u, err := url.Parse(s.URL)
			if err != nil || u.Hostname() != "127.0.0.1" {
				t.Fatalf("nsauth serving url=%q: want a URL that works on this machine", s.URL)
			}
			resp, err := http.Get(s.URL + "/healthz")
			if err != nil {
				t.Fatalf("the logged URL does not work: %v", err)
			}
			resp.Body.Close()

			lines := logLines(s.Logs.String())
			all := findLog(lines, allInterfaces)
			if (all != nil) != tc.wantAll {
				t.Fatalf("%q logged: %v, want %v:\n%s", allInterfaces, all != nil, tc.wantAll, s.Logs.String())
			}
			if all != nil {
				if listen, _ := all["listen"].(string); !strings.HasSuffix(listen, ":"+u.Port()) {
					t.Errorf("listen = %q, want the bound address", listen)
				}
				if nu, ok := all["network_url"].(string); ok {
					n, err := url.Parse(nu)
					if ip := net.ParseIP(n.Hostname()); err != nil || ip == nil || ip.IsLoopback() || ip.IsUnspecified() || n.Port() != u.Port() {
						t.Errorf("network_url = %q, want this machine's address and the port", nu)
					}
				}
			}
			if strings.Contains(s.URL, "[::]") || strings.Contains(s.URL, "0.0.0.0") {
				t.Errorf("serving URL %q is an unspecified address", s.URL)
			}

			if code := s.Stop(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
			lines = logLines(s.Logs.String())
			last := lines[len(lines)-1]
			d, err := time.ParseDuration(fmtAny(last["drain"]))
			if last["msg"] != "nsauth stopped" || err != nil || d < 0 || d > 10*time.Second {
				t.Errorf("last log line %v, want \"nsauth stopped\" with the drain's duration", last)
			}
		})
	}
}

func fmtAny(v any) string {
	s, _ := v.(string)
	return s
}
