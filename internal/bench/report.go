package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as a Markdown table followed by the ratios
// the performance targets are stated in.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Machine: %s; %s; medians of %d runs, %s per cell; the provider signs with %s.\n\n",
		r.Machine, r.GoVersion, r.Runs, r.DurationPerCell, r.SigningAlgorithm)
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| scenario\t protocol\t concurrency\t req/s\t ceiling req/s\t nsauth/ceiling\t p50 ms\t p99 ms\t CPU µs/call\t ceiling CPU µs/call\t errors\t")
	fmt.Fprintln(tw, "|---\t---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "| %s\t %s\t %d\t %.0f\t %s\t %s\t %.3f\t %.3f\t %.0f\t %s\t %d\t\n",
			res.Scenario, res.Protocol, res.Concurrency, res.RPS, optional(res.CeilingRPS, "%.0f"), optional(res.CeilingRatio, "%.2f"),
			res.P50Millis, res.P99Millis, res.CPUMicros, optional(res.CeilingCPUMicros, "%.0f"), res.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nPeak RSS (server, provider, ceiling and load generator): %.1f MiB\n", float64(r.PeakRSSBytes)/(1<<20))
	fmt.Fprintf(w, "Provider requests per GetAuthorizeUrl call: %.4f\n", r.ProviderRequestsPerGetAuthorizeURL)
	for _, ratio := range r.Ratios() {
		fmt.Fprintf(w, "%s\n", ratio)
	}
	return nil
}

// Ratios states the report against the performance targets.
func (r *Report) Ratios() []string {
	find := func(scenario, proto string, c int) *Result {
		for i := range r.Results {
			res := &r.Results[i]
			if res.Scenario == scenario && res.Protocol == proto && res.Concurrency == c {
				return res
			}
		}
		return nil
	}
	var out []string
	for _, proto := range []string{"connect", "grpc"} {
		for _, c := range []int{16, 64} {
			for _, s := range []string{GetAuthStatus, CheckTokenCached, GetAuthorizeURL} {
				if res := find(s, proto, c); res != nil && res.CeilingRatio != nil {
					out = append(out, fmt.Sprintf("%s / ceiling throughput, %s c=%d: %.2f (target ≥ 0.90)", s, proto, c, *res.CeilingRatio))
				}
			}
		}
	}
	for _, res := range r.Results {
		if res.Scenario == ProviderClientCredentials && res.CeilingRatio != nil {
			out = append(out, fmt.Sprintf("%s / raw %s signatures, c=%d: %.2f (target ≥ 0.80)", res.Scenario, r.SigningAlgorithm, res.Concurrency, *res.CeilingRatio))
		}
	}
	for _, proto := range []string{"connect", "grpc"} {
		for _, pair := range [][2]string{{LoginCli, ProviderCodeDirect}, {RefreshCli, ProviderTokenDirect}} {
			s, res, direct := pair[0], find(pair[0], proto, 1), find(pair[1], "http", 1)
			if res != nil && direct != nil {
				out = append(out, fmt.Sprintf("%s p50 over the direct provider call, %s c=1: %+.3f ms (target ≤ 1 ms)", s, proto, res.P50Millis-direct.P50Millis))
			}
		}
	}
	out = append(out, fmt.Sprintf("Peak RSS, server, ceiling and load generator together: %.1f MiB (target for the server ≤ 64 MiB)", float64(r.PeakRSSBytes)/(1<<20)))
	return out
}

// optional formats an optional figure, or a dash when there is none.
func optional(v *float64, format string) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf(format, *v)
}
