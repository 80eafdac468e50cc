package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	mgmtv1alpha1 "github.com/nsauth/nsauth/gen/mgmt/v1alpha1"
	"github.com/nsauth/nsauth/gen/mgmt/v1alpha1/mgmtv1alpha1connect"
	"github.com/nsauth/nsauth/internal/oidctest"
	"github.com/nsauth/nsauth/internal/servetest"
	"github.com/nsauth/nsauth/internal/telemetry/telemetrytest"
)

// TestNoSecretsInLogsErrorsOrMetrics runs a whole session (login, token,
// refresh, check, a refused refresh, a refused token, logout, a device
// login and a refused device code) with the
// server logging at debug level, then looks for every secret that crossed
// the wire in everything a person or a log collector could see: server
// logs, each command's stderr, error messages, /metrics, and the spans
// exported to an OTLP endpoint.
func TestNoSecretsInLogsErrorsOrMetrics(t *testing.T) {
	t.Parallel()
	fake := oidctest.New(t)
	secrets, _ := json.Marshal(map[string]string{fake.ClientID: fake.ClientSecret})
	spans := telemetrytest.New(t)
	srv := servetest.Start(t, servetest.Options{Env: map[string]string{
		"AUTH_BASEURL":                fake.Issuer,
		"AUTH_AUDIENCE":               fake.Audience,
		"AUTH_CLI_CLIENT_ID":          fake.ClientID,
		"AUTH_CLIENTID_SECRET":        string(secrets),
		"OTEL_EXPORTER_OTLP_ENDPOINT": spans.URL,
	}, Args: []string{"--log-level", "debug"}})
	serverURL, serverLogs := srv.URL, srv.Logs
	e := &env{t: t, fake: fake, configDir: filepath.Join(t.TempDir(), "config"), counts: map[string]int{}}
	e.apiURL = e.countingProxy(serverURL)
	ctx := context.Background()

	var seen []string // everything shown to people or logs
	show := func(r result) result {
		seen = append(seen, r.errOut)
		return r
	}
	show(e.login())
	first := e.entry()

	r := show(e.run(ctx, nil, "token"))
	if r.code != 0 || strings.TrimSpace(r.out) != first.AccessToken {
		t.Fatalf("token: exit %d", r.code)
	}
	// Expire the access token so the next `token` refreshes.
	stale := *first
	stale.Expiry = time.Now().Add(-time.Minute)
	if err := e.store().Save(&stale); err != nil {
		t.Fatal(err)
	}
	if r := show(e.run(ctx, nil, "token")); r.code != 0 {
		t.Fatalf("token (refresh): exit %d\n%s", r.code, r.errOut)
	}
	second := e.entry()
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("the refresh did not rotate the refresh token")
	}
	if r := show(e.run(ctx, nil, "whoami")); r.code != 0 {
		t.Fatalf("whoami: exit %d\n%s", r.code, r.errOut)
	} else {
		seen = append(seen, r.out)
	}
	if r := show(e.run(ctx, nil, "status")); r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.errOut)
	} else {
		seen = append(seen, r.out)
	}

	// Refusals: the old refresh token (rotated away), and a forged access
	// token; their error messages are shown too.
	replay := *second
	replay.RefreshToken = first.RefreshToken
	replay.Expiry = time.Now().Add(-time.Minute)
	if err := e.store().Save(&replay); err != nil {
		t.Fatal(err)
	}
	if r := show(e.run(ctx, nil, "token")); r.code == 0 {
		t.Fatal("token with a replayed refresh token succeeded")
	}
	forged := second.AccessToken[:len(second.AccessToken)-4] + "AAAA"
	if _, err := e.checkToken(forged); err == nil {
		t.Fatal("CheckToken accepted a forged token")
	} else {
		seen = append(seen, err.Error())
	}
	if err := e.store().Save(second); err != nil {
		t.Fatal(err)
	}
	if r := show(e.run(ctx, nil, "logout")); r.code != 0 {
		t.Fatalf("logout: exit %d\n%s", r.code, r.errOut)
	}

	// A device login, approved at its first poll, then a poll of its used
	// device code, refused.
	clk := &deviceClock{now: time.Now()}
	deviceOut := &syncBuffer{}
	clk.onWait = func(int) bool {
		if m := userCodePattern.FindStringSubmatch(deviceOut.String()); m != nil {
			fake.ApproveDevice(m[1])
		}
		return true
	}
	if r := show(runDevice(ctx, e, clk, deviceOut)); r.code != 0 {
		t.Fatalf("login --device: exit %d\n%s", r.code, r.errOut)
	}
	third := e.entry()
	for _, dc := range fake.DeviceCodes() {
		_, err := mgmtv1alpha1connect.NewAuthServiceClient(http.DefaultClient, e.apiURL).PollDeviceLogin(ctx,
			connect.NewRequest(&mgmtv1alpha1.PollDeviceLoginRequest{DeviceCode: dc}))
		if err == nil {
			t.Fatal("a used device code brought tokens again")
		}
		seen = append(seen, err.Error())
	}

	resp, err := http.Get(serverURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Stopping the server flushes its spans.
	if code := srv.Stop(t); code != 0 {
		t.Fatalf("nsauth serve exited with %d", code)
	}
	seen = append(seen, string(metrics), serverLogs.String(), spans.Text())
	if !strings.Contains(spans.Text(), "POST /token\n") {
		t.Errorf("no span of a call to the provider's token endpoint among the exported spans:\n%s", spans.Text())
	}

	// Every secret that crossed the wire.
	wanted := []string{first.AccessToken, first.RefreshToken, first.IDToken, second.AccessToken, second.RefreshToken, second.IDToken,
		third.AccessToken, third.RefreshToken, third.IDToken}
	wanted = append(wanted, fake.DeviceCodes()...)
	for _, form := range fake.Forms() {
		for _, k := range []string{"code", "code_verifier", "refresh_token", "client_secret", "device_code"} {
			wanted = append(wanted, form.Get(k))
		}
	}
	wanted = append(wanted, fake.ClientSecret, forged, oidctest.LeakBait)
	n := 0
	for _, s := range wanted {
		if len(s) < 8 {
			continue
		}
		n++
		for i, text := range seen {
			if strings.Contains(text, s) {
				t.Errorf("output %d contains a secret (%.10s…)", i, s)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d secrets collected; the test would prove little", n)
	}
	if !strings.Contains(serverLogs.String(), `"level":"DEBUG"`) {
		t.Errorf("server logs hold no debug lines; was debug logging on?")
	}
	t.Logf("checked %d secrets against %d outputs (%d bytes of server logs)", n, len(seen), len(serverLogs.String()))
}
