package cli_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/cli"
)

// TestLoginWithoutABrowser: when no browser can be opened, login says
// what it tried and gives the URL on the same line, then keeps waiting.
func TestLoginWithoutABrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	environ := e.environ()
	environ["BROWSER"] = filepath.Join(t.TempDir(), "no-such-browser")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errOut := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		app := &cli.App{In: strings.NewReader(""), Out: &syncBuffer{}, ErrOut: errOut, Getenv: mapEnv(environ), Now: time.Now}
		done <- cli.Run(ctx, app, []string{"login"})
	}()
	url := errOut.waitFor(t, regexp.MustCompile(`Could not open a browser \(running \$BROWSER: \S+no-such-browser was not found\); open this URL yourself: (http://\S+)\n`), 10*time.Second)
	if !strings.Contains(url, "code_challenge=") {
		t.Errorf("the URL given is not the login URL: %s", url)
	}
	errOut.waitFor(t, regexp.MustCompile(`Waiting for the browser`), 10*time.Second)
	cancel()
	if code := <-done; code != cli.ExitFailure || !strings.Contains(errOut.String(), "login canceled") {
		t.Errorf("login: exit %d\n%s", code, errOut.String())
	}
}
