package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nsauth/nsauth/internal/audit"
	"github.com/nsauth/nsauth/internal/store/storetest"
)

var minute0 = time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)

func refusal(addr, reason string) audit.Event {
	return audit.Event{Type: audit.LoginFailed, Outcome: audit.Failure, ClientAddr: addr, Reason: reason, ClientID: "neosync-cli"}
}

// TestRecordRefusalAggregates: refusals of one minute that differ only in
// what varies per request share one row with their count; anything else
// they differ in, the minute included, makes rows of their own.
func TestRecordRefusalAggregates(t *testing.T) {
	t.Parallel()
	type step struct {
		advance time.Duration
		e       audit.Event
	}
	withAgent := refusal("192.0.2.1", "unknown_user")
	withAgent.UserAgent, withAgent.TraceID = "curl/8", "4bf92f3577b34da6a3ce929d0e0e4736"
	other := refusal("192.0.2.1", "unknown_user")
	other.Subject, other.Username = "sub-alice", "alice"
	tests := []struct {
		name  string
		steps []step
		want  []int64 // the rows' counts, in the order they were started
	}{
		{"same address and reason", []step{{0, refusal("192.0.2.1", "unknown_user")}, {time.Second, refusal("192.0.2.1", "unknown_user")}}, []int64{2}},
		{"user agent and trace id vary", []step{{0, refusal("192.0.2.1", "unknown_user")}, {0, withAgent}, {0, withAgent}}, []int64{3}},
		{"another address", []step{{0, refusal("192.0.2.1", "unknown_user")}, {0, refusal("192.0.2.2", "unknown_user")}}, []int64{1, 1}},
		{"another reason", []step{{0, refusal("192.0.2.1", "unknown_user")}, {0, refusal("192.0.2.1", "locked")}, {0, refusal("192.0.2.1", "locked")}}, []int64{1, 2}},
		{"another account", []step{{0, refusal("192.0.2.1", "unknown_user")}, {0, other}}, []int64{1, 1}},
		{"the next minute", []step{{59 * time.Second, refusal("192.0.2.1", "unknown_user")}, {time.Second, refusal("192.0.2.1", "unknown_user")}}, []int64{1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(minute0)
			sink := &memSink{}
			a := newAuditor(t, audit.Config{Sink: sink, Now: clock.Now, Replica: "r1"})
			for _, s := range tc.steps {
				clock.Advance(s.advance)
				if err := a.RecordRefusal(context.Background(), s.e); err != nil {
					t.Fatal(err)
				}
			}
			var counts []int64
			for _, e := range sink.events {
				counts = append(counts, e.Count)
				if e.UserAgent != "" || e.TraceID != "" || e.Replica != "" || !e.Time.Equal(e.Time.Truncate(time.Minute)) || e.Outcome != audit.Failure {
					t.Errorf("row %+v keeps a per-request field or a time within its minute", e)
				}
			}
			if fmt.Sprint(counts) != fmt.Sprint(tc.want) {
				t.Errorf("row counts %v, want %v", counts, tc.want)
			}
		})
	}
}

// TestRecordRefusalBound: past RefusalRowsPerMinute rows a minute, a
// refusal that would start another is counted in the minute's dropped row
// of its type and reason, and by the metric; rows already started still
// count, and the next minute has room again.
func TestRecordRefusalBound(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(minute0)
	sink := &memSink{}
	a := newAuditor(t, audit.Config{Sink: sink, Now: clock.Now, RefusalRowsPerMinute: 3})
	ctx := context.Background()
	for i := range 5 {
		if err := a.RecordRefusal(ctx, refusal(fmt.Sprintf("192.0.2.%d", i), "unknown_user")); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []audit.Event{refusal("192.0.2.0", "unknown_user"), refusal("192.0.2.9", "locked"),
		{Type: audit.PasskeyFailed, Outcome: audit.Failure, ClientAddr: "192.0.2.9", Reason: "bad_assertion"}} {
		if err := a.RecordRefusal(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Minute)
	if err := a.RecordRefusal(ctx, refusal("192.0.2.7", "unknown_user")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range sink.events {
		got = append(got, fmt.Sprintf("%s %s %s %s %d %s", e.Time.Format("15:04"), e.Type, e.ClientAddr, e.Reason, e.Count, e.Target))
	}
	want := []string{
		"18:00 login.failed 192.0.2.0 unknown_user 2 ",
		"18:00 login.failed 192.0.2.1 unknown_user 1 ",
		"18:00 login.failed 192.0.2.2 unknown_user 1 ",
		"18:00 audit.refusals_dropped  unknown_user 2 login.failed",
		"18:00 audit.refusals_dropped  locked 1 login.failed",
		"18:00 audit.refusals_dropped  bad_assertion 1 passkey.failed",
		"18:01 login.failed 192.0.2.7 unknown_user 1 ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if a.RefusalsDropped() != 4 {
		t.Errorf("RefusalsDropped = %d, want 4", a.RefusalsDropped())
	}
}

// TestRefusalStream: the stream gets an aggregated row once its minute is
// over, once, with this replica's count: from FlushRefusals, or from the
// first refusal of the next minute; FlushRefusals with all writes the rest.
func TestRefusalStream(t *testing.T) {
	t.Parallel()
	clock := storetest.NewClock(minute0.Add(30 * time.Second))
	var buf bytes.Buffer
	a := newAuditor(t, audit.Config{Stream: audit.NewStream(&buf), Now: clock.Now, Replica: "r1"})
	ctx := context.Background()
	lines := func() []audit.Event {
		var out []audit.Event
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			var e audit.Event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			out = append(out, e)
		}
		return out
	}
	for range 3 {
		if err := a.RecordRefusal(ctx, refusal("192.0.2.1", "unknown_user")); err != nil {
			t.Fatal(err)
		}
	}
	a.FlushRefusals(ctx, false)
	if n := len(lines()); n != 0 {
		t.Fatalf("%d lines before the minute is over", n)
	}
	clock.Advance(30 * time.Second)
	a.FlushRefusals(ctx, false)
	a.FlushRefusals(ctx, false)
	got := lines()
	if len(got) != 1 || got[0].Count != 3 || got[0].Replica != "r1" || !got[0].Time.Equal(minute0) {
		t.Fatalf("after the minute: %+v, want one line with count 3 of replica r1", got)
	}
	if err := a.RecordRefusal(ctx, refusal("192.0.2.1", "unknown_user")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := a.RecordRefusal(ctx, refusal("192.0.2.2", "unknown_user")); err != nil {
		t.Fatal(err)
	}
	if got := lines(); len(got) != 2 || got[1].Count != 1 || got[1].ClientAddr != "192.0.2.1" {
		t.Fatalf("the next minute's first refusal did not stream the last one's row: %+v", got)
	}
	a.FlushRefusals(ctx, true)
	if got := lines(); len(got) != 3 || got[2].ClientAddr != "192.0.2.2" {
		t.Fatalf("flushing all: %+v", got)
	}
}

// TestRecordRefusalRequired: a refusal whose row cannot be written fails
// its request when recording is required, like any event.
func TestRecordRefusalRequired(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{true, false} {
		a := newAuditor(t, audit.Config{Sink: &memSink{err: errors.New("disk full")}, Required: required})
		err := a.RecordRefusal(context.Background(), refusal("192.0.2.1", "unknown_user"))
		if required != errors.Is(err, audit.ErrNotRecorded) || (!required && err != nil) {
			t.Errorf("required=%v: RecordRefusal = %v", required, err)
		}
		if a.Failures() != 1 {
			t.Errorf("required=%v: Failures = %d, want 1", required, a.Failures())
		}
	}
	if err := audit.Nop.RecordRefusal(context.Background(), refusal("192.0.2.1", "x")); err != nil {
		t.Errorf("Nop: %v", err)
	}
}
