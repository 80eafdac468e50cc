package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Stream writes events as JSON lines, one object per event with the field
// names of [Event] and times in RFC 3339, for log shippers. It is safe for
// concurrent use: each line is written whole.
type Stream struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
}

// NewStream writes to w.
func NewStream(w io.Writer) *Stream { return &Stream{w: w} }

// OpenStream opens the stream NSAUTH_AUDIT_LOG names: "stdout", "stderr"
// (the writers given), or a file path, opened to append and created 0600.
// The empty string means no stream: nil, nil.
func OpenStream(spec string, stdout, stderr io.Writer) (*Stream, error) {
	switch spec {
	case "":
		return nil, nil
	case "stdout", "-":
		return NewStream(stdout), nil
	case "stderr":
		return NewStream(stderr), nil
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	return &Stream{w: f, closer: f}, nil
}

// Write writes one event as a line.
func (s *Stream) Write(e Event) error {
	e.ID = 0
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errors.New("the audit stream is closed")
	}
	_, err = s.w.Write(b)
	return err
}

// Close closes the file OpenStream opened; writers it was given stay open.
func (s *Stream) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = nil
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}
