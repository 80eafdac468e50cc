package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Refusals of requests that proved no identity are the one kind of event
// that anyone can cause without limit: a wrong client id costs its sender
// a request. Stored one row each, they let whoever can reach the server
// grow the trail at the rate of the endpoints' limits, from every address
// they have. So RecordRefusal aggregates them, at the one place every
// refusal goes through, rather than each handler throttling its own:
//
//   - The refusals of one minute that agree in every field but the time,
//     user agent, trace id and replica (so: type, outcome, reason, client
//     address, client id, account, target and refs) share one row, whose
//     Count says how many they are. The row is keyed by a digest of those
//     fields, and the Sink adds to its count in one statement
//     (CountAuditEvent): replicas sharing a database add to the same row,
//     and none of their counts is lost to a race.
//   - A replica starts at most RefusalRowsPerMinute rows a minute. A
//     refusal that would start another is counted in the minute's
//     RefusalsDropped row of its type and reason, and by
//     [Auditor.RefusalsDropped]: what the bound leaves out of the
//     per-address rows is still counted, and seen.
//
// The table thus grows by at most RefusalRowsPerMinute rows a minute per
// replica (plus a few RefusalsDropped rows), whatever the number of
// addresses; refusals are never dropped uncounted.
//
// The stream gets an aggregated row once its minute is over, with the
// count this replica gave it (FlushRefusals, which the first refusal of the
// next minute and the server's maintenance call): one line per row and
// replica, rather than one per refusal.

// DefaultRefusalRowsPerMinute is the default of
// [Config.RefusalRowsPerMinute]: room for every (address, reason) of an
// attack from a few hundred addresses, and at most 1.44 million rows a day
// per replica when it never stops.
const DefaultRefusalRowsPerMinute = 1000

// refusalWindow is the time one aggregated row covers.
const refusalWindow = time.Minute

// refusals holds this process's aggregated rows of the current minute (and
// of late refusals of the minutes before), with the count it gave each,
// until they are streamed. At most limit rows are admitted a minute, and
// the first refusal of a minute has the rows of the minutes before
// streamed and forgotten, so it holds about a minute's rows: at most
// limit, plus that minute's dropped rows.
type refusals struct {
	limit   int
	dropped atomic.Uint64

	mu       sync.Mutex
	minute   time.Time
	admitted int
	rows     map[string]*Event
}

func newRefusals(limit int) *refusals {
	return &refusals{limit: limit, rows: map[string]*Event{}}
}

// count counts one refusal, given as its aggregated row (Count 1), and
// returns the row it was counted in, with its key: its own, or when the
// minute has no room left for another row, the minute's dropped row of its
// type and reason. newMinute says that this refusal began a minute: the
// rows of the one before are complete.
func (r *refusals) count(row Event) (counted Event, key string, newMinute bool) {
	key = rowKey(row)
	r.mu.Lock()
	defer r.mu.Unlock()
	if row.Time.After(r.minute) {
		newMinute = !r.minute.IsZero()
		r.minute, r.admitted = row.Time, 0
	}
	if p := r.rows[key]; p != nil {
		p.Count++
		return row, key, newMinute
	}
	if r.admitted < r.limit {
		r.admitted++
		r.rows[key] = &row
		return row, key, newMinute
	}
	r.dropped.Add(1)
	dropped := Event{Time: row.Time, Type: RefusalsDropped, Outcome: Failure, Reason: row.Reason, Target: string(row.Type), Count: 1}
	key = rowKey(dropped)
	if p := r.rows[key]; p != nil {
		p.Count++
	} else {
		r.rows[key] = &dropped
	}
	return dropped, key, newMinute
}

// take removes and returns the rows of the minutes that are over at until
// (all of them when until is zero), ordered by minute and key so that the
// same refusals read the same.
func (r *refusals) take(until time.Time) []Event {
	type keyed struct {
		key string
		e   Event
	}
	r.mu.Lock()
	var out []keyed
	for key, e := range r.rows {
		if until.IsZero() || !e.Time.Add(refusalWindow).After(until) {
			out = append(out, keyed{key, *e})
			delete(r.rows, key)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b keyed) int {
		if c := a.e.Time.Compare(b.e.Time); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	rows := make([]Event, len(out))
	for i, k := range out {
		rows[i] = k.e
	}
	return rows
}

// rowKey is the digest of what an aggregated row's refusals agree on: all
// of its fields but the count (its time is already its minute).
func rowKey(e Event) string {
	e.Count = 0
	b, _ := json.Marshal(e) // an Event always encodes; map keys are sorted
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// RecordRefusal implements [Recorder]: the refusal is added to its
// aggregated row in the Sink at once; the Stream gets the row when its
// minute is over (FlushRefusals).
func (a *Auditor) RecordRefusal(ctx context.Context, e Event) error {
	e = a.fill(ctx, e)
	e.Time = e.Time.Truncate(refusalWindow)
	e.UserAgent, e.TraceID, e.Replica = "", "", ""
	e.Count = 1
	if !e.Type.Valid() {
		return a.write(ctx, e, nil, false)
	}
	row, key, newMinute := a.refusals.count(e)
	err := a.write(ctx, row, func(wctx context.Context) error { return a.cfg.Sink.CountAuditEvent(wctx, key, row) }, false)
	if newMinute {
		// Once a minute, the refusal that begins it streams the last
		// one's rows, so that they are never held longer than that even
		// without Run.
		a.FlushRefusals(ctx, false)
	}
	return err
}

// RefusalsDropped counts the refusals that found no room among their
// minute's aggregated rows since New, and went to a RefusalsDropped row:
// for metrics.
func (a *Auditor) RefusalsDropped() uint64 { return a.refusals.dropped.Load() }

// FlushRefusals writes to the Stream the aggregated rows of the minutes
// that are over, each with the count this Auditor gave it (Replica set to
// this one's), and forgets them; with all, it writes every row held, for
// shutdown. Without a Stream it only forgets them. A failure is logged and
// counted: the refusals were answered long ago.
func (a *Auditor) FlushRefusals(ctx context.Context, all bool) {
	until := time.Time{}
	if !all {
		until = a.cfg.Now()
	}
	rows := a.refusals.take(until)
	if a.cfg.Stream == nil {
		return
	}
	for _, e := range rows {
		e.Replica = a.cfg.Replica
		if err := a.cfg.Stream.Write(e); err != nil {
			_ = a.failed(ctx, e.Type, []error{err})
		}
	}
}
