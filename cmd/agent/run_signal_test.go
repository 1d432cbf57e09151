package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud"
)

// The real binary under real signals, as systemd runs it: READY=1 once it
// has converged (its relay cannot open on this machine, which is reported
// as a fault and does not stop it), then SIGTERM → STOPPING=1 and exit 0
// within the stop bound.
func TestRunBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	o := localcloud.DefaultOptions()
	o.Listen, o.RatePerThing, o.MaxInFlight = "127.0.0.1:0", 0, 0
	cloud, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cloud.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(cloud.Endpoints()[0].Addr.String())

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	cfg := fmt.Sprintf(`thing: sig1
board: pi4b
state_dir: %s
connection: {endpoint: 127.0.0.1, port: %s, transport: tcp}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
shadows:
  - desired:
      heater: {device: heater, boot: false}
`, filepath.Join(dir, "state"), port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ns := newNotifySocket(t)
	bin := buildAgent(t)
	cmd := exec.CommandContext(ctx, bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path)
	logs := newDaemonLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		cloud.Close()
	}()
	ns.expect(t, "READY=1")
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ns.expect(t, "STOPPING=1")
	select {
	case err := <-exited:
		exited <- err // for the deferred wait
		if err != nil {
			t.Fatalf("agent run after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("agent run did not exit within 20s of SIGTERM:\n%s", logs)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}
