package issuertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// FindChromium returns the headless browser to drive:
// $NSAUTH_TEST_CHROMIUM, or Debian's chromium. Without one the test is
// skipped, except in CI ($CI=true), where a missing browser is a failure.
func FindChromium(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("NSAUTH_TEST_CHROMIUM"), "/usr/bin/chromium"}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required in CI (apt-get install chromium) but was not found")
	}
	t.Skip("skipping: no chromium found (install Debian's chromium, or set NSAUTH_TEST_CHROMIUM); in CI this fails")
	return ""
}

// Chromium is a headless Chromium for one test, with a fresh profile.
type Chromium struct {
	// Ctx runs chromedp actions in the browser's tab; it ends with the
	// test or after the timeout given to NewChromium.
	Ctx context.Context
	out *lockedBuilder
}

// NewChromium starts headless Chromium (see [FindChromium]) and stops it
// when the test ends.
func NewChromium(t testing.TB, timeout time.Duration) *Chromium {
	t.Helper()
	path := FindChromium(t)
	out := &lockedBuilder{}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(out),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return &Chromium{Ctx: ctx, out: out}
}

// Do runs steps, failing the test with the browser's output when one
// fails.
func (c *Chromium) Do(t testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(c.Ctx, steps...); err != nil {
		t.Fatalf("%s: %v\nbrowser output:\n%s", what, err, c.out.String())
	}
}

// Get runs one action that reads something, such as chromedp.Text,
// failing the test when it fails.
func Get[T any](t testing.TB, c *Chromium, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(c.Ctx, a)
	if err != nil {
		t.Fatalf("reading the page: %v\nbrowser output:\n%s", err, c.out.String())
	}
	return v
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
