package servercmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
)

func testApp() *cli.App {
	return &cli.App{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{},
		Getenv: func(string) (string, bool) { return "", false }, Now: time.Now}
}

// TestStandInsMatchTheServerCommands: nsauth offers, as stand-ins running
// nsauth-server, exactly the commands nsauth-server adds, with the same
// one-line help.
func TestStandInsMatchTheServerCommands(t *testing.T) {
	t.Parallel()
	short := func(more []cli.NewCommand) map[string]string {
		bare := map[string]bool{}
		for _, c := range cli.NewRootCommand(testApp()).Commands() {
			bare[c.Name()] = true
		}
		m := map[string]string{}
		for _, c := range cli.NewRootCommand(testApp(), more...).Commands() {
			if !bare[c.Name()] {
				m[c.Name()] = c.Short
			}
		}
		return m
	}
	server, standIns := short(Commands), short(cli.ServerStandIns)
	if len(server) == 0 {
		t.Fatal("nsauth-server adds no commands")
	}
	for name, s := range server {
		if got, ok := standIns[name]; !ok {
			t.Errorf("nsauth has no stand-in for %q", name)
		} else if got != s {
			t.Errorf("%s: stand-in says %q, nsauth-server says %q", name, got, s)
		}
	}
	for name := range standIns {
		if _, ok := server[name]; !ok {
			t.Errorf("nsauth has a stand-in for %q, which nsauth-server does not have", name)
		}
	}
}

// TestServeHelpShowsFlagTypes: `serve --help` types each flag by what it
// takes, booleans as booleans.
func TestServeHelpShowsFlagTypes(t *testing.T) {
	t.Parallel()
	app := testApp()
	if code := cli.Run(context.Background(), app, []string{"serve", "--help"}, Commands...); code != cli.ExitOK {
		t.Fatalf("serve --help: exit %d", code)
	}
	help := app.Out.(*bytes.Buffer).String()
	tests := []struct {
		name    string
		want    string
		notWant string
	}{
		{"boolean alone", "--pprof  ", `--pprof string[="true"]`},
		{"boolean auth switch", "--auth-enabled  ", `--auth-enabled string`},
		{"whole number", "--login-attempts int  ", "--login-attempts string"},
		{"rate", "--rate-limit float  ", "--rate-limit string"},
		{"duration", "--shutdown-timeout duration  ", "--shutdown-timeout string"},
		{"list", "--trusted-proxies list  ", "--trusted-proxies string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(help, tc.want) || strings.Contains(help, tc.notWant) {
				t.Errorf("serve --help: want %q, not %q:\n%s", tc.want, tc.notWant, help)
			}
		})
	}
}
