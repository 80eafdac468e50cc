package issuertest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Source is where a request comes from: a loopback source address
// (127.0.0.2 and up work as source addresses on Linux) and, when that
// address is a proxy the server trusts, the X-Forwarded-For header the
// proxy adds ("" for none).
type Source struct {
	IP           string
	ForwardedFor string
}

// Sent is one request as an attacker racing a client sends it: on its own
// connection, from From, to Host (host:port). Raw, when set, is the
// request as bytes, sent as it is instead of Request.
type Sent struct {
	From    Source
	Host    string
	Request *http.Request
	Raw     []byte
}

// Answer is the response to a Sent request, its body read whole (at most
// 1 MiB).
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// Redirect returns where a redirect answer sends the browser, or an error
// when the answer is no redirect (RedirectOf for an Answer).
func (a Answer) Redirect() (*url.URL, error) {
	if a.Status != http.StatusSeeOther && a.Status != http.StatusFound {
		return nil, fmt.Errorf("expected a redirect, got HTTP %d:\n%s", a.Status, a.Body)
	}
	return url.Parse(a.Header.Get("Location"))
}

// SendTogether sends every request at once: each is written but for its
// last byte, then all the last bytes go together. It returns the answers
// in order, and fails the test when a request cannot be sent or answered.
// It is the one way the tests race requests: call it from the test's
// goroutine.
func SendTogether(t testing.TB, reqs ...Sent) []Answer {
	t.Helper()
	return SendTogetherWhile(t, nil, reqs...)
}

// SendTogetherWhile is SendTogether running during, when set, on the
// calling goroutine as soon as the last bytes are out, while the answers
// are awaited.
func SendTogetherWhile(t testing.TB, during func(), reqs ...Sent) []Answer {
	t.Helper()
	type conn struct {
		c    net.Conn
		last []byte
	}
	conns := make([]conn, len(reqs))
	for i, s := range reqs {
		var raw bytes.Buffer
		if s.Raw != nil {
			raw.Write(s.Raw)
		} else {
			s.Request.Close = true
			if s.From.ForwardedFor != "" {
				s.Request.Header.Set("X-Forwarded-For", s.From.ForwardedFor)
			}
			if err := s.Request.Write(&raw); err != nil {
				t.Fatal(err)
			}
		}
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(s.From.IP)}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", s.Host)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", i, s.From.IP, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		b := raw.Bytes()
		if _, err := c.Write(b[:len(b)-1]); err != nil {
			t.Fatal(err)
		}
		conns[i] = conn{c, b[len(b)-1:]}
	}
	out := make([]Answer, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			<-release
			_ = c.c.SetDeadline(time.Now().Add(2 * time.Minute))
			if _, errs[i] = c.c.Write(c.last); errs[i] != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(c.c), nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			out[i].Status, out[i].Header = resp.StatusCode, resp.Header
			out[i].Body, errs[i] = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		})
	}
	close(release)
	if during != nil {
		during()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d from %s: %v", i, reqs[i].From.IP, err)
		}
	}
	return out
}
