//go:build browser

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// findChromium returns Debian's chromium, skipping the test where it is not
// installed (outside CI; in CI scripts/test.sh installs it, so a missing
// browser fails).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; scripts/test.sh installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium, or run scripts/test.sh)")
	return ""
}

// artifactDir is where screenshots go: $PINSHADOW_ARTIFACTS, or a new
// directory under the system temp dir that outlives the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PINSHADOW_ARTIFACTS")
	if dir == "" {
		d, err := os.MkdirTemp("", "pinshadow-console-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots are saved in %s", dir)
	return dir
}

// startSim runs `agent sim` in-process with the console and returns its
// output, the console's URL and a stop function that waits for the exit.
func startSim(ctx context.Context, t *testing.T, httpAddr string) (*simOut, string, func()) {
	t.Helper()
	out := newSimOut()
	var errOut lockedBuffer
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, &env{stdout: out, stderr: &errOut}, []string{"sim", "--scenario", "none", "--quiet=false",
			"--http", httpAddr, "--http-write"})
	}()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	m, ok := out.wait(wctx, regexp.MustCompile(`web console: (http://\S+)`))
	if !ok {
		cancel()
		t.Fatalf("agent sim printed no console URL\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	if _, ok := out.wait(wctx, regexp.MustCompile(`ready\s+the agent has converged`)); !ok {
		cancel()
		t.Fatalf("the simulated agent did not converge\nstdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("agent sim exited %d\nstderr:\n%s", code, errOut.String())
		}
	}
	t.Cleanup(stop)
	return out, m[1], stop
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// The console in a real browser against `agent sim`: it loads without
// console errors, shows live readings, sends desired changes through the
// shadow service that reach the simulated hardware (or are rejected with
// their reason), injects faults the agent recovers from, fits a phone, and
// reconnects its stream after the server restarts.
func TestBrowserConsoleAgainstSim(t *testing.T) {
	bin := findChromium(t)
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last: after the browser and the sims are gone
	dir := artifactDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out, consoleURL, stopSim := startSim(ctx, t, "127.0.0.1:0")
	u, _ := url.Parse(consoleURL)
	br := startChromium(ctx, t, bin)
	br.page(ctx, t, "Page.navigate", map[string]any{"url": consoleURL}, nil)

	short := 15 * time.Second
	br.waitFor(ctx, t, "the page to go live", `document.getElementById("live").textContent === "page: live"`, short)
	br.waitFor(ctx, t, "the agent online", `document.getElementById("conn").textContent.startsWith("cloud: online")`, short)
	br.waitFor(ctx, t, "the fan row", `document.querySelector('tr[data-key="fan"] input:not([disabled])')`, short)

	// Every field has a label and every button a name.
	unlabelled := br.waitFor(ctx, t, "the accessibility checks", `(() => {
		const bad = [...document.querySelectorAll("input")].filter(i => i.labels.length === 0).map(i => i.id || i.outerHTML)
			.concat([...document.querySelectorAll("button")].filter(b => b.textContent.trim() === "").map(b => b.outerHTML));
		return JSON.stringify(bad);
	})()`, short)
	if string(unlabelled) != `"[]"` {
		t.Errorf("fields without a label or buttons without a name: %s", unlabelled)
	}

	// A desired change typed on the page (keyboard only) reaches the fake
	// hardware through the shadow service and shows as applied.
	br.typeAndEnter(ctx, t, `tr[data-key="fan"] input`, "42")
	br.waitFor(ctx, t, "fan applied", `(() => { const r = document.querySelector('tr[data-key="fan"]');
		return r.querySelector(".result").textContent.startsWith("applied") && r.querySelector(".hardware").textContent === "42"; })()`, short)
	wctx, wcancel := context.WithTimeout(ctx, short)
	if _, ok := out.wait(wctx, regexp.MustCompile(`pwm\s+fan GPIO18 → 42 %`)); !ok {
		t.Errorf("the fake HAL's fan PWM never went to 42 %%:\n%s", out.String())
	}
	wcancel()
	lat := br.waitFor(ctx, t, "the fan's latency", `document.querySelector('tr[data-key="fan"] .latency').textContent.endsWith("s") && document.querySelector('tr[data-key="fan"] .latency').textContent`, short)
	t.Logf("fan latency shown: %s", lat)

	// An invalid value shows its rejection reason; the hardware stays.
	br.typeAndEnter(ctx, t, `tr[data-key="fan"] input`, "150")
	reason := br.waitFor(ctx, t, "fan rejected", `(() => { const r = document.querySelector('tr[data-key="fan"] .result');
		return r.textContent.startsWith("rejected") && r.querySelector(".reason") && r.querySelector(".reason").textContent; })()`, short)
	var why string
	_ = json.Unmarshal(reason, &why)
	if !strings.Contains(why, "outside 0…100") {
		t.Errorf("rejection reason %s, want the range", reason)
	}
	br.waitFor(ctx, t, "the rejection in the events", `document.querySelector('#events li[data-kind="reject"]')`, short)

	// The room cools towards the ambient temperature: the reading moves.
	first := br.waitFor(ctx, t, "a temperature value", `(() => { const v = document.querySelector('[data-sensor="temperature"] .value').textContent; return v !== "" && v !== "—" && v; })()`, short)
	changed := br.waitFor(ctx, t, "the temperature to change", fmt.Sprintf(`(() => { const v = document.querySelector('[data-sensor="temperature"] .value').textContent; return v !== %s && v; })()`, first), 30*time.Second)
	t.Logf("temperature %s → %s", first, changed)
	br.waitFor(ctx, t, "the temperature chart", `document.querySelector('[data-sensor="temperature"] polyline').getAttribute("points").split(" ").length >= 2`, short)

	if errs := br.errors(); len(errs) > 0 {
		t.Errorf("console errors on the page:\n%s", strings.Join(errs, "\n"))
	}
	shot := br.screenshot(ctx, t, dir, "console-desktop.png", true)
	t.Logf("screenshot: %s", shot)

	// Faults: the climate sensor stops answering, then answers again; the
	// broker restarts and the agent reconnects.
	br.waitFor(ctx, t, "the fault buttons", `document.querySelector('button[data-fault="i2c_nack"][data-device="climate"]')`, short)
	if _, err := br.eval(ctx, `document.querySelector('button[data-fault="i2c_nack"][data-device="climate"]').click()`); err != nil {
		t.Fatal(err)
	}
	br.waitFor(ctx, t, "a sensor error", `document.querySelector('#events li[data-kind="sensor_error"]') && document.querySelector('[data-sensor="temperature"] .value').textContent === "error"`, short)
	if _, err := br.eval(ctx, `document.querySelector('button[data-fault="clear"][data-device="climate"]').click()`); err != nil {
		t.Fatal(err)
	}
	br.waitFor(ctx, t, "the climate sensor back", `document.getElementById("faultmsg").textContent.endsWith("done.") && document.querySelector('[data-sensor="temperature"] .value').textContent !== "error"`, 30*time.Second)
	if _, err := br.eval(ctx, `document.querySelector('button[data-fault="restart_broker"]').click()`); err != nil {
		t.Fatal(err)
	}
	br.waitFor(ctx, t, "the agent back online after the broker restart", `(() => { const c = document.getElementById("conn").textContent; return c.startsWith("cloud: online") && c.includes("(1 drop)"); })()`, 30*time.Second)
	br.waitFor(ctx, t, "the reconnect in the events", `document.querySelector('#events li[data-kind="online"]')`, short)
	if errs := br.errors(); len(errs) > 0 {
		t.Errorf("console errors on the page:\n%s", strings.Join(errs, "\n"))
	}

	// Phone width: nothing wider than the screen.
	br.page(ctx, t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}, nil)
	br.waitFor(ctx, t, "the page to fit 390 px", `document.documentElement.scrollWidth <= window.innerWidth + 1`, short)
	t.Logf("screenshot: %s", br.screenshot(ctx, t, dir, "console-phone.png", false))
	br.page(ctx, t, "Emulation.clearDeviceMetricsOverride", nil, nil)

	// The server restarts on the same address: the stream reconnects.
	stopSim()
	br.waitFor(ctx, t, "the page to notice the server is gone", `document.getElementById("live").textContent.includes("reconnecting")`, short)
	startSim(ctx, t, u.Host)
	br.waitFor(ctx, t, "the page live again", `document.getElementById("live").textContent === "page: live" && document.getElementById("conn").textContent.startsWith("cloud: online")`, 30*time.Second)
	// The new agent knows nothing of the old run's fan change.
	br.waitFor(ctx, t, "the new run's state", `document.querySelector('tr[data-key="fan"] .hardware').textContent === "0"`, short)
}
