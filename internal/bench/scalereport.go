package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *ScaleReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// scaleRow is one figure of the table: how to read it from a phase, and
// the target it is held to.
type scaleRow struct {
	name, unit string
	value      func(ScalePhase) float64
	// within: the seeded figure must be at least (throughput) or at most
	// (latency) the empty one within this fraction; limit: at most this.
	within      float64
	higherIsOK  bool
	limitMillis float64
	// timedOut reports whether the figure is a time limit reached.
	timedOut func(ScalePhase) bool
}

var scaleRows = []scaleRow{
	{name: "server start (app.New, revocation set loaded)", unit: "ms", value: func(p ScalePhase) float64 { return p.StartMillis }},
	{name: "Go heap in use after start", unit: "MiB", value: func(p ScalePhase) float64 { return float64(p.HeapBytes) / (1 << 20) }},
	{name: "process RSS after start", unit: "MiB", value: func(p ScalePhase) float64 { return float64(p.RSSBytes) / (1 << 20) }},
	{name: "CPU while idle after start", unit: "% of a core", value: func(p ScalePhase) float64 { return p.IdleCPUPercent }},
	{name: "login p50", unit: "ms", value: func(p ScalePhase) float64 { return p.LoginP50Millis }, within: 0.10},
	{name: "CPU per login (server and bench, mean)", unit: "ms", value: func(p ScalePhase) float64 { return p.LoginCPUMillis }},
	{name: "CheckToken (valid, distinct)", unit: "req/s", value: func(p ScalePhase) float64 { return p.CheckTokenDistinctRPS }, within: 0.10, higherIsOK: true},
	{name: "CheckToken (valid, cached)", unit: "req/s", value: func(p ScalePhase) float64 { return p.CheckTokenCachedRPS }, within: 0.10, higherIsOK: true},
	{name: "nsauth audit --since all --user, p50", unit: "ms", value: func(p ScalePhase) float64 { return p.AuditUserP50Millis }, limitMillis: 100},
	{name: "nsauth audit --since 1h, p50", unit: "ms", value: func(p ScalePhase) float64 { return p.AuditSinceP50Millis }, limitMillis: 100},
	{name: "nsauth audit --since all --ref, p50", unit: "ms", value: func(p ScalePhase) float64 { return p.AuditRefP50Millis }, limitMillis: 100},
	{name: "nsauth users list, first page of 500, p50", unit: "ms", value: func(p ScalePhase) float64 { return p.UsersFirstPageP50Millis }, limitMillis: 100},
	{name: "nsauth users list, a page of 500 from \"m\", p50", unit: "ms", value: func(p ScalePhase) float64 { return p.UsersDeepPageP50Millis }, limitMillis: 100},
	{name: "ListUsers with no limit (every user, one answer)", unit: "ms", value: func(p ScalePhase) float64 { return p.UsersListMillis },
		timedOut: func(p ScalePhase) bool { return p.UsersListTimedOut }},
	{name: "data size", unit: "MiB", value: func(p ScalePhase) float64 { return float64(p.DataBytes) / (1 << 20) }},
}

// verdict says whether the seeded figure meets the row's target.
func (row scaleRow) verdict(empty, seeded float64) string {
	switch {
	case row.limitMillis > 0:
		return pass(seeded < row.limitMillis) + fmt.Sprintf(" (< %.0f ms)", row.limitMillis)
	case row.within > 0 && row.higherIsOK:
		return pass(seeded >= empty*(1-row.within)) + fmt.Sprintf(" (≥ %.0f %% of empty)", 100*(1-row.within))
	case row.within > 0:
		return pass(seeded <= empty*(1+row.within)) + fmt.Sprintf(" (≤ %.0f %% of empty)", 100*(1+row.within))
	}
	return ""
}

func pass(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// WriteTable writes the report as a Markdown table, empty store against
// seeded store, with the targets of issue 27, then the seeding's figures.
func (r *ScaleReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Machine: %s; %s; %s.\n", r.Machine, r.GoVersion, r.Backend)
	fmt.Fprintf(w, "Seeded: %d users, %d audit events, %d live revocations (counted after the run: %d users, %d events, %d live revocations).\n",
		r.Users, r.Events, r.Revocations, r.Counted.Users, r.Counted.Events, r.Counted.LiveRevocations)
	fmt.Fprintf(w, "CheckToken: connect, c=%d, %s per cell, median of %d.\n\n", r.CheckTokenConcurrency, r.CheckTokenDuration, r.CheckTokenRuns)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| measure\t unit\t empty\t seeded\t seeded/empty\t target\t")
	fmt.Fprintln(tw, "|---\t---\t---:\t---:\t---:\t---\t")
	for _, row := range scaleRows {
		e, s := row.value(r.Empty), row.value(r.Seeded)
		ratio := "—"
		if e > 0 {
			ratio = fmt.Sprintf("%.2f", s/e)
		}
		seeded := fmt.Sprintf("%.2f", s)
		if row.timedOut != nil && row.timedOut(r.Seeded) {
			seeded = fmt.Sprintf("> %.0f (timed out)", s)
		}
		fmt.Fprintf(tw, "| %s\t %s\t %.2f\t %s\t %s\t %s\t\n", row.name, row.unit, e, seeded, ratio, row.verdict(e, s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nEvents returned by the last query of each kind (seeded): --user %d, --since 1h %d, --ref %d; users listed: %d.\n",
		r.Seeded.AuditUserEvents, r.Seeded.AuditSinceEvents, r.Seeded.AuditRefEvents, r.Seeded.UsersListed)
	fmt.Fprintf(w, "Seeding: %.1f s (users %.1f s, audit events %.1f s, revocations with their tokens %.1f s).\n",
		r.SeedSeconds, r.SeedUsersSeconds, r.SeedEventsSeconds, r.SeedRevocationsSeconds)
	fmt.Fprintf(w, "Data size per million: users %.1f MiB, audit events %.1f MiB, revocations with their token records %.1f MiB.\n",
		r.BytesPerMillionUsers/(1<<20), r.BytesPerMillionEvents/(1<<20), r.BytesPerMillionRevocations/(1<<20))
	return nil
}
