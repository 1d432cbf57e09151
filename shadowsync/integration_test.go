package shadowsync

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
)

// Integration tests: the client over real MQTT (package iot on paho)
// against the local cloud, embedded and attached to mosquitto.

// startCloud runs a local cloud with AWS's limits on addr ("127.0.0.1:0"
// for a free port), storing shadows in dir, until stopped or the test ends.
func startCloud(t *testing.T, addr, dir string) (*localcloud.Server, string) {
	t.Helper()
	o := localcloud.DefaultOptions()
	o.Listen, o.DataDir = addr, dir
	return runCloud(t, o)
}

func runCloud(t *testing.T, o localcloud.Options) (*localcloud.Server, string) {
	t.Helper()
	s, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var ep string
	if eps := s.Endpoints(); len(eps) > 0 {
		ep = eps[0].Addr.String()
	}
	return s, ep
}

// device is a shadowsync client on an iot connection (NewIOT follows the
// online events), plus a signal on every online event for the test.
type device struct {
	iot    *iot.Client
	shadow *Client
	online chan struct{} // receives on every EventOnline
}

func connectDevice(t *testing.T, addr, id string, opts Options) *device {
	t.Helper()
	ic, err := iot.New(iot.Config{
		Endpoint: addr, Transport: iot.TransportTCP, ClientID: id,
		Backoff:        iot.BackoffConfig{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, Stable: time.Second, Jitter: iot.JitterNone},
		Queue:          iot.QueueConfig{Disabled: true},
		ConnectTimeout: wait, OperationTimeout: wait,
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.RetryBase == 0 {
		opts.RetryBase, opts.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	}
	sc, err := NewIOT(ic, opts)
	if err != nil {
		t.Fatal(err)
	}
	// A second consumer of the connection events, as the agent's status is.
	d := &device{iot: ic, shadow: sc, online: make(chan struct{}, 16)}
	watch, _ := ic.Watch(8)
	events := make(chan struct{})
	go func() {
		defer close(events)
		for ev := range watch {
			if ev.Type == iot.EventOnline {
				select {
				case d.online <- struct{}{}:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		sc.Close(ctx)
		ic.Close(ctx)
		<-events
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ic.Connect(ctx); err != nil {
		t.Fatalf("connect %s to %s: %v", id, addr, err)
	}
	return d
}

func (d *device) waitOnline(t *testing.T) {
	t.Helper()
	select {
	case <-d.online:
	case <-time.After(wait):
		t.Fatal("device did not come online")
	}
}

// appGet reads a shadow the way a cloud application does, on its own
// connection.
func appGet(t *testing.T, addr string, k Key) *Document {
	t.Helper()
	app := connectDevice(t, addr, fmt.Sprintf("app-%d", time.Now().UnixNano()), Options{})
	s, err := app.shadow.Open(ctxT(t), k, ShadowOptions{OnDemand: true, NoAutoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := s.Get(ctxT(t))
	if err != nil {
		t.Fatalf("app get %s: %v", k, err)
	}
	return doc
}

func num(v any) string {
	if n, ok := v.(json.Number); ok {
		return string(n)
	}
	return fmt.Sprint(v)
}

func TestLocalCloudRequestsDeltasAndReports(t *testing.T) {
	_, addr := startCloud(t, "127.0.0.1:0", "")
	dev := connectDevice(t, addr, "pi", Options{})
	app := connectDevice(t, addr, "app", Options{})
	classic, named := Key{Thing: "pi"}, Key{Thing: "pi", Name: "env"}
	ds := open(t, dev.shadow, classic, ShadowOptions{})
	dn := open(t, dev.shadow, named, ShadowOptions{OnDemand: true})
	as := open(t, app.shadow, classic, ShadowOptions{NoAutoSync: true})

	if _, err := as.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"led": "on"}}); err != nil {
		t.Fatal(err)
	}
	d := nextDelta(t, ds)
	if js(d.State) != `{"led":"on"}` {
		t.Fatalf("delta = %+v", d)
	}
	ds.Report(map[string]any{"led": "on", "temp": 21.5})
	dn.Report(map[string]any{"hum": 40})
	if err := ds.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := dn.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if m := ds.Mirror(); !m.InSync || num(m.Reported["temp"]) != "21.5" {
		t.Errorf("device mirror = %+v, want in sync with temp 21.5", m)
	}
	doc := appGet(t, addr, named)
	if js(doc.Reported) != `{"hum":40}` {
		t.Errorf("named shadow reported = %s", js(doc.Reported))
	}
	if _, err := as.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"led": "off"}, Version: 1}); !errorsIsConflict(err) {
		t.Errorf("stale versioned update: %v, want 409", err)
	}
}

func errorsIsConflict(err error) bool {
	rej, ok := err.(*RejectedError)
	return ok && rej.Code == 409 && rej.Message == "Version conflict"
}

// TestBrokerRestartDuringReportStream kills the local cloud while the
// device streams reported updates, changes desired while the device is
// away (through another server on the same data directory), and restarts
// the cloud on the same port: the device reconnects, resubscribes, gets
// the offline desired change and the latest reported state arrives.
func TestBrokerRestartDuringReportStream(t *testing.T) {
	dir := t.TempDir()
	srv1, addr := startCloud(t, "127.0.0.1:0", dir)
	// Failed reports wait 10s before retrying on their own, longer than
	// the test waits: only the reconnect (NewIOT → Reconnected) brings the
	// device back in time.
	dev := connectDevice(t, addr, "pi", Options{RetryBase: 10 * time.Second, RetryMax: 10 * time.Second})
	dev.waitOnline(t)
	k := Key{Thing: "pi"}
	s := open(t, dev.shadow, k, ShadowOptions{})

	const n = 300
	for i := 1; i <= n; i++ {
		if err := s.Report(map[string]any{"n": i, fmt.Sprint("k", i%7): i}); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 100:
			if err := s.Flush(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			if err := srv1.Close(); err != nil {
				t.Fatal(err)
			}
		case 200:
			// While the device is away, an app changes desired (on another
			// port, same data directory).
			side, sideAddr := startCloud(t, "127.0.0.1:0", dir)
			app := connectDevice(t, sideAddr, "app", Options{})
			as := open(t, app.shadow, k, ShadowOptions{NoAutoSync: true, OnDemand: true})
			if _, err := as.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"mode": "boost"}}); err != nil {
				t.Fatal(err)
			}
			app.shadow.Close(ctxT(t))
			app.iot.Close(ctxT(t))
			side.Close()
			startCloud(t, addr, dir)
		}
	}
	dev.waitOnline(t)
	// The resync delivers the desired change made while offline.
	deadline := time.After(wait)
	for {
		var d Delta
		select {
		case d = <-s.Deltas():
		case <-deadline:
			t.Fatal("no delta with the offline desired change")
		}
		// The resync's delta (Resync set) may already be replaced by the
		// delta of the re-published report: both carry the change.
		if d.State["mode"] == "boost" {
			break
		}
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	doc := appGet(t, addr, k)
	if num(doc.Reported["n"]) != fmt.Sprint(n) {
		t.Errorf("cloud reported n = %v, want the latest %d", doc.Reported["n"], n)
	}
	for j := 0; j < 7; j++ {
		last := n - ((n - j) % 7)
		if got := num(doc.Reported[fmt.Sprint("k", j)]); got != fmt.Sprint(last) {
			t.Errorf("cloud reported k%d = %s, want %d", j, got, last)
		}
	}
	if st := dev.iot.Stats(); st.Connects < 2 {
		t.Errorf("device connects = %d, want a reconnect", st.Connects)
	}
	if m := s.Mirror(); m.Desired["mode"] != "boost" {
		t.Errorf("device mirror desired = %s", js(m.Desired))
	}
}

// mosquitto runs the broker on a fixed loopback port; restart stops it
// and starts it again on the same port.
type mosquitto struct {
	t    *testing.T
	bin  string
	conf string
	port string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func startMosquitto(t *testing.T) (*mosquitto, string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("mosquitto is not installed but CI is set: scripts/test.sh installs it")
			}
			t.Skip("mosquitto not installed (apt-get install mosquitto); skipping")
		}
		bin = "/usr/sbin/mosquitto"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type information\n", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, bin: bin, conf: conf, port: port}
	m.start()
	t.Cleanup(m.stop)
	return m, addr
}

func (m *mosquitto) start() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "-c", m.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		m.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	done, ready := make(chan struct{}), make(chan struct{})
	var logs strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		readyOnce := sync.Once{}
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Opening ipv4 listen socket on port "+m.port) {
				readyOnce.Do(func() { close(ready) })
			}
		}
		cmd.Wait()
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		m.t.Fatalf("mosquitto exited: %s", logs.String())
	case <-time.After(wait):
		m.t.Fatalf("mosquitto did not open port %s", m.port)
	}
	// The socket opens right after that log line; poll the port (not a
	// goroutine synchronisation).
	for deadline := time.Now().Add(wait); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+m.port, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("mosquitto not accepting: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (m *mosquitto) stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

func TestMosquittoWithLocalCloudAttachedSurvivesBrokerRestart(t *testing.T) {
	mq, addr := startMosquitto(t)
	o := localcloud.DefaultOptions()
	o.Listen, o.Broker, o.DataDir = "", "tcp://"+addr, t.TempDir()
	runCloud(t, o)

	dev := connectDevice(t, addr, "pi", Options{})
	dev.waitOnline(t)
	app := connectDevice(t, addr, "app", Options{})
	k := Key{Thing: "pi", Name: "cfg"}
	s := open(t, dev.shadow, k, ShadowOptions{})
	as := open(t, app.shadow, k, ShadowOptions{NoAutoSync: true})

	if _, err := as.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"rate": 5}}); err != nil {
		t.Fatal(err)
	}
	if d := nextDelta(t, s); num(d.State["rate"]) != "5" {
		t.Fatalf("delta = %+v", d)
	}
	for i := 1; i <= 50; i++ {
		s.Report(map[string]any{"rate": 5, "n": i})
		if i == 25 {
			mq.stop()
			mq.start()
		}
	}
	dev.waitOnline(t)
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// The app's own connection also came back; read through it.
	ctx := ctxT(t)
	doc, err := as.Get(ctx)
	for err != nil && ctx.Err() == nil {
		// The attached service resubscribes on its own schedule after the
		// restart; until then requests time out.
		doc, err = as.Get(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if num(doc.Reported["n"]) != "50" || doc.Delta != nil {
		t.Errorf("after the broker restart cloud has reported %s delta %s, want n=50 and in sync", js(doc.Reported), js(doc.Delta))
	}
}
