//go:build faults

package agent

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/shadowsync"
)

var (
	soakDuration = flag.Duration("soak.duration", 0, "run TestSoak for this long (scripts/soak.sh: 1h; scripts/test.sh: 5m); 0 skips it")
	soakSample   = flag.Duration("soak.sample", 30*time.Second, "TestSoak's sampling interval")
	soakWarmup   = flag.Duration("soak.warmup", 0, "TestSoak's warm-up, excluded from the RSS bound (default: a fifth of the run, at most 10m)")
	soakRSSBound = flag.Bool("soak.rss", false, "TestSoak fails when RSS grows more than 1 MB after warm-up (scripts/soak.sh sets it; a 5-minute run only shows the trend)")
)

// printStats writes one soak sample of this process: unix seconds, RSS
// (kB), heap in use after a GC (bytes), goroutines.
func printStats(w io.Writer) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "STAT %d %d %d %d\n", time.Now().Unix(), rssKB(), ms.HeapInuse, runtime.NumGoroutine())
}

func rssKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return -1
}

type soakSampleT struct {
	at                time.Duration
	rssKB, heap, gors int64
}

// soakConfig: 20 sensors read every second (cpu_temp zones under a test
// sysroot, each value moving so every read is reported) and two outputs.
func soakConfig(stateDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `thing: soak1
board: pi4b
state_dir: %s
connection:
  endpoint: 127.0.0.1
  port: 1
  transport: tcp
devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: fan, driver: fan, channel: GPIO18}
`, stateDir)
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "  - {id: t%d, driver: cpu_temp, zone: %d}\n", i, i)
	}
	b.WriteString("shadows:\n  - desired:\n      heater: {device: heater, boot: false}\n      fan: {device: fan, property: speed, range: [0, 100], boot: 0}\n    reported:\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "      t%d: {device: t%d, property: temperature, update_interval: 1s, round: 2}\n", i, i)
	}
	return b.String()
}

// TestSoak runs one agent process with 20 sensors at 1 Hz and a desired
// change a minute for -soak.duration, sampling its RSS, heap (after GC) and
// goroutines. Asserts: every desired change is applied; no error or warning
// in the agent's log after warm-up; the goroutine count after warm-up does
// not grow; with -soak.rss, RSS grows at most 1 MB after warm-up. Prints
// the samples as the trend.
func TestSoak(t *testing.T) {
	if *soakDuration <= 0 {
		t.Skip("set -soak.duration (scripts/soak.sh)")
	}
	warm := *soakWarmup
	if warm == 0 {
		warm = min(*soakDuration/5, 10*time.Minute)
	}
	c := startCloud(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "sysroot")
	zone := func(i int) string { return filepath.Join(root, "sys/class/thermal", fmt.Sprintf("thermal_zone%d", i)) }
	writeTemps := func(step int) {
		for i := 0; i < 20; i++ {
			// 40–50 °C, a different value every second; written by rename
			// so the agent never reads a half-written file.
			v := 40000 + (step*37+i*101)%10000
			tmp := filepath.Join(zone(i), ".temp")
			if err := os.WriteFile(tmp, []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(zone(i), "temp")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 20; i++ {
		if err := os.MkdirAll(zone(i), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeTemps(0)
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(soakConfig(filepath.Join(dir, "state"))), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newApp(t, c, "soak1")
	defer func() { c.stop(); a.close() }()
	ch := startChild(t, cfgPath, c.addr, envChildSysRoot+"="+root, envChildStats+"="+soakSample.String())
	defer ch.kill(t)

	start := time.Now()
	sec := time.NewTicker(time.Second)
	defer sec.Stop()
	changes, step := 0, 0
	for time.Since(start) < *soakDuration {
		<-sec.C // the sensors' pace: a new value every second
		step++
		writeTemps(step)
		if step%60 == 30 { // a desired change a minute
			changes++
			fan := changes % 101
			a.desire(t, fmt.Sprintf(`{"heater": %v, "fan": %d}`, changes%2 == 1, fan))
			a.waitDoc(t, fmt.Sprintf("desired change %d applied", changes), func(d *shadowsync.Document) bool {
				f, _ := num(d.Reported["fan"])
				return int(f) == fan && d.Reported["heater"] == (changes%2 == 1)
			})
		}
	}
	d := a.doc(t)
	if _, ok := num(d.Reported["t19"]); !ok {
		t.Errorf("sensor t19 never reported: %s", d.Raw)
	}
	ch.kill(t)

	var samples []soakSampleT
	sc := bufio.NewScanner(strings.NewReader(ch.stdout.String()))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "STAT" {
			continue
		}
		var v [4]int64
		for i := range v {
			v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
		}
		samples = append(samples, soakSampleT{at: time.Unix(v[0], 0).Sub(start), rssKB: v[1], heap: v[2], gors: v[3]})
	}
	if len(samples) < 3 {
		t.Fatalf("only %d samples:\n%s\n%s", len(samples), ch.stdout.String(), ch.stderr.String())
	}
	var trend strings.Builder
	fmt.Fprintf(&trend, "soak trend (%v, 20 sensors at 1 Hz, %d desired changes; warm-up %v):\n  %8s %10s %12s %10s\n", *soakDuration, changes, warm, "t", "RSS kB", "heap KiB", "goroutines")
	var base *soakSampleT
	maxRSS, maxG := int64(0), int64(0)
	for i := range samples {
		s := samples[i]
		mark := ""
		if s.at >= warm {
			if base == nil {
				base, mark = &samples[i], "  <- after warm-up"
			}
			maxRSS, maxG = max(maxRSS, s.rssKB), max(maxG, s.gors)
		}
		fmt.Fprintf(&trend, "  %8v %10d %12d %10d%s\n", s.at.Round(time.Second), s.rssKB, s.heap>>10, s.gors, mark)
	}
	if base == nil {
		base = &samples[len(samples)-1]
		maxRSS, maxG = base.rssKB, base.gors
	}
	last := samples[len(samples)-1]
	// Growth compares the median of the first and of the last five samples
	// after warm-up: a single sample moves by a few hundred kB with the GC
	// and the page cache, a leak moves them all.
	var after []soakSampleT
	for _, s := range samples {
		if s.at >= warm {
			after = append(after, s)
		}
	}
	if len(after) == 0 {
		after = samples[len(samples)-1:]
	}
	k := min(5, len(after))
	growth := medianRSS(after[len(after)-k:]) - medianRSS(after[:k])
	fmt.Fprintf(&trend, "  after warm-up: RSS %+d kB (median of the last %d vs the first %d; max %+d kB), heap %+d KiB, goroutines %d → %d (max %d)\n",
		growth, k, k, maxRSS-base.rssKB, (last.heap-base.heap)>>10, base.gors, last.gors, maxG)
	fmt.Print(trend.String()) // the trend, in every run's output (scripts/soak.sh keeps these lines)

	if maxG > base.gors+2 {
		t.Errorf("goroutines grew from %d to %d after warm-up", base.gors, maxG)
	}
	if *soakRSSBound && growth > 1024 {
		t.Errorf("RSS grew %d kB after warm-up (median of the last %d samples against the first %d), bound 1024 kB", growth, k, k)
	}
	var bad []string
	for _, l := range strings.Split(ch.stderr.String(), "\n") {
		if !strings.Contains(l, "level=ERROR") && !strings.Contains(l, "level=WARN") {
			continue
		}
		ts := strings.TrimPrefix(strings.Fields(l)[0], "time=")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if strings.Contains(l, "level=ERROR") || err != nil || at.Sub(start) > 10*time.Second {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d errors or warnings in the agent's log:\n%s", len(bad), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// medianRSS is the median RSS of samples (kB).
func medianRSS(samples []soakSampleT) int64 {
	v := make([]int64, len(samples))
	for i, s := range samples {
		v[i] = s.rssKB
	}
	slices.Sort(v)
	return v[len(v)/2]
}
