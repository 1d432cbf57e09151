package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/localcloud"
)

// simOut collects a simulation's stdout and lets a test wait for a line.
type simOut struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func newSimOut() *simOut { return &simOut{changed: make(chan struct{})} }

func (s *simOut) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *simOut) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wait returns the first submatches of re in the output, waiting for it
// until ctx ends.
func (s *simOut) wait(ctx context.Context, re *regexp.Regexp) ([]string, bool) {
	for {
		s.mu.Lock()
		m := re.FindStringSubmatch(s.b.String())
		ch := s.changed
		s.mu.Unlock()
		if m != nil {
			return m, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-ch:
		}
	}
}

// The README's main job: the default scenario from start to end, in
// process. Its account must show each desired change reaching the
// hardware and the shadow, the invalid values rejected with their reasons
// (and the hardware left alone), the fault and the reconnect.
func TestSimDefaultScenarioRunsToCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the 16 s default scenario")
	}
	t.Cleanup(func() { goleak.VerifyNone(t) })
	t.Chdir(t.TempDir()) // the built-in config and scenario need no files
	var errOut lockedBuffer
	out := newSimOut()
	code := run(context.Background(), &env{stdout: out, stderr: &errOut}, []string{"sim", "--duration", "15.5s"})
	text := out.String()
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s\nstdout:\n%s", code, errOut.String(), text)
	}
	// Each expectation is a line of the account, in this order.
	want := []string{
		`cloud +drive it from another terminal: agent shadow update --endpoint 127\.0\.0\.1:\d+ --thing sim-greenhouse --desired fan=70`,
		`desired +heater=true`,
		`pin +heater GPIO17 → on \(wire low, active-low\) +\[[\d.]+ ms after desired\]`,
		`reported +heater=true \(v\d+\)`,
		`in-sync +heater=true: delta cleared [\d.]+ ms after desired`,
		`desired +fan=150`,
		`rejected +fan=150 not applied, hardware untouched: fan: 150 % is outside 0…100 %`,
		`desired +fan=null \(v\d+, from the agent's on_reject\)`,
		`report +button=true`,
		`pin +status_led GPIO22 → off`, // the set-desired job (its desired line is checked below)
		`job +job sim-job-1 SUCCEEDED`,
		`desired +fan=40 heater=false`,
		`pwm +fan GPIO18 → 40 % at 25 kHz +\[[\d.]+ ms after desired\]`,
		`in-sync +fan=40: delta cleared [\d.]+ ms after desired`,
		`rejected +heater=true not applied, hardware untouched: heater: interlock "climate_control"`,
		`desired +heater=false \(v\d+, from the agent's on_reject\)`,
		`fault +temperature: .*not acknowledged`,
		`report +.*temperature=null`,
		`report +.*temperature=\d`, // recovered after the fault
		`in-sync +fan=0: delta cleared`,
		`summary +\d+ deltas cleared.*, 1 job\(s\) SUCCEEDED`,
	}
	rest := text
	for _, w := range want {
		loc := regexp.MustCompile(`(?m)^ +[\d.]+s  ` + w).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("no line matching %q after the previous expectation in:\n%s", w, text)
		}
		rest = rest[loc[1]:]
	}
	// The job's desired update: the account may see it before or after the
	// agent has switched the pin, so it is not part of the ordered list.
	if !regexp.MustCompile(`(?m)^ +[\d.]+s  desired +status_led=false \(v\d+, from another client\)`).MatchString(text) {
		t.Errorf("no desired status_led=false line from the set-desired job:\n%s", text)
	}
	// The broker restart: the agent notices and reconnects by itself.
	if !regexp.MustCompile(`(?s)offline +the agent lost the connection.*\n +[\d.]+s  online +the agent is connected`).MatchString(text) {
		t.Errorf("no reconnect after the broker restart:\n%s", text)
	}
	// The hardware never saw the rejected values.
	if regexp.MustCompile(`pwm +fan GPIO18 → 150`).MatchString(text) {
		t.Errorf("the fan was driven to the rejected 150 %%:\n%s", text)
	}
	heaterOn := regexp.MustCompile(`pin +heater GPIO17 → on`).FindAllStringIndex(text, -1)
	if len(heaterOn) != 1 {
		t.Errorf("heater switched on %d times, want once (the interlocked request must not reach it):\n%s", len(heaterOn), text)
	}
}

func TestSimScenarioErrorsHaveLineAndColumnAndExit2(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	body := "- {at: 1s, desired: {fan: 40}}\n" +
		"- {at: 2, press: button}\n" +
		"- {at: 3s, pres: button}\n" +
		"- {at: 4s, fault: {i2c_nack: climate}}\n" +
		"- {at: 5s, press: heater}\n"
	if err := os.WriteFile(bad, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAgentCmd(t, "sim", "--scenario", bad, "--duration", "1s")
	if code != 2 {
		t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errOut)
	}
	for _, w := range []string{
		bad + `:2:8: at: "2" has no unit; add one: 2s`,
		bad + `:3:12: unknown step key "pres"; allowed: at, desired, shadow, press, for, fault, restart_broker, ambient, say, job; did you mean "press"?`,
		bad + `:4:19: fault: say how long it lasts, e.g. for: 3s`,
		"3 problems in " + bad,
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
	if out != "" {
		t.Errorf("nothing should run; stdout:\n%s", out)
	}

	// Valid syntax, but a device that cannot be pressed: checked against
	// the configuration, with the step's position.
	if err := os.WriteFile(bad, []byte("- {at: 1s, press: heater}\n- {at: 2s, fault: {i2c_nack: climat, for: 1s}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runAgentCmd(t, "sim", "--scenario", bad, "--duration", "1s")
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, errOut)
	}
	for _, w := range []string{
		bad + `:1:3: press: device "heater" is a relay, not an input; press a button, switch or pir`,
		bad + `:2:3: fault: unknown device "climat"; devices in configs/sim.yaml: heater, fan, climate, button, status_led, soil; did you mean "climate"?`,
	} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut)
		}
	}
}

// A second terminal drives the simulated device with agent shadow update.
func TestSimListenLetsAgentShadowUpdateDriveTheHardware(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newSimOut()
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: out, stderr: &errOut}, []string{"sim", "--listen", "127.0.0.1:0", "--scenario", "none"})
	}()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	m, ok := out.wait(wctx, regexp.MustCompile(`drive it from another terminal: (agent shadow update --endpoint (\S+) --thing (\S+) --desired fan=70)`))
	if !ok {
		cancel()
		t.Fatalf("no drive command printed; exit %v\nstdout:\n%s\nstderr:\n%s", <-done, out.String(), errOut.String())
	}
	if _, ok := out.wait(wctx, regexp.MustCompile(`(?m)ready +the agent has converged`)); !ok {
		cancel()
		t.Fatalf("agent not ready:\n%s", out.String())
	}
	args := strings.Fields(m[1])[1:] // the printed command, minus "agent"
	if code, sout, serr := runAgentCmd(t, append(args, "--timeout", "5s")...); code != 0 {
		t.Fatalf("%s: exit %d\n%s\n%s", m[1], code, sout, serr)
	}
	for _, w := range []string{
		`(?m)desired +fan=70 \(v\d+, from another client\)`,
		`(?m)pwm +fan GPIO18 → 70 % at 25 kHz`,
		`(?m)reported +fan=70`,
		`(?m)in-sync +fan=70: delta cleared`,
	} {
		if _, ok := out.wait(wctx, regexp.MustCompile(w)); !ok {
			cancel()
			<-done
			t.Fatalf("no line matching %q:\n%s", w, out.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after Ctrl-C, want 0; stderr:\n%s", code, errOut.String())
	}
}

// --cloud uses a cloud that is already running; --quiet --json print only
// the essential lines, each a JSON object.
func TestSimAgainstARunningCloudQuietJSON(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := localcloud.DefaultOptions()
	o.Listen = "127.0.0.1:0"
	srv, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := srv.Endpoints()[0].Addr.String()

	dir := t.TempDir()
	sc := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(sc, []byte("- {at: 0s, desired: {fan: 30}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := newSimOut()
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: out, stderr: &errOut}, []string{"sim", "--cloud", addr, "--scenario", sc, "--quiet", "--json"})
	}()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if _, ok := out.wait(wctx, regexp.MustCompile(`"kind":"in-sync"`)); !ok {
		cancel()
		t.Fatalf("no in-sync line; exit %d\n%s\n%s", <-done, out.String(), errOut.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut.String())
	}
	kinds := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", l, err)
		}
		kinds[m["kind"].(string)] = true
		if m["kind"] == "cloud" && strings.HasPrefix(m["text"].(string), "using") && m["text"] != "using the cloud at "+addr {
			t.Errorf("cloud line %q", m["text"])
		}
		if m["kind"] == "in-sync" && (m["key"] != "fan" || m["value"] != 30.0 || m["latency_ms"] == nil) {
			t.Errorf("in-sync line %v", m)
		}
	}
	for _, k := range []string{"cloud", "desired", "online", "in-sync", "summary"} {
		if !kinds[k] {
			t.Errorf("no %q line in:\n%s", k, out.String())
		}
	}
	for _, k := range []string{"pin", "pwm", "report"} {
		if kinds[k] {
			t.Errorf("--quiet printed a %q line:\n%s", k, out.String())
		}
	}

	// A broker restart needs the broker in process.
	if err := os.WriteFile(sc, []byte("- {at: 1s, restart_broker: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, serr := runAgentCmd(t, "sim", "--cloud", addr, "--scenario", sc, "--duration", "1s")
	if code != 2 || !strings.Contains(serr, "restart_broker needs the in-process cloud; drop --cloud or the step") {
		t.Errorf("exit %d, stderr %q; want 2 and why", code, serr)
	}
}

func TestSimBadConfigAndFlagsExit2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(bad, []byte("thing: t\ndevices:\n  - {id: heater, driver: rely, pin: GPIO17}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runAgentCmd(t, "sim", "--config", bad, "--duration", "1s")
	if code != 2 || !strings.Contains(errOut, bad+`:3:26: device "heater": unknown driver "rely"`) || !strings.Contains(errOut, "3 problems in "+bad) {
		t.Errorf("exit %d, stderr:\n%s\nwant 2 and the problem with its position", code, errOut)
	}
	if out != "" {
		t.Errorf("nothing should run; stdout:\n%s", out)
	}
	for _, args := range [][]string{
		{"sim", "--listen", "127.0.0.1:0", "--cloud", "127.0.0.1:1883"},
		{"sim", "--duration", "-1s"},
		{"sim", "--scenario", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if code, _, errOut := runAgentCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, code, errOut)
		}
	}
}
