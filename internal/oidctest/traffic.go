package oidctest

import (
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Failure is a way an endpoint can misbehave.
type Failure int

const (
	// Healthy answers normally.
	Healthy Failure = iota
	// Status500 answers HTTP 500 with a body containing Secret-looking text.
	Status500
	// Garbage answers HTTP 200 with a body that is not JSON.
	Garbage
	// Hang waits until the request's context ends.
	Hang
	// Drop closes the connection without answering.
	Drop
	// Slow waits half a second, then answers normally.
	Slow
)

// LeakBait is text the fake puts in error bodies; tests assert it never
// reaches a client or a log.
const LeakBait = "LEAKBAIT-provider-body-7f3a"

// traffic is the fake's record of what it received (counts by endpoint,
// copies of requests and of the forms posted to it) and the failures it
// was told to inject. It sits in front of every endpoint and has a lock of
// its own, so recording never waits on a login in progress.
type traffic struct {
	mu       sync.Mutex
	counts   map[string]int
	requests []*http.Request
	forms    []url.Values // forms posted to the token and device authorization endpoints
	failures map[string]Failure
	noRecord bool
	stopped  chan struct{} // closed when the provider stops, releasing hung handlers
}

func newTraffic() *traffic {
	return &traffic{counts: map[string]int{}, failures: map[string]Failure{}, stopped: make(chan struct{})}
}

// wrap counts and records each request to endpoint name, then misbehaves
// as set for name or calls h.
func (t *traffic) wrap(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t.record(name, r)
		t.mu.Lock()
		f := t.failures[name]
		t.mu.Unlock()
		switch f {
		case Status500:
			http.Error(w, "internal error "+LeakBait, http.StatusInternalServerError)
			return
		case Garbage:
			_, _ = w.Write([]byte("<html>" + LeakBait + "</html>"))
			return
		case Hang:
			// The server notices a client hanging up only once the body
			// has been read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-t.stopped:
			}
			return
		case Slow:
			time.Sleep(500 * time.Millisecond)
		case Drop:
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		h(w, r)
	}
}

// record counts a request to endpoint name and keeps a copy of it.
func (t *traffic) record(name string, r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[name]++
	if !t.noRecord {
		t.requests = append(t.requests, r.Clone(r.Context()))
	}
}

// recordForm keeps a copy of a parsed form.
func (t *traffic) recordForm(r *http.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.noRecord {
		t.forms = append(t.forms, maps.Clone(r.PostForm))
	}
}

func (t *traffic) count(name string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[name]
}

func (t *traffic) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.counts {
		n += c
	}
	return n
}

func (t *traffic) setFailure(name string, f Failure) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures[name] = f
}

func (t *traffic) setRecording(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.noRecord = !on
}

func (t *traffic) formsReceived() []url.Values {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.forms)
}

func (t *traffic) requestsReceived() []*http.Request {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.requests)
}
