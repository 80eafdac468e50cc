//go:build soak

package faults_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// resourceInterval is how often the soak reads replica B's /metrics.
const resourceInterval = time.Second

// resourceMetrics are the series the soak reads from /metrics.
var resourceMetrics = []string{
	"process_resident_memory_bytes",
	"go_memstats_heap_inuse_bytes",
	"go_goroutines",
	"process_start_time_seconds",
}

// resourceLog is replica B's memory and goroutines over time.
type resourceLog struct {
	mu      sync.Mutex
	samples []resourceSample
}

type resourceSample struct {
	at time.Duration
	m  map[string]float64
}

func (r *resourceLog) add(at time.Duration, m map[string]float64) {
	r.mu.Lock()
	r.samples = append(r.samples, resourceSample{at, m})
	r.mu.Unlock()
}

// window is one stretch of samples, summarised.
type window struct {
	from, to time.Duration
	n        int
	rssMed   float64 // KiB
	rssP10   float64
	rssMin   float64
	heapMed  float64
	heapP10  float64
	gorMed   float64
}

// windows returns the summaries of the samples at the start of the last
// half (its first eighth) and at its end (its last eighth).
func (r *resourceLog) windows() (from, to window, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < 8 {
		return from, to, false
	}
	end := r.samples[len(r.samples)-1].at
	halfAt, eighth := end/2, end/8
	from = summarizeWindow(r.samples, halfAt, halfAt+eighth)
	to = summarizeWindow(r.samples, end-eighth, end+1)
	return from, to, from.n > 0 && to.n > 0
}

func summarizeWindow(samples []resourceSample, from, to time.Duration) window {
	var rss, heap, gor []float64
	for _, s := range samples {
		if s.at >= from && s.at < to {
			rss = append(rss, s.m["process_resident_memory_bytes"]/1024)
			heap = append(heap, s.m["go_memstats_heap_inuse_bytes"]/1024)
			gor = append(gor, s.m["go_goroutines"])
		}
	}
	return window{from: from, to: to, n: len(rss),
		rssMed: quantile(rss, 50), rssP10: quantile(rss, 10), rssMin: quantile(rss, 0),
		heapMed: quantile(heap, 50), heapP10: quantile(heap, 10), gorMed: quantile(gor, 50)}
}

// quantile is the p-th percentile of xs (nearest rank), or 0.
func quantile(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)*p/100, len(s)-1)]
}

func change(a, b float64) float64 { return (b - a) / a }

// flat returns why B's resources were not flat over the last half, or "".
func (r *resourceLog) flat(bound float64) string {
	from, to, ok := r.windows()
	if !ok {
		return "too few samples of replica B's memory and goroutines"
	}
	var msgs []string
	if d := change(from.rssMed, to.rssMed); d > bound || d < -bound {
		msgs = append(msgs, fmt.Sprintf("replica B's RSS moved %+.1f%% over the last half (%.0f KiB → %.0f KiB, medians)", 100*d, from.rssMed, to.rssMed))
	}
	if d := change(from.gorMed, to.gorMed); d > bound || d < -bound {
		msgs = append(msgs, fmt.Sprintf("replica B's goroutines moved %+.1f%% over the last half (%.0f → %.0f, medians)", 100*d, from.gorMed, to.gorMed))
	}
	return strings.Join(msgs, "; ")
}

// summarize writes the windows' figures and a timeline; with
// NSAUTH_SOAK_RESOURCES set, every sample goes to that file as CSV too.
func (r *resourceLog) summarize(b *strings.Builder) {
	from, to, ok := r.windows()
	if !ok {
		return
	}
	fmt.Fprintf(b, "replica B over the last half (%d and %d samples): RSS median %.0f → %.0f KiB (%+.1f%%), p10 %.0f → %.0f (%+.1f%%), min %.0f → %.0f (%+.1f%%); heap in use median %.0f → %.0f KiB (%+.1f%%), p10 %.0f → %.0f (%+.1f%%); goroutines %.0f → %.0f (%+.1f%%)\n",
		from.n, to.n,
		from.rssMed, to.rssMed, 100*change(from.rssMed, to.rssMed),
		from.rssP10, to.rssP10, 100*change(from.rssP10, to.rssP10),
		from.rssMin, to.rssMin, 100*change(from.rssMin, to.rssMin),
		from.heapMed, to.heapMed, 100*change(from.heapMed, to.heapMed),
		from.heapP10, to.heapP10, 100*change(from.heapP10, to.heapP10),
		from.gorMed, to.gorMed, 100*change(from.gorMed, to.gorMed))
	r.mu.Lock()
	defer r.mu.Unlock()
	b.WriteString("  timeline (RSS KiB / heap in use KiB / goroutines):")
	step := max(len(r.samples)/24, 1)
	for i := 0; i < len(r.samples); i += step {
		s := r.samples[i]
		fmt.Fprintf(b, " %v %.0f/%.0f/%.0f", s.at.Round(time.Second), s.m["process_resident_memory_bytes"]/1024, s.m["go_memstats_heap_inuse_bytes"]/1024, s.m["go_goroutines"])
	}
	b.WriteString("\n")
	if path := os.Getenv("NSAUTH_SOAK_RESOURCES"); path != "" {
		var csv strings.Builder
		csv.WriteString("seconds," + strings.Join(resourceMetrics, ",") + "\n")
		for _, s := range r.samples {
			fmt.Fprintf(&csv, "%.1f", s.at.Seconds())
			for _, name := range resourceMetrics {
				fmt.Fprintf(&csv, ",%.0f", s.m[name])
			}
			csv.WriteString("\n")
		}
		if err := os.WriteFile(path, []byte(csv.String()), 0o600); err != nil {
			fmt.Fprintf(b, "  writing %s: %v\n", path, err)
		}
	}
}

// processMetrics reads resourceMetrics from a replica's /metrics.
func processMetrics(r *replica) (map[string]float64, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(r.url + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	m := map[string]float64{}
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(resourceMetrics, name) {
			m[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, name := range resourceMetrics {
		if m[name] == 0 {
			return nil, fmt.Errorf("no %s in %s/metrics", name, r.url)
		}
	}
	return m, nil
}
