//go:build faults

package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// The process scenarios run the agent in a child process (this test binary
// again, in TestFaultChild) on a fake HAL whose every output level is
// written to the child's stdout before it reaches the wire: that record
// outlives a kill -9 and is the hardware the parent checks. The state
// directory is a real one on disk.

// Environment of the child.
const (
	envChildConfig   = "PINSHADOW_FAULT_CHILD_CONFIG"
	envChildEndpoint = "PINSHADOW_FAULT_CHILD_ENDPOINT"
	envChildFsize    = "PINSHADOW_FAULT_CHILD_FSIZE" // RLIMIT_FSIZE in bytes: a full disk
	envChildSysRoot  = "PINSHADOW_FAULT_CHILD_SYSROOT"
	envChildStats    = "PINSHADOW_FAULT_CHILD_STATS" // print a STAT line this often (soak)
)

// killConfig: two independent relays.
const killConfig = `
thing: kill1
board: pi4b
state_dir: %s
connection:
  endpoint: 127.0.0.1
  port: 1
  transport: tcp
  backoff: {base: 20ms, max: 200ms, stable: 1s, jitter: none}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
  - {id: cooler, driver: relay, pin: GPIO23}
shadows:
  - desired:
      heater: {device: heater, boot: false}
      cooler: {device: cooler, boot: false}
`

var killLines = map[string]string{"pinctrl-bcm2711/17": "heater", "pinctrl-bcm2711/23": "cooler"}

// recordingHAL writes every output level to w before the fake applies it.
type recordingHAL struct {
	*fake.HAL
	mu sync.Mutex
	w  io.Writer
}

func (h *recordingHAL) record(name string, l hal.Level) {
	h.mu.Lock()
	defer h.mu.Unlock()
	lv := 0
	if l {
		lv = 1
	}
	fmt.Fprintf(h.w, "REC %d %s %d\n", time.Now().UnixNano(), name, lv)
}

func (h *recordingHAL) OpenOutput(ctx context.Context, name string, cfg hal.OutputConfig) (hal.DigitalOut, error) {
	h.record(name, cfg.Initial)
	o, err := h.HAL.OpenOutput(ctx, name, cfg)
	if err != nil {
		return nil, err
	}
	return &recordingOut{DigitalOut: o, h: h}, nil
}

type recordingOut struct {
	hal.DigitalOut
	h *recordingHAL
}

func (o *recordingOut) Set(ctx context.Context, l hal.Level) error {
	o.h.record(o.Name(), l)
	return o.DigitalOut.Set(ctx, l)
}

// TestFaultChild is the agent process of the process scenarios; it does
// nothing unless started by one of them.
func TestFaultChild(t *testing.T) {
	path := os.Getenv(envChildConfig)
	if path == "" {
		t.Skip("the agent process of TestFaultKill9 and TestFaultStateDiskFull")
	}
	if s := os.Getenv(envChildFsize); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		// Go ignores SIGXFSZ, so writes past the limit fail with EFBIG, as
		// they would with ENOSPC on a full disk.
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			t.Fatal(err)
		}
	}
	yaml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, string(yaml), "")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := &recordingHAL{HAL: fake.New(), w: os.Stdout}
	// Short waits so a killed cloud connection is retried quickly.
	shadowOpts := shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	if s := os.Getenv(envChildStats); s != "" {
		every, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		// The soak's samples; only this process's memory, not the cloud's.
		// The ticker lives as long as the process, which is killed.
		go func() {
			for range time.Tick(every) {
				printStats(os.Stdout)
			}
		}()
		h.w = io.Discard                  // 20 sensors and a change a minute: keep stdout for samples
		shadowOpts = shadowsync.Options{} // the soak runs as shipped (10 s request timeout)
	}
	ag, err := New(cfg, Deps{HAL: h, Endpoint: "tcp://" + os.Getenv(envChildEndpoint), Logger: log, SysRoot: os.Getenv(envChildSysRoot),
		Shadow: shadowOpts})
	if err != nil {
		t.Fatal(err)
	}
	// Runs until the parent kills the process.
	if err := ag.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// child is one running agent process.
type child struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer // the hardware record (REC lines)
	stderr bytes.Buffer // the agent's log
	exited chan error
	dead   bool
}

func startChild(t *testing.T, cfgPath, endpoint string, env ...string) *child {
	t.Helper()
	c := &child{exited: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	c.cmd.Env = append(os.Environ(), append([]string{envChildConfig + "=" + cfgPath, envChildEndpoint + "=" + endpoint}, env...)...)
	// Pipes, not files: a file size limit in the child must hit only its
	// state directory.
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- c.cmd.Wait() }()
	return c
}

// kill sends SIGKILL and waits for the process and its pipes.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if c.dead {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
		c.dead = true
	case <-time.After(wait):
		t.Fatal("agent process did not die after SIGKILL")
	}
}

// wireChange is one output level in the record.
type wireChange struct {
	at    time.Time
	key   string
	level bool
}

func parseRecord(t *testing.T, out string) []wireChange {
	t.Helper()
	var w []wireChange
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "REC" {
			continue
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("record line %q: %v", sc.Text(), err)
		}
		w = append(w, wireChange{at: time.Unix(0, ns), key: killLines[f[2]], level: f[3] == "1"})
	}
	return w
}

// desiredSpan is a time during which desired may have held value for key:
// from when the update was sent until the next update of the key was
// accepted.
type desiredSpan struct {
	from, to time.Time
	value    bool
}

// TestFaultKill9 kills the agent process with SIGKILL at seeded random
// moments while desired keeps changing, and restarts it. Asserts: the state
// file parses after every kill; every change of an output's level goes to a
// value desired held at some moment since the output's previous change (no
// toggle desired did not ask for: no restore of a stale value, no boot
// value over a set output); at the end hardware, reported and desired agree.
func TestFaultKill9(t *testing.T) {
	c := startCloud(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(killConfig, stateDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newApp(t, c, "kill1")
	defer func() { c.stop(); a.close() }()
	rng := rand.New(rand.NewPCG(*faultSeed, 2))

	spans := map[string][]desiredSpan{
		"heater": {{value: false}}, "cooler": {{value: false}}, // boot values, from the beginning of time
	}
	current := map[string]bool{"heater": false, "cooler": false}
	set := func(key string, v bool) {
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if _, err := a.sh.Update(ctx, shadowsync.UpdateRequest{Desired: map[string]any{key: v}}); err != nil {
			t.Fatalf("desire %s=%v: %v", key, v, err)
		}
		s := spans[key]
		s[len(s)-1].to = time.Now()
		spans[key] = append(s, desiredSpan{from: sent, value: v})
		current[key] = v
	}
	set("heater", false)
	set("cooler", false)

	var record strings.Builder
	var logs strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < *faultKills; i++ {
		ch := startChild(t, cfgPath, c.addr)
		// Desired keeps changing while the agent runs; the kill lands at a
		// random moment (during start-up, mid-apply, idle).
		life := time.Duration(200+rng.IntN(2800)) * time.Millisecond
		deadline := time.Now().Add(life)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			key := []string{"heater", "cooler"}[rng.IntN(2)]
			set(key, !current[key])
			time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond) // the pace of changes: the fault schedule
		}
		ch.kill(t)
		record.WriteString(ch.stdout.String())
		fmt.Fprintf(&logs, "--- agent process %d (killed after %v)\n%s", i+1, life, ch.stderr.String())
		if _, err := loadState(filepath.Join(stateDir, StateFile), "kill1"); err != nil {
			t.Fatalf("kill %d: state file unusable: %v\nagent log:\n%s", i+1, err, ch.stderr.String())
		}
		if strings.Contains(ch.stderr.String(), "panic") {
			t.Fatalf("kill %d: the agent panicked:\n%s", i+1, ch.stderr.String())
		}
		if rng.IntN(2) == 0 { // desired also changes while the agent is down
			key := []string{"heater", "cooler"}[rng.IntN(2)]
			set(key, !current[key])
		}
	}

	// The last run: it must converge.
	ch := startChild(t, cfgPath, c.addr)
	d := a.waitDoc(t, "converged after the kills", func(d *shadowsync.Document) bool {
		return d.Reported["heater"] == current["heater"] && d.Reported["cooler"] == current["cooler"] && len(d.Delta) == 0
	})
	// Reported is what the hardware had: the record's last line per output
	// was written before the level reached the wire, so it is already there.
	ch.kill(t)
	record.WriteString(ch.stdout.String())
	changes := parseRecord(t, record.String())
	if len(changes) == 0 {
		t.Fatalf("no output was ever opened; agent logs:\n%s\n%s", logs.String(), ch.stderr.String())
	}

	last := map[string]wireChange{}
	transitions := 0
	for _, w := range changes {
		prev, seen := last[w.key]
		if !seen {
			last[w.key] = w
			if !heldBetween(spans[w.key], w.level, time.Time{}, w.at) {
				t.Errorf("%s first opened at %v, a value desired never held", w.key, w.level)
			}
			continue
		}
		if prev.level == w.level {
			continue // written again at the level it had: no toggle
		}
		transitions++
		if !heldBetween(spans[w.key], w.level, prev.at, w.at) {
			t.Errorf("%s toggled to %v at %s although desired never held %v since its previous change at %s: a toggle desired did not ask for",
				w.key, w.level, w.at.Format("15:04:05.000"), w.level, prev.at.Format("15:04:05.000"))
		}
		last[w.key] = w
	}
	for _, key := range []string{"heater", "cooler"} {
		if last[key].level != current[key] {
			t.Errorf("%s hardware ends at %v, desired %v (reported %v)", key, last[key].level, current[key], d.Reported[key])
		}
	}
	if t.Failed() {
		t.Logf("agent logs:\n%s", logs.String())
	}
	n := 0
	for _, s := range spans {
		n += len(s) - 1
	}
	t.Logf("%d kills, %d desired changes, %d output toggles, %d record lines", *faultKills, n, transitions, len(changes))
}

// heldBetween reports whether desired held v at some moment in [from, to].
func heldBetween(spans []desiredSpan, v bool, from, to time.Time) bool {
	for _, s := range spans {
		if s.value != v {
			continue
		}
		if (s.to.IsZero() || !s.to.Before(from)) && !s.from.After(to) {
			return true
		}
	}
	return false
}

// TestFaultStateDiskFull runs the agent with its state writes failing: a
// full disk (RLIMIT_FSIZE: every write past 64 bytes fails, as ENOSPC would)
// and a state directory that cannot be created (its parent is a file, as on
// a read-only or broken mount). Asserts: the log has one clear error naming
// the state file and the likely cause; the agent keeps applying and
// reporting desired changes from memory; no corrupt state file is left.
func TestFaultStateDiskFull(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   []string
		state func(dir string) string
		want  string
	}{
		{"disk full", []string{envChildFsize + "=64"}, func(dir string) string { return filepath.Join(dir, "state") }, "file too large"},
		{"directory cannot be created", nil, func(dir string) string {
			blocker := filepath.Join(dir, "file")
			if err := os.WriteFile(blocker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(blocker, "state")
		}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCloud(t)
			dir := t.TempDir()
			stateDir := tc.state(dir)
			cfgPath := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(killConfig, stateDir)), 0o600); err != nil {
				t.Fatal(err)
			}
			a := newApp(t, c, "kill1")
			defer func() { c.stop(); a.close() }()
			ch := startChild(t, cfgPath, c.addr, tc.env...)
			defer ch.kill(t)
			want := false
			for i := 0; i < 4; i++ {
				want = !want
				a.desire(t, fmt.Sprintf(`{"heater": %v, "cooler": %v}`, want, !want))
				a.waitDoc(t, fmt.Sprintf("change %d applied without a state file", i+1), func(d *shadowsync.Document) bool {
					return d.Reported["heater"] == want && d.Reported["cooler"] == !want && len(d.Delta) == 0
				})
			}
			ch.kill(t)
			logs := ch.stderr.String()
			var errs []string
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
					errs = append(errs, l)
				}
			}
			stateErrs := 0
			for _, l := range errs {
				if strings.Contains(l, "cannot save state") && strings.Contains(l, tc.want) {
					stateErrs++
				}
			}
			if stateErrs == 0 {
				t.Fatalf("no error naming the state file and %q in the log:\n%s", tc.want, logs)
			}
			if stateErrs > 1 {
				t.Errorf("the state error was logged %d times, want once (it repeats at every change otherwise):\n%s", stateErrs, strings.Join(errs, "\n"))
			}
			changes := parseRecord(t, ch.stdout.String())
			if n := len(changes); n < 2+4 {
				t.Errorf("record has %d output levels, want the 2 opens and at least 4 changes", n)
			}
			if _, err := loadState(filepath.Join(stateDir, StateFile), "kill1"); err != nil && !strings.Contains(err.Error(), "not a directory") {
				t.Errorf("state file left corrupt: %v", err)
			}
			for _, l := range errs {
				if strings.Contains(l, "cannot save state") {
					t.Logf("state error: %s", l)
				}
			}
		})
	}
}
