package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 512)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	return string(b[:n])
}

func TestNotifySendsOneDatagram(t *testing.T) {
	c, path := listen(t)
	n := Notifier{Socket: path}
	if err := n.Notify(Ready, "STATUS=converged"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1\nSTATUS=converged" {
		t.Errorf("datagram %q", got)
	}
}

func TestNoSocket(t *testing.T) {
	if err := (Notifier{}).Notify(Ready); err != ErrNoSocket {
		t.Errorf("err = %v, want ErrNoSocket", err)
	}
	n := FromEnv(func(string) string { return "" })
	if n.Enabled() {
		t.Error("enabled without NOTIFY_SOCKET")
	}
}

func TestWatchdogInterval(t *testing.T) {
	env := map[string]string{"WATCHDOG_USEC": "30000000"}
	get := func(k string) string { return env[k] }
	if got := WatchdogInterval(get, 42); got != 15*time.Second {
		t.Errorf("interval %v, want 15s", got)
	}
	env["WATCHDOG_PID"] = "7"
	if got := WatchdogInterval(get, 42); got != 0 {
		t.Errorf("interval for another pid %v, want 0", got)
	}
	env["WATCHDOG_PID"] = "42"
	if got := WatchdogInterval(get, 42); got != 15*time.Second {
		t.Errorf("interval for our pid %v", got)
	}
	if got := WatchdogInterval(func(string) string { return "" }, 1); got != 0 {
		t.Errorf("no watchdog: %v", got)
	}
}

// Pings go only while alive; a stuck loop withholds them.
func TestWatchdogPingsOnlyWhileAlive(t *testing.T) {
	c, path := listen(t)
	n := Notifier{Socket: path}
	tick := make(chan time.Time)
	var alive atomic.Bool
	alive.Store(true)
	skipped := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.RunWatchdog(ctx, 0, alive.Load, tick, func() { skipped <- struct{}{} })
		close(done)
	}()
	tick <- time.Now()
	if got := recv(t, c); got != Watchdog {
		t.Fatalf("got %q, want WATCHDOG=1", got)
	}
	alive.Store(false)
	tick <- time.Now()
	<-skipped
	alive.Store(true)
	tick <- time.Now()
	if got := recv(t, c); got != Watchdog {
		t.Fatalf("got %q after recovery", got)
	}
	// Nothing else was sent while the loop was stuck.
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 64)); err == nil {
		t.Error("an extra datagram was sent")
	}
	cancel()
	<-done
}
