// Package sdnotify implements the systemd service notification protocol
// (sd_notify(3)) with the standard library: datagrams of "KEY=VALUE" lines
// sent to the unix socket named by $NOTIFY_SOCKET, and a watchdog that pings
// only while the caller says the service is alive.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Messages systemd understands.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Reloading = "RELOADING=1"
	Watchdog  = "WATCHDOG=1"
)

// ErrNoSocket: NOTIFY_SOCKET is not set (not started by systemd with
// Type=notify). Callers usually ignore it.
var ErrNoSocket = errors.New("sdnotify: NOTIFY_SOCKET is not set")

// Notifier sends notifications to one socket. The zero value (no socket)
// sends nothing and returns ErrNoSocket.
type Notifier struct {
	// Socket is the socket path; a leading '@' is an abstract socket.
	Socket string
}

// FromEnv returns a Notifier for getenv("NOTIFY_SOCKET").
func FromEnv(getenv func(string) string) Notifier {
	return Notifier{Socket: getenv("NOTIFY_SOCKET")}
}

// Enabled reports whether a socket is set.
func (n Notifier) Enabled() bool { return n.Socket != "" }

// Notify sends the given lines as one datagram.
func (n Notifier) Notify(lines ...string) error {
	if n.Socket == "" {
		return ErrNoSocket
	}
	name := n.Socket
	if strings.HasPrefix(name, "@") {
		name = "\x00" + name[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: connect to NOTIFY_SOCKET %s: %w", n.Socket, err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.Socket, err)
	}
	return nil
}

// WatchdogInterval returns how often to ping: half of $WATCHDOG_USEC, as
// sd_watchdog_enabled(3) recommends. Zero when the watchdog is off, or when
// $WATCHDOG_PID names another process.
func WatchdogInterval(getenv func(string) string, pid int) time.Duration {
	us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// RunWatchdog sends WATCHDOG=1 every interval while alive() is true, until
// ctx is done. A stuck service (alive false) stops the pings, so systemd
// restarts it when WatchdogSec runs out. tick, if not nil, replaces the
// ticker (tests); onSkip, if not nil, is called for every ping withheld.
func (n Notifier) RunWatchdog(ctx context.Context, interval time.Duration, alive func() bool, tick <-chan time.Time, onSkip func()) {
	if interval <= 0 && tick == nil {
		return
	}
	if tick == nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if alive() {
				_ = n.Notify(Watchdog)
			} else if onSkip != nil {
				onSkip()
			}
		}
	}
}
