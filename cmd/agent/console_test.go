package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/localcloud"
)

func TestConsoleTokenIsGeneratedOffLoopbackOnly(t *testing.T) {
	lan := &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8750}
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8750}
	a, _ := consoleToken(lan, "")
	b, _ := consoleToken(lan, "")
	if len(a) != 32 || a == b {
		t.Errorf("generated tokens %q, %q: want two different 128-bit hex tokens", a, b)
	}
	if tok, _ := consoleToken(lan, "given"); tok != "given" {
		t.Errorf("a given token was replaced by %q", tok)
	}
	if tok, _ := consoleToken(loop, ""); tok != "" {
		t.Errorf("loopback got token %q, want none", tok)
	}
}

// `agent sim` prints its console's URL and serves the page until it stops;
// `--http off` serves nothing.
func TestSimServesItsConsole(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := newSimOut()
	var errOut lockedBuffer
	sctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, &env{stdout: out, stderr: &errOut}, []string{"sim", "--scenario", "none", "--http", "127.0.0.1:0"})
	}()
	m, ok := out.wait(ctx, regexp.MustCompile(`web console: (http://127\.0\.0\.1:\d+/)\n`))
	if !ok {
		stop()
		t.Fatalf("no console URL; exit %d\n%s\n%s", <-done, out.String(), errOut.String())
	}
	if _, ok := out.wait(ctx, regexp.MustCompile(`ready\s+the agent has converged`)); !ok {
		stop()
		t.Fatalf("the agent did not converge; exit %d\n%s\n%s", <-done, out.String(), errOut.String())
	}
	for _, p := range []string{"", "api/status"} {
		res, err := http.Get(m[1] + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", m[1]+p, res.StatusCode)
		}
	}
	// Read-only by default.
	res, err := http.Post(m[1]+"api/desired", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("POST without --http-write: %d, want 403", res.StatusCode)
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if _, err := http.Get(m[1]); err == nil {
		t.Error("the console still answers after agent sim returned")
	}

	code, stdout, _ := runAgentCmd(t, "sim", "--scenario", "none", "--http", "off", "--duration", "100ms")
	if code != 0 || regexp.MustCompile(`web console`).MatchString(stdout) {
		t.Errorf("--http off: exit %d, stdout:\n%s", code, stdout)
	}
}

// `agent run --http ADDR --http-write`: the console's desired change goes
// out through the agent's own shadow client, comes back as a delta and
// switches the (fake) relay.
func TestRunConsoleChangesDesiredThroughTheShadow(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	o := localcloud.DefaultOptions()
	o.Listen, o.RatePerThing, o.MaxInFlight = "127.0.0.1:0", 0, 0
	cloud, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cloud.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	_, port, _ := net.SplitHostPort(cloud.Endpoints()[0].Addr.String())
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(daemonConfig, filepath.Join(dir, "state"), port)), 0o600); err != nil {
		t.Fatal(err)
	}
	h := fake.New()
	newBME(h)
	logs := newDaemonLog()
	started := make(chan *agent.Agent, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- runAgent(runCtx, &env{stdout: io.Discard, stderr: logs}, runOptions{
			configPath: cfgPath, logFormat: "json", logLevel: "info",
			deps:    agent.Deps{HAL: h, StopTimeout: time.Second},
			web:     &consoleFlags{addr: "127.0.0.1:0", write: true},
			started: func(a *agent.Agent) { started <- a },
		})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runAgent: %v", err)
		}
	}()
	a := <-started
	select {
	case <-a.Ready():
	case <-ctx.Done():
		t.Fatal("the agent did not converge")
	}
	u := regexp.MustCompile(`"url":"(http://127\.0\.0\.1:\d+/)"`).FindStringSubmatch(logs.String())
	if u == nil {
		t.Fatalf("no console URL in the log:\n%s", logs.String())
	}
	res, err := http.Post(u[1]+"api/desired", "application/json", strings.NewReader(`{"key":"heater","value":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/desired: %d %s", res.StatusCode, body)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := h.WaitOp(wctx, func(op fake.Op) bool {
		return op.Kind == fake.OpSet && op.Name == "pinctrl-bcm2711/17" && bool(op.Level)
	}); err != nil {
		t.Fatalf("the relay was never switched on: %v\n%s", err, logs.String())
	}
}
