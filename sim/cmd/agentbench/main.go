// Command agentbench measures the agent for BENCHMARKS.md (section
// "Agent"). It is not part of the test run:
//
//	go run ./sim/cmd/agentbench              # everything, defaults below
//	go run ./sim/cmd/agentbench -h           # knobs
//
// Everything runs against one embedded local cloud (in memory, AWS's
// default limits) on 127.0.0.1, in one run:
//
//  1. raw MQTT: one paho client publishes QoS 1 to a topic another paho
//     client subscribes to; one-way publish→deliver latency. This is the
//     floor for anything that crosses the broker once.
//  2. the agent in-process on the simulated greenhouse (configs/sim.yaml,
//     the fake HAL with physics): a paho client publishes desired fan
//     speeds to the shadow's update topic, one at a time; measured from
//     just before the publish to (a) the fake HAL's PWM write and (b) the
//     update/documents message in which reported equals desired (the
//     reported update accepted, the delta cleared).
//  3. the agent as its own process (`agent sim --cloud ADDR --scenario none
//     --quiet`: the agent on the fake HAL, no cloud, no cloud-side actor),
//     started from a built binary: exec → first reported sensor value in
//     the shadow, then RSS (VmRSS, VmHWM) and CPU (utime+stime from
//     /proc/PID/stat) over a window, idle (three outputs, no sensors) and
//     with 20 sensor keys read at 1 Hz.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/configs"
	"github.com/pinshadow/pinshadow/sim"
)

type options struct {
	raw      int
	rawGap   time.Duration
	loops    int
	gap      time.Duration
	window   time.Duration
	warmup   time.Duration
	agentBin string
	skipProc bool
	detail   strings.Builder // breakdown lines, printed after the headline
}

func main() {
	var o options
	flag.IntVar(&o.raw, "raw", 300, "raw MQTT samples")
	flag.DurationVar(&o.rawGap, "raw-gap", -1, "pause between raw MQTT samples (default: the same as -gap, so both are measured from the same idle state)")
	flag.IntVar(&o.loops, "loops", 300, "desired changes sent to the in-process agent")
	flag.DurationVar(&o.gap, "gap", 150*time.Millisecond, "pause between desired changes (each costs 2 shadow requests; AWS allows 20/s per thing)")
	flag.DurationVar(&o.window, "window", 30*time.Second, "CPU/RSS measurement window per process phase")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "wait after the first report before measuring CPU/RSS")
	flag.StringVar(&o.agentBin, "agent", "", "agent binary for the process phases (default: go build ./cmd/agent into a temporary directory; run from the repository root)")
	flag.BoolVar(&o.skipProc, "skip-process", false, "skip the process phases (start-up, RSS, CPU)")
	flag.Parse()
	if o.rawGap < 0 {
		o.rawGap = o.gap
	}
	if err := run(context.Background(), &o); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *options) error {
	fmt.Printf("machine: %d CPUs (nproc), %s, %s/%s, %s\n", runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	cloud, err := sim.StartCloud(ctx, "127.0.0.1:0", "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer cloud.Close()
	addr := cloud.Addr()

	raw, err := rawLatency(addr, o.raw, o.rawGap)
	if err != nil {
		return fmt.Errorf("raw MQTT: %w", err)
	}
	fmt.Printf("raw MQTT one-way publish→deliver, QoS 1, %d samples %v apart: %s\n", len(raw), o.rawGap, stats(raw))

	write, delta, toWrite, cleared, err := agentLoop(ctx, addr, o)
	if err != nil {
		return fmt.Errorf("agent in-process: %w", err)
	}
	fmt.Printf("desired published → fake HAL write, %d samples: %s\n", len(write), stats(write))
	fmt.Printf("  ratio to raw: p50 %.2f×, p99 %.2f×\n", ratio(write, raw, 50), ratio(write, raw, 99))
	if len(delta) > 0 {
		fmt.Printf("  published → the agent has the delta (broker, shadow service, broker, iot, shadowsync), %d samples: %s\n", len(delta), stats(delta))
		fmt.Printf("  the agent's delta → HAL write (loop wake-up, Plan, driver, HAL), same samples: %s\n", stats(toWrite))
	}
	if n := len(write) - len(delta); n > 0 {
		fmt.Printf("  (%d writes came before the agent's delta event: the loop planned from the mirror, already updated by update/accepted)\n", n)
	}
	fmt.Printf("desired published → reported accepted, delta cleared, %d samples: %s\n", len(cleared), stats(cleared))
	fmt.Print(o.detail.String())
	if o.skipProc {
		return nil
	}

	bin := o.agentBin
	if bin == "" {
		dir, err := os.MkdirTemp("", "agentbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "agent")
		build := exec.Command("go", "build", "-o", bin, "./cmd/agent")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the agent (run from the repository root, or pass -agent): %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "agentbench-cfg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, p := range []struct {
		name, yaml, sensor string
	}{
		{"idle: 3 outputs, no sensors", idleConfig, ""},
		{"20 sensor keys at 1 Hz", sensorsConfig(), "a0_0"},
	} {
		path := filepath.Join(dir, strings.Fields(p.name)[0]+".yaml")
		if err := os.WriteFile(path, []byte(p.yaml), 0o644); err != nil {
			return err
		}
		if err := processPhase(ctx, addr, bin, path, p.name, p.sensor, o); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// rawLatency measures one-way QoS 1 publish→deliver between two clients.
// rawLatency times n one-way QoS 1 publishes, gap apart. The gap matters:
// a message into an idle process waits for goroutines to be woken, one
// into a busy one does not, so raw and agent samples use the same pacing.
func rawLatency(addr string, n int, gap time.Duration) ([]time.Duration, error) {
	got := make(chan time.Duration, n)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-sub").SetOrderMatters(true))
	if t := sub.Connect(); t.Wait() && t.Error() != nil {
		return nil, t.Error()
	}
	defer sub.Disconnect(100)
	if t := sub.Subscribe("bench/raw", 1, func(_ paho.Client, m paho.Message) {
		ns, err := strconv.ParseInt(string(m.Payload()), 10, 64)
		if err == nil {
			got <- time.Since(time.Unix(0, ns))
		}
	}); t.Wait() && t.Error() != nil {
		return nil, t.Error()
	}
	pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-pub").SetOrderMatters(true))
	if t := pub.Connect(); t.Wait() && t.Error() != nil {
		return nil, t.Error()
	}
	defer pub.Disconnect(100)
	var out []time.Duration
	for i := 0; i < n; i++ {
		t := pub.Publish("bench/raw", 1, false, strconv.FormatInt(time.Now().UnixNano(), 10))
		t.Wait()
		if t.Error() != nil {
			return nil, t.Error()
		}
		select {
		case d := <-got:
			out = append(out, d)
		case <-time.After(5 * time.Second):
			return nil, errors.New("a message was not delivered within 5 s")
		}
		time.Sleep(gap) // pacing, not synchronisation
	}
	return out, nil
}

// agentLoop runs the agent in-process on the simulated greenhouse and
// times desired fan changes.
func agentLoop(ctx context.Context, addr string, o *options) (write, delta, toWrite, cleared []time.Duration, err error) {
	cfg, err := config.Parse(configs.SimName, config.Options{ReadFile: func(string) ([]byte, error) { return configs.Sim(), nil }})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	dir, err := os.MkdirTemp("", "agentbench-state-")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer os.RemoveAll(dir)
	cfg.StateDir = dir

	writes := make(chan sim.Change, 16)
	world, err := sim.NewWorld(cfg, sim.WorldOptions{OnChange: func(c sim.Change) {
		if c.PWM && c.Device == "fan" {
			select {
			case writes <- c:
			default:
			}
		}
	}})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer world.Close()
	deltas := make(chan time.Time, 16)
	reports := make(chan time.Time, 16)
	ag, err := agent.New(cfg, agent.Deps{HAL: world.HAL(), Endpoint: "tcp://" + addr, Events: func(e agent.Event) {
		ch := deltas
		switch {
		case e.Kind == agent.EventDelta:
		case e.Kind == agent.EventReported && strings.Contains(fmt.Sprint(e.Value), "fan:"):
			ch = reports
		default:
			return
		}
		select {
		case ch <- time.Now():
		default:
		}
	}})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ag.Run(runCtx) }()
	go func() { defer wg.Done(); _ = world.Run(runCtx) }()
	defer func() { cancel(); wg.Wait() }()
	select {
	case <-ag.Ready():
	case <-time.After(10 * time.Second):
		return nil, nil, nil, nil, errors.New("the agent was not ready within 10 s")
	}

	prefix := "$aws/things/" + cfg.Thing + "/shadow"
	type doc struct {
		Current struct {
			State struct {
				Reported map[string]any `json:"reported"`
			} `json:"state"`
		} `json:"current"`
	}
	reported := make(chan float64, 64)
	rawDeltas := make(chan time.Time, 16)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-cloud").SetOrderMatters(true))
	if t := cl.Connect(); t.Wait() && t.Error() != nil {
		return nil, nil, nil, nil, t.Error()
	}
	defer cl.Disconnect(100)
	if t := cl.Subscribe(prefix+"/update/documents", 1, func(_ paho.Client, m paho.Message) {
		var d doc
		if json.Unmarshal(m.Payload(), &d) == nil {
			if f, ok := d.Current.State.Reported["fan"].(float64); ok {
				reported <- f
			}
		}
	}); t.Wait() && t.Error() != nil {
		return nil, nil, nil, nil, t.Error()
	}
	// A plain subscriber to the delta topic shows when the cloud's part
	// of the path is done.
	if t := cl.Subscribe(prefix+"/update/delta", 1, func(paho.Client, paho.Message) {
		select {
		case rawDeltas <- time.Now():
		default:
		}
	}); t.Wait() && t.Error() != nil {
		return nil, nil, nil, nil, t.Error()
	}
	// Drain what start-up produced.
	for len(writes) > 0 {
		<-writes
	}
	for len(deltas) > 0 {
		<-deltas
	}
	var cloudPart, reportPart, queuePart []time.Duration
	for i := 0; i < o.loops; i++ {
		v := float64(30 + i%41) // 30…70 %: above the fan's 20 % start duty, never 0
		if i > 0 && v == float64(30+(i-1)%41) {
			v++
		}
		for len(reported) > 0 {
			<-reported
		}
		for len(rawDeltas) > 0 {
			<-rawDeltas
		}
		for len(reports) > 0 {
			<-reports
		}
		for len(deltas) > 0 {
			<-deltas
		}
		var sawDelta time.Duration
		body := fmt.Sprintf(`{"state":{"desired":{"fan":%g}}}`, v)
		start := time.Now()
		t := cl.Publish(prefix+"/update", 1, false, body)
		deadline := time.After(5 * time.Second)
		gotWrite := false
		for !gotWrite {
			select {
			case c := <-writes:
				if abs(c.Duty*100-v) < 0.01 {
					w := c.Time.Sub(start)
					write = append(write, w)
					gotWrite = true
					if sawDelta > 0 && sawDelta <= w {
						delta = append(delta, sawDelta)
						toWrite = append(toWrite, w-sawDelta)
					}
				}
			case d := <-deltas:
				if sawDelta == 0 {
					sawDelta = d.Sub(start)
				}
			case <-deadline:
				return nil, nil, nil, nil, fmt.Errorf("fan %g: no PWM write within 5 s", v)
			}
		}
	waitReport:
		for {
			select {
			case f := <-reported:
				if f == v {
					now := time.Now()
					cleared = append(cleared, now.Sub(start))
					select {
					case r := <-reports:
						reportPart = append(reportPart, now.Sub(r))
						queuePart = append(queuePart, r.Sub(start)-write[len(write)-1])
					default:
					}
					break waitReport
				}
			case <-deadline:
				return nil, nil, nil, nil, fmt.Errorf("fan %g: reported value not accepted within 5 s", v)
			}
		}
		select {
		case d := <-rawDeltas:
			cloudPart = append(cloudPart, d.Sub(start))
		case <-deadline:
			return nil, nil, nil, nil, fmt.Errorf("fan %g: no delta on the topic", v)
		}
		t.Wait()
		time.Sleep(o.gap) // pacing within AWS's per-thing rate, not synchronisation
	}
	fmt.Fprintf(&o.detail, "  published → delta on a plain subscriber (broker, shadow service, broker): %s\n", stats(cloudPart))
	if len(queuePart) > 0 {
		fmt.Fprintf(&o.detail, "  HAL write → the agent queues the report (read-back, Outcome, state file), %d samples: %s\n", len(queuePart), stats(queuePart))
	}
	if len(reportPart) > 0 {
		fmt.Fprintf(&o.detail, "  agent queues the report → document with it received (shadowsync send, service, broker), %d samples: %s\n", len(reportPart), stats(reportPart))
	}
	return write, delta, toWrite, cleared, nil
}

// processPhase starts `agent sim --cloud` on cfgPath and measures start-up,
// RSS and CPU.
func processPhase(ctx context.Context, addr, bin, cfgPath, name, sensor string, o *options) error {
	firstReport := make(chan time.Time, 1)
	var cl paho.Client
	if sensor != "" {
		cl = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bench-watch").SetOrderMatters(true))
		if t := cl.Connect(); t.Wait() && t.Error() != nil {
			return t.Error()
		}
		defer cl.Disconnect(100)
		if t := cl.Subscribe("$aws/things/bench-agent/shadow/update/documents", 1, func(_ paho.Client, m paho.Message) {
			if strings.Contains(string(m.Payload()), `"`+sensor+`"`) {
				select {
				case firstReport <- time.Now():
				default:
				}
			}
		}); t.Wait() && t.Error() != nil {
			return t.Error()
		}
	}
	cmd := exec.CommandContext(ctx, bin, "sim", "--cloud", addr, "--config", cfgPath, "--scenario", "none", "--quiet")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}()
	online := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "online ") {
				select {
				case online <- time.Now():
				default:
				}
			}
		}
	}()
	select {
	case t := <-online:
		fmt.Printf("%s: exec → agent online %s\n", name, ms(t.Sub(start)))
	case <-time.After(15 * time.Second):
		return errors.New("the agent did not come online within 15 s")
	}
	if sensor != "" {
		select {
		case t := <-firstReport:
			fmt.Printf("%s: exec → first sensor value in the shadow %s\n", name, ms(t.Sub(start)))
		case <-time.After(15 * time.Second):
			return errors.New("no sensor report within 15 s")
		}
	}
	time.Sleep(o.warmup) // letting start-up work finish before the window, not synchronisation
	pid := cmd.Process.Pid
	c0, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	w0 := time.Now()
	rss0, _ := status(pid, "VmRSS")
	time.Sleep(o.window) // the measurement window itself
	c1, err := cpuTicks(pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(w0)
	rss1, _ := status(pid, "VmRSS")
	hwm, _ := status(pid, "VmHWM")
	// Linux reports utime/stime in clock ticks of 1/100 s (USER_HZ).
	cpu := float64(c1-c0) / 100 / elapsed.Seconds() * 100
	fmt.Printf("%s: CPU %.2f %% of one core over %s; RSS %.1f MB at the start of the window, %.1f MB at its end, peak %.1f MB\n",
		name, cpu, elapsed.Round(time.Second), float64(rss0)/1024, float64(rss1)/1024, float64(hwm)/1024)
	return nil
}

const idleConfig = `thing: bench-agent
board: pi4b
connection: {endpoint: 127.0.0.1, port: 1883, transport: tcp}
devices:
  - {id: heater, driver: relay, pin: GPIO17, active_low: true}
  - {id: fan, driver: fan, channel: GPIO18, min_duty: 20}
  - {id: led, driver: led, pin: GPIO22}
shadows:
  - desired:
      heater: {device: heater, interlock: climate}
      fan: {device: fan, range: [0, 100], interlock: climate}
      led: led.on
`

// sensorsConfig has 20 reported keys read every second: four ADS1115 with
// four inputs each and two BME280 with temperature and humidity.
func sensorsConfig() string {
	var b strings.Builder
	b.WriteString("thing: bench-agent\nboard: pi4b\nconnection: {endpoint: 127.0.0.1, port: 1883, transport: tcp}\ndevices:\n")
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "  - id: adc%d\n    driver: ads1115\n    bus: 1\n    address: 0x%x\n    channels:\n", i, 0x48+i)
		for ch := 0; ch < 4; ch++ {
			fmt.Fprintf(&b, "      - {name: a%d, input: \"%d\", full_scale: 4.096}\n", ch, ch)
		}
	}
	b.WriteString("  - {id: air0, driver: bme280, bus: 1, address: 0x76}\n  - {id: air1, driver: bme280, bus: 1, address: 0x77}\n")
	b.WriteString("shadows:\n  - reported:\n")
	for i := 0; i < 4; i++ {
		for ch := 0; ch < 4; ch++ {
			fmt.Fprintf(&b, "      a%d_%d: {device: adc%d, property: a%d, update_interval: 1s, round: 3}\n", ch, i, i, ch)
		}
	}
	for i := 0; i < 2; i++ {
		fmt.Fprintf(&b, "      temperature%d: {device: air%d, property: temperature, update_interval: 1s, round: 1}\n", i, i)
		fmt.Fprintf(&b, "      humidity%d: {device: air%d, property: humidity, update_interval: 1s, round: 0}\n", i, i)
	}
	return b.String()
}

func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may contain spaces) in ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // utime: field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // stime: field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// status returns a kB value from /proc/PID/status.
func status(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func stats(d []time.Duration) string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s", ms(pct(d, 50)), ms(pct(d, 99)), ms(slices.Max(d)))
}

func ratio(a, b []time.Duration, p int) float64 {
	return float64(pct(a, p)) / float64(pct(b, p))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
