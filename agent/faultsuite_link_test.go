//go:build faults

package agent

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/shadowsync"
)

// silentLink is a TCP proxy that can go silent without closing anything,
// as a Wi-Fi that drops every packet does: while silent no byte and no
// FIN/RST crosses in either direction (new connections are accepted and
// then hear nothing either); healed, traffic flows again.
type silentLink struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	quiet  bool
	healed chan struct{} // closed when quiet ends
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
	closed bool
}

func newSilentLink(t *testing.T, target string) *silentLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &silentLink{ln: ln, target: target, healed: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(l.healed)
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(l.close)
	return l
}

func (l *silentLink) addr() string { return l.ln.Addr().String() }

func (l *silentLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns[c], l.conns[up] = true, true
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(c, up)
		go l.pipe(up, c)
	}
}

// gate blocks while the link is silent; false once the link is closed.
func (l *silentLink) gate() bool {
	l.mu.Lock()
	ch, closed := l.healed, l.closed
	l.mu.Unlock()
	<-ch
	return !closed
}

func (l *silentLink) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		// Bytes read, or an EOF, while silent are held back until the link
		// heals: the other side must see nothing at all.
		if !l.gate() {
			break
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (l *silentLink) silence() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.quiet {
		l.quiet, l.healed = true, make(chan struct{})
	}
}

func (l *silentLink) heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.quiet {
		l.quiet = false
		close(l.healed)
	}
}

func (l *silentLink) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.quiet {
		l.quiet = false
		close(l.healed)
	}
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
	l.wg.Wait()
}

// The MQTT keep-alive of the scenario (AWS IoT's minimum) and iot's ping
// timeout (min(10 s, keep-alive)). paho checks both on a 5 s tick, so a
// silent link is noticed at most keep-alive + ping timeout + two ticks after
// the last byte received.
const (
	silentKeepAlive   = 30 * time.Second
	silentPingTimeout = 10 * time.Second
	pahoTick          = 5 * time.Second
)

// TestFaultSilentLink makes the link go silent without closing. Asserts:
// the agent notices within keep-alive + ping timeout (+ paho's check ticks);
// after the link heals it reconnects within a few backoff steps; desired
// changes made during the silence are applied once, and a sensor change and
// a button press that happened during the silence reach the shadow.
func TestFaultSilentLink(t *testing.T) {
	t.Parallel() // mostly waiting for the keep-alive
	r := newRig(t)
	l := newSilentLink(t, r.cloud.addr)
	direct := r.cloud.addr
	r.cloud.addr = l.addr() // the agent goes through the link, the app does not
	cfg := strings.Replace(greenhouse, "  transport: tcp\n", "  transport: tcp\n  keep_alive: 30s\n", 1)
	r.start(cfg)
	r.cloud.addr = direct
	r.ready()
	app := r.newApp("gh1")
	tick := func(d time.Duration) {
		m := r.rec.mark()
		r.clock.Advance(d)
		r.rec.waitFor(t, m, "iteration", kind(EventIteration))
	}
	bound := silentKeepAlive + silentPingTimeout + 2*pahoTick + 3*time.Second // slack: a loaded machine
	for i := 0; i < *faultSilences; i++ {
		temp := 21.0 + float64(i)
		fan := 30 + 10*i
		m := r.rec.mark()
		start := time.Now()
		l.silence()
		// While the agent still believes it is online: a reading and a press.
		r.bme.SetTemperature(temp)
		tick(time.Second)
		pressed := i%2 == 0
		if err := r.hal.SetInput("pinctrl-bcm2711/27", !pressed); err != nil { // active low
			t.Fatal(err)
		}
		r.clock.Advance(20 * time.Millisecond)
		r.rec.waitFor(t, m, "button reading during the silence", func(e Event) bool {
			return e.Kind == EventSensor && e.Key == "pressed" && e.Value == pressed
		})
		app.desire(t, `{"heater": true}`)
		app.desire(t, `{"heater": false, "fan": `+itoa(fan)+`}`)

		deadline := time.NewTimer(bound + 5*time.Second)
		var offlineAt time.Time
		for offlineAt.IsZero() {
			select {
			case <-deadline.C:
				t.Fatalf("silence %d: still online %v after the link went silent (bound %v)", i+1, time.Since(start).Round(time.Second), bound)
			default:
			}
			for _, e := range r.rec.since(m) {
				if e.Kind == EventOffline {
					offlineAt = time.Now()
				}
			}
			if offlineAt.IsZero() {
				waitNext(r.rec, m, deadline.C)
			}
		}
		deadline.Stop()
		detect := offlineAt.Sub(start)
		if detect > bound {
			t.Errorf("silence %d: noticed after %v, bound keep-alive %v + ping timeout %v + 2×%v tick = %v", i+1, detect.Round(time.Millisecond), silentKeepAlive, silentPingTimeout, pahoTick, bound)
		}
		ops := len(r.hal.Ops())
		m = r.rec.mark()
		healed := time.Now()
		l.heal()
		r.rec.waitFor(t, m, "online after the link healed", kind(EventOnline))
		back := time.Since(healed)
		app.waitDoc(t, "changes during the silence applied and reported", func(d *shadowsync.Document) bool {
			f, _ := num(d.Reported["fan"])
			tt, _ := num(d.Reported["temperature"])
			return d.Reported["heater"] == false && int(f) == fan && tt == temp && d.Reported["pressed"] == pressed && len(d.Delta) == 0
		})
		if n := count(r.hal.Ops(), ops, "pwm-set", fanPWM); n > 1 {
			t.Errorf("silence %d: fan set %d times after the link healed, want once", i+1, n)
		}
		t.Logf("silence %d: noticed after %v (bound %v), online %v after healing", i+1, detect.Round(time.Millisecond), bound, back.Round(time.Millisecond))
	}
}

// waitNext returns when the recorder has a new event or stop fires.
func waitNext(r *recorder, _ int, stop <-chan time.Time) {
	r.mu.Lock()
	ch := r.ch
	r.mu.Unlock()
	select {
	case <-ch:
	case <-stop:
	case <-time.After(100 * time.Millisecond): // the agent's heartbeat also wakes it; bound the wait
	}
}

func itoa(n int) string { return strings.TrimSpace(jsonValue(n)) }
