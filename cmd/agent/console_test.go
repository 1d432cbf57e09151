package main

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"go.uber.org/goleak"
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
