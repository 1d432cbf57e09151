package fleet

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Bucket bounds for the connect and reconnect histograms.
func timeBuckets() []time.Duration {
	ms := time.Millisecond
	return []time.Duration{10 * ms, 25 * ms, 50 * ms, 100 * ms, 200 * ms, 300 * ms, 400 * ms, 500 * ms, 600 * ms, 700 * ms,
		800 * ms, 900 * ms, time.Second, 1500 * ms, 2 * time.Second, 3 * time.Second, 4 * time.Second, 5 * time.Second,
		7500 * ms, 10 * time.Second, 15 * time.Second, 20 * time.Second, 30 * time.Second}
}

// Histogram writes ds as a text histogram: one row per non-empty bucket
// (≤ bound), with count and a bar.
func Histogram(w io.Writer, ds []time.Duration) {
	bounds := timeBuckets()
	counts := make([]int, len(bounds)+1)
	for _, d := range ds {
		i := sort.Search(len(bounds), func(i int) bool { return bounds[i] >= d })
		counts[i]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	lo := "0"
	for i, c := range counts {
		hi := "∞"
		if i < len(bounds) {
			hi = bounds[i].String()
		}
		if c > 0 {
			bar := strings.Repeat("#", (c*40+most-1)/most)
			fmt.Fprintf(w, "    %7s – %-7s %6d %s\n", lo, hi, c, bar)
		}
		lo = hi
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	where := r.Endpoint
	if where == "" {
		where = "embedded local cloud"
	}
	fmt.Fprintf(w, "\nfleet: %d devices against %s, window %v\n", r.Devices, where, r.Window.Round(time.Millisecond))
	fmt.Fprintf(w, "  ready: %d/%d in %v\n", r.Ready, r.Devices, r.ReadyIn.Round(time.Millisecond))
	fmt.Fprintf(w, "  connect time from start (%d devices): p50 %s, p90 %s, p99 %s, max %s\n", len(r.Connect),
		ms(Percentile(r.Connect, 50)), ms(Percentile(r.Connect, 90)), ms(Percentile(r.Connect, 99)), ms(Percentile(r.Connect, 100)))
	Histogram(w, r.Connect)
	fmt.Fprintf(w, "  desired changes: %d scheduled, %d sent, %d accepted, %d rejected", r.Scheduled, r.Sent, r.Accepted, r.Rejected)
	if len(r.RejectedCodes) > 0 {
		fmt.Fprintf(w, " %v", r.RejectedCodes)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  desired published → hardware write (%d): p50 %s, p90 %s, p99 %s, max %s\n", len(r.ApplyEndToEnd),
		ms(Percentile(r.ApplyEndToEnd, 50)), ms(Percentile(r.ApplyEndToEnd, 90)), ms(Percentile(r.ApplyEndToEnd, 99)), ms(Percentile(r.ApplyEndToEnd, 100)))
	fmt.Fprintf(w, "    of which the agent (desired arrived → write): p50 %s, p90 %s, p99 %s, max %s\n",
		ms(Percentile(r.ApplyAgent, 50)), ms(Percentile(r.ApplyAgent, 90)), ms(Percentile(r.ApplyAgent, 99)), ms(Percentile(r.ApplyAgent, 100)))
	if r.Restart != nil {
		fmt.Fprintf(w, "    outside the restart (%d changes): p50 %s, p90 %s, p99 %s, max %s\n", len(r.ApplySteady),
			ms(Percentile(r.ApplySteady, 50)), ms(Percentile(r.ApplySteady, 90)), ms(Percentile(r.ApplySteady, 99)), ms(Percentile(r.ApplySteady, 100)))
	}
	fmt.Fprintf(w, "  lost updates: %d (accepted but not applied: %d, of them superseded by a newer value: %d; last value not reported: %d)\n",
		r.Lost(), r.NotApplied, r.Superseded, r.NotReported)
	for _, m := range r.Missing {
		fmt.Fprintf(w, "    %s\n", m)
	}
	fmt.Fprintf(w, "  reports accepted by the cloud: %d (%.0f/s; %.2f per device per second); sensor read errors: %d\n",
		r.Reports, r.ReportsPerSecond, r.ReportsPerSecond/float64(r.Devices), r.SensorErrors)
	n := float64(r.Devices)
	fmt.Fprintf(w, "  process: CPU %.2f s in %.1f s (%.0f%% of one core; %.2f ms CPU per device per second)\n",
		r.CPU.Seconds(), r.Window.Seconds(), 100*r.CPU.Seconds()/r.Window.Seconds(), 1000*r.CPU.Seconds()/r.Window.Seconds()/n)
	fmt.Fprintf(w, "  memory: RSS %.0f MiB (%.0f KiB per device over the %.0f MiB baseline), Go heap %.0f MiB (%.0f KiB per device), runtime total %.0f MiB, %d goroutines (%.0f per device)\n",
		mib(r.RSS), kib(sub(r.RSS, r.RSSBase))/n, mib(r.RSSBase), mib(r.Heap), kib(sub(r.Heap, r.HeapBase))/n, mib(r.RuntimeTotal), r.Goroutines, float64(r.Goroutines)/n)
	if rr := r.Restart; rr != nil {
		fmt.Fprintf(w, "  broker restart at %v, down %v: %d/%d reconnected, %d not\n", rr.At.Round(time.Millisecond), rr.Downtime.Round(time.Millisecond),
			len(rr.SinceUp), r.Devices, rr.NotReconnected)
		fmt.Fprintf(w, "  reconnect after the broker was back: p50 %s, p90 %s, p99 %s, max %s (limit 2 × max backoff = %v)\n",
			ms(Percentile(rr.SinceUp, 50)), ms(Percentile(rr.SinceUp, 90)), ms(Percentile(rr.SinceUp, 99)), ms(Percentile(rr.SinceUp, 100)), 2*rr.BackoffMax)
		Histogram(w, rr.SinceUp)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
func kib(b uint64) float64 { return float64(b) / (1 << 10) }
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
