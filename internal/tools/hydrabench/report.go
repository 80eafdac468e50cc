package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// machine describes where the comparison ran, and how busy the machine
// was at its start and end.
type machine struct {
	platform, cpuModel string
	hydraVersion       string
	loadStart, loadEnd string
}

func describeMachine() *machine {
	m := &machine{platform: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	return m
}

// loadAverage is the one-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func (m *machine) start() { m.loadStart = loadAverage() }
func (m *machine) end()   { m.loadEnd = loadAverage() }

// median returns the median of xs (the mean of the two middle values
// when their number is even); xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// writeReport prints one Markdown table row per scenario and target: the
// medians over rounds of req/s, p50, p99 and the server's CPU per call,
// the errors of every round, and for each Hydra the median over rounds of
// nsauth's req/s over Hydra's in the same round (its lowest and highest in
// parentheses). The first target is nsauth.
func writeReport(w io.Writer, o *options, m *machine, targets []*target, res results) error {
	var b strings.Builder
	fmt.Fprintf(&b, "nsauth's built-in provider against Ory Hydra %s (SQLite, JWT access tokens): %d round(s), %s per cell after %s of warm-up, concurrency %d, keep-alive HTTP/1.1 on loopback.\n",
		m.hydraVersion, o.rounds, o.duration, o.warmup, o.concurrency)
	fmt.Fprintf(&b, "Machine: %s", m.platform)
	if m.cpuModel != "" {
		fmt.Fprintf(&b, ", %s", m.cpuModel)
	}
	fmt.Fprintf(&b, "; harness %s; load average %s at the start of the first round, %s at the end.\n\n", runtime.Version(), m.loadStart, m.loadEnd)
	for _, t := range targets {
		fmt.Fprintf(&b, "- %s: %s\n", t.label(), t.settings)
	}
	b.WriteString("\n| scenario | target | req/s | p50 ms | p99 ms | server CPU µs/call | errors | nsauth × |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range o.scenarios {
		base := res[s][0]
		for i, t := range targets {
			cells := res[s][i]
			var rates, p50s, p99s, cpus, ratios []float64
			errs := 0
			cpuKnown := true
			for r, c := range cells {
				rates = append(rates, c.rate())
				p50s = append(p50s, msf(c.p50))
				p99s = append(p99s, msf(c.p99))
				if n := c.ok + c.errors; n > 0 && c.cpuKnown {
					cpus = append(cpus, float64(c.cpu.Microseconds())/float64(n))
				} else {
					cpuKnown = false
				}
				errs += c.errors
				if i > 0 && c.rate() > 0 {
					ratios = append(ratios, base[r].rate()/c.rate())
				}
			}
			cpu := "—"
			if cpuKnown && len(cpus) > 0 {
				cpu = fmt.Sprintf("%.0f", median(cpus))
			}
			ratio := "—"
			if len(ratios) > 0 {
				ratio = fmt.Sprintf("%.1f", median(ratios))
				if len(ratios) > 1 {
					ratio += fmt.Sprintf(" (%.1f–%.1f)", slices.Min(ratios), slices.Max(ratios))
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %.1f | %.1f | %s | %d | %s |\n",
				s, t.label(), median(rates), median(p50s), median(p99s), cpu, errs, ratio)
		}
	}
	b.WriteString("\nreq/s, p50, p99 and CPU: medians over rounds. nsauth ×: nsauth's req/s over this target's in the same round, median over rounds (lowest–highest).\n" +
		"Server CPU: the server process's user and system time over the timed period, per request; the load generator's is not in it.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
