package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/nsauth/nsauth/internal/audit"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// memSink keeps events, or fails every write with err. Aggregated rows
// are kept once per key, their counts added up as the store does.
type memSink struct {
	mu     sync.Mutex
	events []audit.Event
	keys   map[string]int // index in events of an aggregated row
	err    error
}

func (m *memSink) InsertAuditEvent(_ context.Context, e audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.events = append(m.events, e)
	return nil
}

func (m *memSink) CountAuditEvent(_ context.Context, key string, e audit.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if i, ok := m.keys[key]; ok {
		m.events[i].Count += e.Count
		return nil
	}
	if m.keys == nil {
		m.keys = map[string]int{}
	}
	m.keys[key] = len(m.events)
	m.events = append(m.events, e)
	return nil
}

func fixedNow() time.Time {
	return time.Date(2026, 11, 30, 18, 0, 0, 123456789, time.FixedZone("CET", 3600))
}

func newAuditor(t *testing.T, cfg audit.Config) *audit.Auditor {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey
	}
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	a, err := audit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRecordFillsTimeReplicaTraceAndBounds(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	a := newAuditor(t, audit.Config{Sink: sink, Replica: "replica-1"})
	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	}))
	err := a.Record(ctx, audit.Event{
		Type:      audit.LoginFailed,
		Outcome:   audit.Failure,
		Username:  "alice",
		ClientID:  "cli\r\nforged: line",
		UserAgent: strings.Repeat("x", 1000) + "\n",
		Reason:    "bad\x1b[31m_credentials",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sink.events) != 1 {
		t.Fatalf("sink got %d events, want 1", len(sink.events))
	}
	e := sink.events[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"time is UTC to the millisecond", e.Time, fixedNow().UTC().Truncate(time.Millisecond)},
		{"time location", e.Time.Location(), time.UTC},
		{"replica", e.Replica, "replica-1"},
		{"trace id from the span", e.TraceID, traceID.String()},
		{"user agent is cut", len(e.UserAgent), 256},
		{"a reason that is no category is not recorded", e.Reason, "unlisted"},
		{"control characters are replaced", e.ClientID, "cli??forged: line"},
		{"outcome kept", e.Outcome, audit.Failure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestRecordDefaultsOutcomeAndKeepsNoTraceWithoutSpan(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	a := newAuditor(t, audit.Config{Sink: sink})
	if err := a.Record(context.Background(), audit.Event{Type: audit.CodeIssued}); err != nil {
		t.Fatal(err)
	}
	if e := sink.events[0]; e.Outcome != audit.Success || e.TraceID != "" {
		t.Errorf("outcome %q trace %q, want success and none", e.Outcome, e.TraceID)
	}
}

func TestRef(t *testing.T) {
	t.Parallel()
	a := newAuditor(t, audit.Config{})
	other := newAuditor(t, audit.Config{Key: []byte("another key, 32 bytes long......")})
	secret := "refresh-token-value"
	ref := a.Ref(secret)
	tests := []struct {
		name string
		ok   bool
	}{
		{"128 bits in hex", regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(ref)},
		{"deterministic", a.Ref(secret) == ref},
		{"same as Hash under the key", audit.Hash(testKey, secret) == ref},
		{"keyed", other.Ref(secret) != ref},
		{"differs per value", a.Ref(secret+"x") != ref},
		{"not the secret", !strings.Contains(ref, secret)},
		{"empty stays empty", a.Ref("") == ""},
		{"Nop gives nothing", audit.Nop.Ref(secret) == ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Errorf("ref %q", ref)
			}
		})
	}
}

func TestNewRefusesShortKey(t *testing.T) {
	t.Parallel()
	if _, err := audit.New(audit.Config{Key: []byte("short")}); err == nil {
		t.Fatal("New accepted a 5-byte key")
	}
}

// TestWithoutKeyNoRefs: a recorder without a key (a command that opened the
// store without its secret key) records events but no ref, and no value
// given as one.
func TestWithoutKeyNoRefs(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	a, err := audit.New(audit.Config{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if a.Ref("x") != "" {
		t.Error("Ref without a key is not empty")
	}
	if err := a.Record(context.Background(), audit.Event{Type: audit.UserChanged, Refs: map[string]string{audit.RefToken: "raw"}}); err != nil {
		t.Fatal(err)
	}
	if len(sink.events) != 1 || sink.events[0].Refs != nil {
		t.Errorf("events %+v, want one without refs", sink.events)
	}
}

// TestRequired: an event that cannot be written fails the caller only when
// recording is required; otherwise it is counted and logged.
func TestRequired(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		required bool
		event    audit.Event
		sinkErr  error
		wantErr  bool
		failures uint64
	}{
		{"written", true, audit.Event{Type: audit.LoginSucceeded}, nil, false, 0},
		{"sink fails, required", true, audit.Event{Type: audit.LoginSucceeded}, errors.New("disk full"), true, 1},
		{"sink fails, not required", false, audit.Event{Type: audit.LoginSucceeded}, errors.New("disk full"), false, 1},
		{"unknown type, required", true, audit.Event{Type: "made.up"}, nil, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			a := newAuditor(t, audit.Config{Sink: &memSink{err: tc.sinkErr}, Required: tc.required, Logger: slogTo(&logs)})
			err := a.Record(context.Background(), tc.event)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Record = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, audit.ErrNotRecorded) {
				t.Errorf("Record = %v, want it to wrap ErrNotRecorded", err)
			}
			if got := a.Failures(); got != tc.failures {
				t.Errorf("Failures = %d, want %d", got, tc.failures)
			}
			if tc.failures > 0 && !strings.Contains(logs.String(), "audit event not recorded") {
				t.Errorf("the failure was not logged: %q", logs.String())
			}
		})
	}
}

// TestStreamFormat: one JSON object per line, stable field names, RFC 3339
// time, no id, empty fields omitted.
func TestStreamFormat(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	a := newAuditor(t, audit.Config{Stream: audit.NewStream(&buf), Replica: "r1"})
	err := a.Record(context.Background(), audit.Event{
		ID: 42, Type: audit.RefreshRotated, Subject: "sub-1", Username: "alice", ClientID: "neosync-cli",
		ClientAddr: "192.0.2.1", UserAgent: "curl/8", Refs: map[string]string{audit.RefRefresh: a.Ref("rt")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"time":"2026-11-30T17:00:00.123Z","type":"refresh.rotated","outcome":"success","subject":"sub-1","username":"alice",`+
		`"client_id":"neosync-cli","client_addr":"192.0.2.1","user_agent":"curl/8","replica":"r1","refs":{"refresh_hmac":"%s"}}`+"\n", a.Ref("rt"))
	if buf.String() != want {
		t.Errorf("stream:\n got %s\nwant %s", buf.String(), want)
	}
}

// TestStreamConcurrentLinesStayWhole: concurrent events never interleave
// within a line.
func TestStreamConcurrentLinesStayWhole(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.OpenStream(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuditor(t, audit.Config{Stream: s})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := a.Record(context.Background(), audit.Event{Type: audit.TokenRevoked, Username: strings.Repeat("u", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not one JSON object: %v", lines+1, err)
		}
		lines++
	}
	if lines != n {
		t.Errorf("%d lines, want %d", lines, n)
	}
}

func TestStreamAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := audit.OpenStream(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(audit.Event{Type: audit.Logout}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := s.Write(audit.Event{Type: audit.Logout}); err == nil {
		t.Error("a closed stream accepted an event")
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "earlier\n{") {
		t.Errorf("the file was not appended to: %q", data)
	}
}

func TestOSUser(t *testing.T) {
	t.Parallel()
	if audit.OSUser() == "" {
		t.Error("OSUser is empty")
	}
}

func TestTypesAreValidAndDistinct(t *testing.T) {
	t.Parallel()
	seen := map[audit.Type]bool{}
	for _, ty := range audit.Types() {
		if !ty.Valid() || seen[ty] {
			t.Errorf("type %q invalid or repeated", ty)
		}
		seen[ty] = true
	}
	if audit.Type("login").Valid() {
		t.Error("a prefix is a valid type")
	}
}

// TestRawSecretInRefsIsHashed: a caller that puts a raw token in Refs by
// mistake still records only its HMAC; Ref's output is kept as is and
// Nop's empty refs are dropped.
func TestRawSecretInRefsIsHashed(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	sink := &memSink{}
	a := newAuditor(t, audit.Config{Sink: sink, Stream: audit.NewStream(&buf)})
	raw := "eyJhbGciOiJSUzI1NiJ9.raw-token-by-mistake"
	err := a.Record(context.Background(), audit.Event{Type: audit.TokenRevoked, Refs: map[string]string{
		audit.RefToken: raw, audit.RefRefresh: a.Ref("rt"), audit.RefCode: audit.Nop.Ref("c"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := sink.events[0].Refs
	want := map[string]string{audit.RefToken: a.Ref(raw), audit.RefRefresh: a.Ref("rt")}
	if len(got) != len(want) || got[audit.RefToken] != want[audit.RefToken] || got[audit.RefRefresh] != want[audit.RefRefresh] {
		t.Errorf("refs %v, want %v", got, want)
	}
	if strings.Contains(buf.String(), raw) {
		t.Error("the stream holds the raw token")
	}
}

// failWriter is a stream's destination that refuses every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("stream closed") }

// TestRecordWith: the event reaches the caller's write filled as Record
// fills it (time, replica, refs as HMACs), never the Sink on its own; an
// error of the write is the caller's, returned as it is and not counted
// as an audit failure, required or not, and nothing is streamed; once the
// write succeeded, a stream that fails is Record's failure.
func TestRecordWith(t *testing.T) {
	t.Parallel()
	errWrite := errors.New("the token's record failed")
	tests := []struct {
		name     string
		required bool
		sink     bool
		stream   io.Writer
		writeErr error
		wantRow  bool
		wantErr  error // nil: no error; errWrite; audit.ErrNotRecorded
		failures uint64
		streamed bool
	}{
		{"written with its change", true, true, &bytes.Buffer{}, nil, true, nil, 0, true},
		{"no sink: no row", false, false, &bytes.Buffer{}, nil, false, nil, 0, true},
		{"change failed, required", true, true, &bytes.Buffer{}, errWrite, true, errWrite, 0, false},
		{"change failed, not required", false, true, &bytes.Buffer{}, errWrite, true, errWrite, 0, false},
		{"stream fails, required", true, true, failWriter{}, nil, true, audit.ErrNotRecorded, 1, false},
		{"stream fails, not required", false, true, failWriter{}, nil, true, nil, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := audit.Config{Required: tc.required, Replica: "r1", Stream: audit.NewStream(tc.stream)}
			sink := &memSink{}
			if tc.sink {
				cfg.Sink = sink
			}
			a := newAuditor(t, cfg)
			var row *audit.Event
			calls := 0
			err := a.RecordWith(context.Background(), audit.Event{Type: audit.ClientCredentialsGrant, Subject: "m", Refs: map[string]string{audit.RefToken: "raw-token"}},
				func(_ context.Context, r *audit.Event) error {
					calls++
					if r != nil {
						copied := *r
						row = &copied
					}
					return tc.writeErr
				})
			if calls != 1 {
				t.Fatalf("write called %d times, want once", calls)
			}
			switch {
			case tc.wantErr == nil && err != nil, tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("RecordWith = %v, want %v", err, tc.wantErr)
			}
			if (row != nil) != tc.wantRow {
				t.Fatalf("row given to write: %v, want one: %v", row, tc.wantRow)
			}
			if row != nil {
				if want := fixedNow().UTC().Truncate(time.Millisecond); !row.Time.Equal(want) || row.Replica != "r1" || row.Outcome != audit.Success {
					t.Errorf("row not filled: time %v replica %q outcome %q", row.Time, row.Replica, row.Outcome)
				}
				if got, want := row.Refs[audit.RefToken], audit.Hash(testKey, "raw-token"); got != want {
					t.Errorf("row's ref = %q, want the HMAC %q", got, want)
				}
			}
			if len(sink.events) != 0 {
				t.Errorf("the Sink stored %d events itself; the write stores the row", len(sink.events))
			}
			if got := a.Failures(); got != tc.failures {
				t.Errorf("Failures = %d, want %d", got, tc.failures)
			}
			if b, ok := tc.stream.(*bytes.Buffer); ok && (b.Len() > 0) != tc.streamed {
				t.Errorf("streamed %q, want a line: %v", b.String(), tc.streamed)
			}
		})
	}
}
