package fleet

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A small fleet against the embedded cloud: every device converges, every
// accepted desired change reaches the hardware and comes back reported,
// and each device reports about once a second.
func TestSmallFleetLosesNothing(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Devices: 20, Duration: 5 * time.Second, DesiredEvery: time.Second, Settle: 10 * time.Second, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	rep.Print(&out)
	t.Log(out.String())
	if rep.Ready != 20 || len(rep.Connect) != 20 {
		t.Errorf("ready %d, connected %d; want 20", rep.Ready, len(rep.Connect))
	}
	if rep.Accepted < 80 || rep.Rejected != 0 {
		t.Errorf("accepted %d rejected %d: want about 100 accepted (20 devices × 5 changes), none rejected", rep.Accepted, rep.Rejected)
	}
	if rep.Lost() != 0 || rep.NotApplied != 0 {
		t.Errorf("lost %d (not applied %d)", rep.Lost(), rep.NotApplied)
	}
	if len(rep.ApplyEndToEnd) != rep.Accepted {
		t.Errorf("%d latencies for %d accepted changes", len(rep.ApplyEndToEnd), rep.Accepted)
	}
	// Each device reports once a second plus once per applied change.
	if perDev := rep.ReportsPerSecond / 20; perDev < 0.7 {
		t.Errorf("%.2f reports per device per second, want about 1", perDev)
	}
}

func TestOptionsRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"no devices":         {Duration: time.Second},
		"no duration":        {Devices: 1},
		"restart remote":     {Devices: 1, Duration: 2 * time.Second, RestartBrokerAt: time.Second, Endpoint: "127.0.0.1:1883"},
		"restart after end":  {Devices: 1, Duration: time.Second, RestartBrokerAt: 2 * time.Second},
		"cert without key":   {Devices: 1, Duration: time.Second, Endpoint: "h:8883", CertFile: "c"},
		"cert on embedded":   {Devices: 1, Duration: time.Second, CertFile: "c", KeyFile: "k"},
		"backoff max < base": {Devices: 1, Duration: time.Second, BackoffBase: time.Second, BackoffMax: time.Millisecond},
	} {
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: %v, want ErrOptions", name, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	for p, want := range map[float64]time.Duration{50: 5, 90: 9, 99: 10, 100: 10, 0: 1} {
		if got := Percentile(ds, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
}

// A broker restart: every device reconnects within twice the maximum
// backoff of the broker coming back, and nothing accepted is lost.
func TestRestartedBrokerEveryoneReconnects(t *testing.T) {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Devices: 10, Duration: 5 * time.Second, DesiredEvery: time.Second,
		RestartBrokerAt: 2 * time.Second, RestartDowntime: 300 * time.Millisecond,
		BackoffBase: 100 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	rep.Print(&out)
	t.Log(out.String())
	rr := rep.Restart
	if rr == nil {
		t.Fatal("no restart in the report")
	}
	if rr.NotReconnected != 0 || len(rr.SinceUp) != 10 {
		t.Fatalf("%d reconnected, %d not", len(rr.SinceUp), rr.NotReconnected)
	}
	if worst := Percentile(rr.SinceUp, 100); worst > 2*rr.BackoffMax {
		t.Errorf("slowest reconnect %v after the broker was back, want ≤ 2 × max backoff = %v", worst, 2*rr.BackoffMax)
	}
	if rep.Lost() != 0 {
		t.Errorf("lost %d", rep.Lost())
	}
	if rep.Accepted < 30 {
		t.Errorf("only %d changes accepted", rep.Accepted)
	}
}

// A reconnect is the first connection after the device lost its link at or
// after the drop, even when it comes before the restart call returned.
func TestReconnectAfter(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name              string
		onlines, offlines []int
		want              int // -1: not reconnected
	}{
		{name: "back after the drop", onlines: []int{0, 500}, offlines: []int{100}, want: 500},
		{name: "back while the restart was finishing", onlines: []int{0, 110}, offlines: []int{100}, want: 110},
		{name: "never back", onlines: []int{0}, offlines: []int{100}, want: -1},
		{name: "never dropped", onlines: []int{0}, want: -1},
		{name: "an earlier drop does not count", onlines: []int{0, 30, 700}, offlines: []int{20, 300}, want: 700},
	} {
		d := &device{}
		for _, ms := range tc.onlines {
			d.onlines = append(d.onlines, at(ms))
		}
		for _, ms := range tc.offlines {
			d.offlines = append(d.offlines, at(ms))
		}
		got, ok := d.reconnectAfter(at(50))
		if tc.want < 0 {
			if ok {
				t.Errorf("%s: reconnected at %v, want not", tc.name, got.Sub(t0))
			}
			continue
		}
		if !ok || !got.Equal(at(tc.want)) {
			t.Errorf("%s: %v %v, want %dms", tc.name, got.Sub(t0), ok, tc.want)
		}
	}
}
