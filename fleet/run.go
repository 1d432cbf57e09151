package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/metrics"
)

// Report is what a fleet run measured.
type Report struct {
	Devices  int
	Endpoint string // "" embedded
	Window   time.Duration
	// ReadyIn is the time from starting the devices until every one had
	// converged (or ReadyTimeout); Ready how many had.
	ReadyIn time.Duration
	Ready   int
	// Connect is each device's time from its start to its first connection.
	Connect []time.Duration
	// ApplyEndToEnd is, for each accepted desired change, the time from the
	// driver's publish to the device's hardware write (through the cloud);
	// ApplyAgent the agent's part (its delta's arrival → the write).
	ApplyEndToEnd, ApplyAgent []time.Duration
	// ApplySteady is ApplyEndToEnd without the changes sent while a broker
	// restart was under way (from the broker closing until twice the
	// maximum backoff after it was back); equal to it without a restart.
	ApplySteady []time.Duration
	// Sent, Accepted and Rejected count the driver's desired changes;
	// RejectedCodes by code.
	Sent, Accepted, Rejected int
	RejectedCodes            map[int]int
	// Scheduled is how many changes the schedule called for in the
	// window; fewer are sent when the driver waits for answers (at most
	// 8 updates in flight) or the broker is down.
	Scheduled int
	// NotApplied counts accepted changes never written to the hardware;
	// Superseded those of them followed by a newer accepted change for the
	// same device (the agent converges on the newest value, level-triggered);
	// NotReported devices whose last accepted desired value is not what the
	// cloud last accepted as reported. Lost = NotApplied − Superseded +
	// NotReported.
	NotApplied, Superseded, NotReported int
	// Missing describes the first few lost changes (thing, value, what
	// the hardware and the cloud have), for a look at that device.
	Missing []string
	// Reports counts reported updates the cloud accepted in the window
	// (each device's shadow updates answered 200); ReportsPerSecond is their rate.
	Reports          int
	ReportsPerSecond float64
	SensorErrors     int
	// Process figures at the end of the window (the embedded cloud and the
	// driver included when they run in this process), and the baseline
	// before the devices were started.
	RSS, RSSBase, Heap, HeapBase, RuntimeTotal uint64
	Goroutines                                 uint64
	CPU                                        time.Duration // user+system in the window
	// Restart is set when the broker was restarted.
	Restart *RestartReport
}

// RestartReport is what a broker restart did to the fleet.
type RestartReport struct {
	At         time.Duration // into the window
	Downtime   time.Duration // broker closed → serving again
	BackoffMax time.Duration
	// SinceUp is each device's time from the broker serving again to its
	// reconnection; SinceDown from the broker closing.
	SinceUp, SinceDown []time.Duration
	NotReconnected     int
}

// Lost is the number of accepted desired changes that did not make it to
// the hardware and back.
func (r *Report) Lost() int { return r.NotApplied - r.Superseded + r.NotReported }

// Run simulates the fleet and returns what it measured. It returns an
// error only when the run could not be carried out (options, the cloud,
// the driver); a run that misses a target still returns its report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "pinshadow-fleet-")
	if err != nil {
		return nil, fmt.Errorf("fleet: state directories: %w", err)
	}
	defer os.RemoveAll(root)

	var cl *cloud
	host, port := "", ""
	if o.Endpoint == "" {
		dataDir := ""
		if o.RestartBrokerAt > 0 {
			dataDir = root // shadows outlive the broker, as on AWS
		}
		if cl, err = startCloud(ctx, o.Listen, dataDir, o.Logger.With("part", "cloud")); err != nil {
			return nil, err
		}
		defer cl.stop()
		host, port = cl.hostPort()
		fmt.Fprintf(o.Out, "local cloud on %s:%s (embedded, AWS's default limits)\n", host, port)
	} else if host, port, err = splitEndpoint(o.Endpoint); err != nil {
		return nil, err
	}

	runtime.GC()
	rep := &Report{Devices: o.Devices, Endpoint: o.Endpoint, RejectedCodes: map[int]int{}, RSSBase: metrics.RSS()}
	_, rep.HeapBase, _, _ = metrics.ReadRuntime()

	devs := make([]*device, o.Devices)
	for i := range devs {
		if devs[i], err = newDevice(&o, i, root, host, port); err != nil {
			return nil, err
		}
	}
	drv, err := newDriver(ctx, &o, host, port)
	if err != nil {
		return nil, err
	}
	// Stop order: the devices (their final reports go through), then the
	// driver, then the cloud (deferred above), so no client detaches while
	// the broker closes.
	defer drv.close(context.WithoutCancel(ctx))

	devCtx, stopDevs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopDevs()
		wg.Wait()
	}()
	start := time.Now()
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.run(devCtx); err != nil && !errors.Is(err, context.Canceled) {
				o.Logger.Warn("device stopped", "thing", d.thing, "err", err)
			}
		}()
	}
	fmt.Fprintf(o.Out, "%d devices started\n", o.Devices)

	// Wait for every device to converge (progress once a second).
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := start.Add(o.ReadyTimeout)
	lastSay := start
	for {
		n := 0
		for _, d := range devs {
			select {
			case <-d.ag.Ready():
				n++
			default:
			}
		}
		rep.Ready = n
		if n == len(devs) || time.Now().After(deadline) {
			break
		}
		if time.Since(lastSay) >= time.Second {
			fmt.Fprintf(o.Out, "  %d/%d ready after %v\n", n, len(devs), time.Since(start).Round(100*time.Millisecond))
			lastSay = time.Now()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rep.ReadyIn = time.Since(start)
	for _, d := range devs {
		if t, ok := d.firstOnlineAfter(start); ok {
			rep.Connect = append(rep.Connect, t.Sub(start))
		}
	}
	fmt.Fprintf(o.Out, "%d/%d devices ready in %v; measuring for %v\n", rep.Ready, len(devs), rep.ReadyIn.Round(time.Millisecond), o.Duration)

	// The window: the driver changes desired values; maybe a restart.
	w0 := time.Now()
	cpu0 := metrics.CPUTime()
	rep0 := reports(devs)
	winCtx, endWin := context.WithDeadline(ctx, w0.Add(o.Duration))
	defer endWin()
	var drvWG sync.WaitGroup
	drvWG.Add(1)
	go func() {
		defer drvWG.Done()
		drive(winCtx, &o, drv, devs, w0)
	}()
	var tDown, tUp time.Time
	if o.RestartBrokerAt > 0 {
		t := time.NewTimer(time.Until(w0.Add(o.RestartBrokerAt)))
		select {
		case <-t.C:
			fmt.Fprintf(o.Out, "restarting the broker (down for %v)\n", o.RestartDowntime)
			tDown = time.Now()
			cl.stop()
			dt := time.NewTimer(o.RestartDowntime)
			select {
			case <-dt.C:
			case <-ctx.Done():
				dt.Stop()
				return nil, ctx.Err()
			}
			if err := cl.restart(ctx); err != nil {
				return nil, fmt.Errorf("fleet: restarting the broker: %w", err)
			}
			tUp = time.Now()
		case <-winCtx.Done():
			t.Stop()
		}
	}
	<-winCtx.Done()
	drvWG.Wait()
	rep.Window = time.Since(w0)
	rep.Scheduled = int(o.Duration / (o.DesiredEvery / time.Duration(len(devs))))
	rep.CPU = metrics.CPUTime() - cpu0
	if o.WindowEnd != nil {
		o.WindowEnd()
	}
	rep.RSS = metrics.RSS()
	rep.Goroutines, rep.Heap, rep.RuntimeTotal, _ = metrics.ReadRuntime()
	rep.Reports = int(reports(devs) - rep0)
	rep.ReportsPerSecond = float64(rep.Reports) / rep.Window.Seconds()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Settle: wait until every accepted change is applied and reported.
	fmt.Fprintf(o.Out, "window over; waiting up to %v for the last changes to be applied and reported\n", o.Settle)
	settleBy := time.Now().Add(o.Settle)
	var quietFrom, quietTo time.Time // the restart's disturbance
	if !tDown.IsZero() {
		quietFrom, quietTo = tDown, tUp.Add(2*o.BackoffMax)
	}
	// First every accepted change written to the hardware, then the
	// cloud's reported value of every device (one get each) equal to its
	// last accepted desired value.
	var reported map[int]float64
	for {
		account(rep, drv.snapshot(), devs, reported, quietFrom, quietTo)
		if rep.NotApplied-rep.Superseded == 0 {
			gctx, cancel := context.WithDeadline(ctx, settleBy.Add(30*time.Second))
			reported = drv.getAll(gctx, things(devs))
			cancel()
			account(rep, drv.snapshot(), devs, reported, quietFrom, quietTo)
		}
		if rep.Lost() == 0 || time.Now().After(settleBy) {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for _, d := range devs {
		d.mu.Lock()
		rep.SensorErrors += d.sensorEr
		d.mu.Unlock()
	}
	if !tDown.IsZero() {
		rr := &RestartReport{At: tDown.Sub(w0), Downtime: tUp.Sub(tDown), BackoffMax: o.BackoffMax}
		for _, d := range devs {
			if t, ok := d.reconnectAfter(tDown); ok {
				// Back before restart returned (its listener was up): 0.
				rr.SinceUp = append(rr.SinceUp, max(0, t.Sub(tUp)))
				rr.SinceDown = append(rr.SinceDown, t.Sub(tDown))
			} else {
				rr.NotReconnected++
			}
		}
		rep.Restart = rr
	}
	return rep, nil
}

// drive sends each device a new desired value every DesiredEvery, the
// devices' turns spread evenly over the period, until ctx ends.
func drive(ctx context.Context, o *Options, drv *driver, devs []*device, w0 time.Time) {
	slot := o.DesiredEvery / time.Duration(len(devs))
	t := time.NewTimer(0)
	defer t.Stop()
	lastExpire := w0
	for k := 0; ; k++ {
		at := w0.Add(time.Duration(k) * slot)
		if !at.Before(w0.Add(o.Duration)) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		dev, seq := k%len(devs), k/len(devs)
		// 1…100, never the boot value 0 and never the previous value.
		v := float64(1 + ((seq+1)*37+dev)%100)
		drv.set(ctx, dev, devs[dev].thing, v, seq)
		if time.Since(lastExpire) > time.Second {
			drv.expire(5 * time.Second)
			lastExpire = time.Now()
		}
	}
}

// account compares what the driver sent and the cloud accepted with what
// the devices wrote and reported.
// reported is the cloud's reported level per device (nil: not asked yet,
// every device counts as not reported).
func account(rep *Report, changes []change, devs []*device, reported map[int]float64, quietFrom, quietTo time.Time) {
	rep.Sent, rep.Accepted, rep.Rejected = len(changes), 0, 0
	rep.NotApplied, rep.Superseded, rep.NotReported = 0, 0, 0
	rep.Missing = rep.Missing[:0]
	miss := func(format string, a ...any) {
		if len(rep.Missing) < 10 {
			rep.Missing = append(rep.Missing, fmt.Sprintf(format, a...))
		}
	}
	rep.ApplyEndToEnd, rep.ApplyAgent, rep.ApplySteady = rep.ApplyEndToEnd[:0], rep.ApplyAgent[:0], rep.ApplySteady[:0]
	clear(rep.RejectedCodes)
	last := map[int]int{} // device → index of its last accepted change
	for i, c := range changes {
		switch {
		case c.accepted:
			rep.Accepted++
			last[c.dev] = i
		case c.rejected != 0:
			rep.Rejected++
			rep.RejectedCodes[c.rejected]++
		}
	}
	for i, c := range changes {
		if !c.accepted {
			continue
		}
		w, ok := devs[c.dev].wroteAfter(c.value, c.sent)
		if !ok {
			rep.NotApplied++
			if last[c.dev] != i {
				rep.Superseded++
			} else {
				miss("%s: desired %v sent %s, never written to the hardware", devs[c.dev].thing, c.value, c.sent.Format("15:04:05.000"))
			}
			continue
		}
		rep.ApplyEndToEnd = append(rep.ApplyEndToEnd, w.at.Sub(c.sent))
		rep.ApplyAgent = append(rep.ApplyAgent, w.agent)
		if quietFrom.IsZero() || c.sent.Before(quietFrom) || c.sent.After(quietTo) {
			rep.ApplySteady = append(rep.ApplySteady, w.at.Sub(c.sent))
		}
	}
	for dev, i := range last {
		if v, ok := reported[dev]; !ok || v != changes[i].value {
			rep.NotReported++
			if reported != nil {
				st := devs[dev].ag.Status()
				var hw, res any
				for _, k := range st.Keys {
					if k.Key == DesiredKey {
						hw, res = k.Hardware, k.Status
					}
				}
				miss("%s: desired %v sent %s; the cloud's reported %v (answered %v); hardware %v, result %v, connection %s",
					devs[dev].thing, changes[i].value, changes[i].sent.Format("15:04:05.000"), v, ok, hw, res, st.Connection.State)
			}
		}
	}
}

// reports sums the devices' accepted shadow updates.
func reports(devs []*device) int64 {
	var n int64
	for _, d := range devs {
		n += d.updates.Load()
	}
	return n
}

// things maps device index to thing name.
func things(devs []*device) map[int]string {
	m := make(map[int]string, len(devs))
	for i, d := range devs {
		m[i] = d.thing
	}
	return m
}

// Percentile returns the p-th percentile (0–100) of ds by nearest rank (0
// for none).
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[min(max(k, 0), len(s)-1)]
}
