package issuertest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
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
// connection, from From, to Host (host:port).
type Sent struct {
	From    Source
	Host    string
	Request *http.Request
}

// Answer is the response to a Sent request, its body read whole (at most
// 1 MiB).
type Answer struct {
	Status int
	Body   []byte
}

// SendTogether sends every request at once: each is written but for its
// last byte, then all the last bytes go together. It returns the answers
// in order, and fails the test when a request cannot be sent or answered.
func SendTogether(t testing.TB, reqs ...Sent) []Answer {
	t.Helper()
	type conn struct {
		c    net.Conn
		last []byte
	}
	conns := make([]conn, len(reqs))
	for i, s := range reqs {
		s.Request.Close = true
		if s.From.ForwardedFor != "" {
			s.Request.Header.Set("X-Forwarded-For", s.From.ForwardedFor)
		}
		var raw bytes.Buffer
		if err := s.Request.Write(&raw); err != nil {
			t.Fatal(err)
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
	for i, c := range conns {
		wg.Go(func() {
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
			out[i].Status = resp.StatusCode
			out[i].Body, errs[i] = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d from %s: %v", i, reqs[i].From.IP, err)
		}
	}
	return out
}
