// Command cloudbench measures the local AWS IoT cloud (package localcloud)
// for BENCHMARKS.md. It is not part of the test run:
//
//	go run ./localcloud/cmd/cloudbench            # all phases, defaults below
//	go run ./localcloud/cmd/cloudbench -h         # knobs
//
// Phases, all against one embedded broker with durability on (bbolt in a
// temporary directory, group commit):
//
//  1. raw MQTT: every thing's connection publishes QoS 1 to its own topic
//     at the offered rate and receives it back; one-way publish→deliver
//     latency.
//  2. shadow, offered load: every thing sends reported-state updates at
//     the offered rate (total -rate per second); request→/accepted latency.
//  3. shadow, saturation: every thing keeps one update outstanding (closed
//     loop); accepted updates per second and latency at that load.
//
// Then memory per stored shadow (heap delta over -mem-shadows shadows, in
// memory) and start-up time of the agent binary (exec → listening line).
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
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pinshadow/pinshadow/localcloud"
)

type config struct {
	things     int
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	memShadows int
	starts     int
	cpuProfile string
	profPhase  string
	skipStart  bool
	shards     int
	memoryOnly bool
	waitQuiet  time.Duration
}

func main() {
	var c config
	flag.IntVar(&c.things, "things", 1000, "things (one MQTT connection each)")
	flag.Float64Var(&c.rate, "rate", 5000, "offered load in phases 1 and 2, messages per second over all things")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per phase")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured time before each phase")
	flag.IntVar(&c.memShadows, "mem-shadows", 10000, "shadows stored for the memory measurement")
	flag.IntVar(&c.starts, "starts", 5, "agent start-ups to time")
	flag.BoolVar(&c.skipStart, "skip-startup", false, "skip building and timing the agent binary")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of one phase (-profile-phase) to this file")
	flag.StringVar(&c.profPhase, "profile-phase", "offered", "phase to profile: raw, offered or saturation")
	flag.IntVar(&c.shards, "shards", 0, "shard workers (0 = default)")
	flag.BoolVar(&c.memoryOnly, "memory", false, "run the load phases without --data (no durability), for comparison")
	flag.DurationVar(&c.waitQuiet, "wait-quiet", 0, "before each load phase wait up to this long for other processes to use < 0.2 CPUs (shared machines)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "cloudbench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	fmt.Printf("machine: %d CPUs (GOMAXPROCS %d), %s, %s %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), cpu, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Printf("load: %d things, one connection each, offered %.0f msg/s, %v measured after %v warm-up\n", c.things, c.rate, c.duration, c.warmup)

	dir, err := os.MkdirTemp("", "cloudbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")

	o := localcloud.DefaultOptions()
	o.Listen = "127.0.0.1:0"
	if !c.memoryOnly {
		o.DataDir = data
	}
	o.Shards = c.shards
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := localcloud.New(o)
	if err != nil {
		return err
	}
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	defer srv.Close()
	addr := srv.Endpoints()[0].Addr.String()

	clients, err := connectAll(addr, c.things)
	if err != nil {
		return err
	}
	defer func() {
		for _, cl := range clients {
			cl.c.close()
		}
	}()

	prof := func(name string) string {
		if c.profPhase == name {
			return c.cpuProfile
		}
		return ""
	}
	raw, err := phase(clients, c, modeRaw, prof("raw"))
	if err != nil {
		return err
	}
	report("raw MQTT publish→deliver (QoS 1), offered load", raw)
	sh, err := phase(clients, c, modeShadow, prof("offered"))
	if err != nil {
		return err
	}
	durability := "durable"
	if c.memoryOnly {
		durability = "in memory"
	}
	report("shadow update→/accepted, offered load, "+durability, sh)
	fmt.Printf("  ratio shadow/raw: p50 %.1f×, p99 %.1f×\n", ratio(sh.p(50), raw.p(50)), ratio(sh.p(99), raw.p(99)))
	sat, err := phase(clients, c, modeSaturate, prof("saturation"))
	if err != nil {
		return err
	}
	report("shadow update→/accepted, saturation (1 outstanding per thing), "+durability, sat)
	for _, cl := range clients {
		cl.c.close()
	}
	clients = nil
	if err := srv.Close(); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(data, localcloud.DBFile)); err == nil {
		fmt.Printf("database: %d shadows, %d bytes on disk\n", c.things, fi.Size())
	}

	if err := memory(c); err != nil {
		return err
	}
	if !c.skipStart {
		if err := startup(c, dir, data); err != nil {
			return err
		}
	}
	return nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// benchClient is one thing's connection.
type benchClient struct {
	c     *leanClient
	thing string
	// got receives latency samples of this client's answers.
	got      chan sample
	rejected atomic.Int64
}

type sample struct {
	lat  time.Duration
	code int
}

func connectAll(addr string, n int) ([]*benchClient, error) {
	clients := make([]*benchClient, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bc := &benchClient{thing: fmt.Sprintf("bench-%04d", i), got: make(chan sample, 64)}
			handler := func(_ string, payload []byte) {
				var d struct {
					ClientToken string `json:"clientToken"`
					Code        int    `json:"code"`
				}
				if err := json.Unmarshal(payload, &d); err != nil {
					return
				}
				sent, err := strconv.ParseInt(d.ClientToken, 10, 64)
				if err != nil {
					return
				}
				bc.got <- sample{time.Duration(time.Now().UnixNano() - sent), d.Code}
			}
			c, err := dialLean(addr, bc.thing, handler)
			if err != nil {
				errs <- fmt.Errorf("connect %s: %w", bc.thing, err)
				return
			}
			bc.c = c
			p := "$aws/things/" + bc.thing + "/shadow/update/"
			if err := c.subscribe(p+"accepted", p+"rejected", "bench/raw/"+bc.thing); err != nil {
				c.close()
				errs <- fmt.Errorf("subscribe %s: %w", bc.thing, err)
				return
			}
			clients[i] = bc
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for _, bc := range clients {
			if bc != nil {
				bc.c.close()
			}
		}
		return nil, err
	}
	return clients, nil
}

type mode int

const (
	modeRaw mode = iota
	modeShadow
	modeSaturate
)

type result struct {
	stall    time.Duration // longest oversleep of a 1 ms ticker: scheduler or VM pauses
	others   float64       // CPUs' worth used by other processes during the phase
	written  int64         // bytes this process wrote to storage during the phase
	lat      []time.Duration
	ok       int
	rejected int
	elapsed  time.Duration
}

func (r *result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(q / 100 * float64(len(r.lat)))
	return r.lat[min(i, len(r.lat)-1)]
}

func report(name string, r *result) {
	fmt.Printf("%s:\n  %d answered in %v = %.0f/s (rejected %d); latency p50 %v p90 %v p99 %v max %v\n  longest stall of a 1 ms sleeper %v; other processes used %.2f CPUs; disk writes %.1f MB/s\n",
		name, r.ok, r.elapsed.Round(time.Millisecond), float64(r.ok)/r.elapsed.Seconds(), r.rejected,
		r.p(50).Round(10*time.Microsecond), r.p(90).Round(10*time.Microsecond), r.p(99).Round(10*time.Microsecond), r.p(100).Round(10*time.Microsecond),
		r.stall.Round(100*time.Microsecond), r.others, float64(r.written)/1e6/r.elapsed.Seconds())
}

var seqs atomic.Int64

// phase runs one load pattern on every client and collects samples that
// arrive during the measured window.
func phase(clients []*benchClient, c config, m mode, profile string) (*result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var measuring atomic.Bool
	var mu sync.Mutex
	res := &result{}
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(len(clients)) / c.rate)
	for _, bc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			rejected := 0
			record := func(s sample) {
				if !measuring.Load() {
					return
				}
				if s.code != 0 {
					rejected++
					return
				}
				local = append(local, s.lat)
			}
			defer func() {
				mu.Lock()
				res.lat = append(res.lat, local...)
				res.rejected += rejected
				mu.Unlock()
			}()
			send := func() bool {
				now := time.Now().UnixNano()
				var err error
				if m == modeRaw {
					err = bc.c.publish("bench/raw/"+bc.thing, fmt.Appendf(nil, `{"clientToken":"%d"}`, now))
				} else {
					err = bc.c.publish("$aws/things/"+bc.thing+"/shadow/update",
						fmt.Appendf(nil, `{"state":{"reported":{"temperature":%.1f,"humidity":%d,"led":"on","seq":%d}},"clientToken":"%d"}`,
							20+rand.Float64()*5, 30+rand.IntN(40), seqs.Add(1), now))
				}
				return err == nil
			}
			if m == modeSaturate {
				for ctx.Err() == nil {
					if !send() {
						return
					}
					select {
					case s := <-bc.got:
						record(s)
					case <-ctx.Done():
						return
					}
				}
				return
			}
			// Offered load: a fixed schedule with a random phase per thing.
			next := time.Now().Add(time.Duration(rand.Int64N(int64(interval))))
			timer := time.NewTimer(time.Until(next))
			defer timer.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-bc.got:
					record(s)
				case <-timer.C:
					send()
					next = next.Add(interval)
					timer.Reset(time.Until(next))
				}
			}
		}()
	}
	if c.waitQuiet > 0 {
		waitQuiet(c.waitQuiet)
	}
	time.Sleep(c.warmup) // benchmark schedule, not synchronisation
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	measuring.Store(true)
	sys0, self0 := cpuTimes()
	w0 := writeBytes()
	start := time.Now()
	stallDone := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for time.Since(start) < c.duration {
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			worst = max(worst, time.Since(t0)-time.Millisecond)
		}
		stallDone <- worst
	}()
	res.stall = <-stallDone
	measuring.Store(false)
	res.elapsed = time.Since(start)
	sys1, self1 := cpuTimes()
	res.written = writeBytes() - w0
	res.others = max(0, ((sys1-sys0)-(self1-self0)).Seconds()/res.elapsed.Seconds())
	cancel()
	wg.Wait()
	// Let answers still in flight arrive, then drop them so the next
	// phase starts clean.
	time.Sleep(500 * time.Millisecond) // benchmark schedule
	for _, bc := range clients {
	drain:
		for {
			select {
			case <-bc.got:
			default:
				break drain
			}
		}
	}
	slices.Sort(res.lat)
	res.ok = len(res.lat)
	return res, nil
}

// memory stores memShadows shadows in an in-memory server and reports the
// heap growth per shadow.
func memory(c config) error {
	o := localcloud.DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.RatePerThing, o.MaxInFlight = 0, 0
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := localcloud.New(o)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Start(context.Background()); err != nil {
		return err
	}
	addr := srv.Endpoints()[0].Addr.String()
	var n atomic.Int64
	all := make(chan struct{})
	// At most 500 requests outstanding: a flood would overrun the
	// broker's per-client write queue (8,192) and drop answers.
	window := make(chan struct{}, 500)
	cl, err := dialLean(addr, "mem", func(string, []byte) {
		<-window
		if n.Add(1) == int64(c.memShadows) {
			close(all)
		}
	})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if err := cl.subscribe("$aws/things/+/shadow/update/accepted"); err != nil {
		cl.close()
		return fmt.Errorf("subscribe: %w", err)
	}
	before := heap()
	for i := range c.memShadows {
		window <- struct{}{}
		cl.publish(fmt.Sprintf("$aws/things/mem-%06d/shadow/update", i),
			fmt.Appendf(nil, `{"state":{"desired":{"led":"on","interval":30},"reported":{"temperature":21.5,"humidity":40,"led":"off","interval":30,"fw":"1.2.%d"}}}`, i%10))
	}
	select {
	case <-all:
	case <-time.After(60 * time.Second):
		cl.close()
		return fmt.Errorf("only %d of %d shadows accepted", n.Load(), c.memShadows)
	}
	cl.close()
	after := heap()
	fmt.Printf("memory: %d shadows (desired 2 keys, reported 5 keys) → heap +%.1f MiB = %d bytes per shadow (in memory, rate limiter off)\n",
		c.memShadows, float64(after-before)/(1<<20), (after-before)/int64(c.memShadows))
	return nil
}

// cpuTimes returns the CPU time used by the whole machine (from
// /proc/stat, all CPUs, busy states only) and by this process.
func cpuTimes() (machine, self time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, self
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal
	var ticks int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i > 7 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, self // USER_HZ = 100
}

// waitQuiet waits until other processes used less than 0.2 CPUs over two
// seconds, or until limit has passed. The running load phase's own traffic
// continues meanwhile (it is not measured yet).
func waitQuiet(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		m0, s0 := cpuTimes()
		time.Sleep(2 * time.Second)
		m1, s1 := cpuTimes()
		if others := ((m1 - m0) - (s1 - s0)).Seconds() / 2; others < 0.2 {
			return
		}
	}
	fmt.Println("  (machine did not get quiet within", limit, "- measuring anyway)")
}

// writeBytes is what this process caused to be written to storage
// (/proc/self/io write_bytes).
func writeBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func heap() int64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// startup builds the agent and times exec → "mqtt listening on" with an
// empty data directory and with the benchmark's stored shadows.
func startup(c config, dir, data string) error {
	bin := filepath.Join(dir, "agent")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/pinshadow/pinshadow/cmd/agent").CombinedOutput(); err != nil {
		return fmt.Errorf("build agent: %v\n%s", err, out)
	}
	for _, d := range []struct{ name, dir string }{{"empty --data", filepath.Join(dir, "empty")}, {fmt.Sprintf("--data with %d shadows", c.things), data}} {
		var ts []time.Duration
		for range c.starts {
			t, err := timeStart(bin, d.dir)
			if err != nil {
				return err
			}
			ts = append(ts, t)
		}
		slices.Sort(ts)
		fmt.Printf("start-up (%s): median %v, min %v, max %v over %d runs\n", d.name, ts[len(ts)/2].Round(100*time.Microsecond), ts[0].Round(100*time.Microsecond), ts[len(ts)-1].Round(100*time.Microsecond), len(ts))
	}
	return nil
}

func timeStart(bin, data string) (time.Duration, error) {
	cmd := exec.Command(bin, "cloud", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "mqtt listening on ") {
			return time.Since(start), nil
		}
	}
	return 0, errors.New("agent exited without a listening line")
}
