package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"
)

// cell is one scenario run against one target for one timed period.
type cell struct {
	ok, errors int
	elapsed    time.Duration
	p50, p99   time.Duration
	// cpu is the server's CPU time over the period; cpuKnown is false
	// where it could not be read.
	cpu      time.Duration
	cpuKnown bool
	// firstError describes the first failed request.
	firstError string
}

func (c cell) rate() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.ok) / c.elapsed.Seconds()
}

// drive sends c from concurrency clients, each waiting for its answer
// before sending again, until d has passed; a request that ends after d
// is counted, and the period is measured until the last one ends.
func drive(ctx context.Context, client *http.Client, c call, concurrency int, d time.Duration, cpu func() (time.Duration, bool)) cell {
	type worker struct {
		ok, errors int
		latencies  []time.Duration
		firstError string
	}
	workers := make([]worker, concurrency)
	cpu0, ok0 := cpu()
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				_, err := c.do(ctx, client)
				w.latencies = append(w.latencies, time.Since(t0))
				if err != nil {
					w.errors++
					if w.firstError == "" {
						w.firstError = err.Error()
					}
					continue
				}
				w.ok++
			}
		})
	}
	wg.Wait()
	res := cell{elapsed: time.Since(start)}
	cpu1, ok1 := cpu()
	res.cpu, res.cpuKnown = cpu1-cpu0, ok0 && ok1
	var all []time.Duration
	for _, w := range workers {
		res.ok += w.ok
		res.errors += w.errors
		all = append(all, w.latencies...)
		if res.firstError == "" {
			res.firstError = w.firstError
		}
	}
	slices.Sort(all)
	res.p50, res.p99 = percentile(all, 50), percentile(all, 99)
	return res
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// results holds every cell: results[scenario][target index] lists one cell
// per round.
type results map[string][][]cell

// order is the targets' order in round r: as given in even rounds,
// reversed in odd ones, so that no target always follows the same one.
func order(n, r int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
		if r%2 == 1 {
			idx[i] = n - 1 - i
		}
	}
	return idx
}

// rounds runs every round: each scenario against each target, warm-up
// first and the load generator's garbage collected, and reports each
// cell on progress as it ends.
func rounds(ctx context.Context, o *options, targets []*target, progress io.Writer) (results, error) {
	res := results{}
	for _, s := range o.scenarios {
		res[s] = make([][]cell, len(targets))
	}
	for r := range o.rounds {
		for _, s := range o.scenarios {
			for _, i := range order(len(targets), r) {
				t := targets[i]
				if err := t.proc.exited(); err != nil {
					return nil, fmt.Errorf("%s: %w", t.label(), err)
				}
				c := t.call(s)
				if o.warmup > 0 {
					drive(ctx, t.client, c, o.concurrency, o.warmup, t.proc.cpu)
				}
				runtime.GC()
				got := drive(ctx, t.client, c, o.concurrency, o.duration, t.proc.cpu)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				res[s][i] = append(res[s][i], got)
				line := fmt.Sprintf("round %d/%d  %-18s  %-18s  %8.1f req/s  p50 %s  p99 %s  errors %d",
					r+1, o.rounds, s, t.label(), got.rate(), ms(got.p50), ms(got.p99), got.errors)
				if got.firstError != "" {
					line += " (first: " + got.firstError + ")"
				}
				fmt.Fprintln(progress, line)
			}
		}
	}
	return res, nil
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
