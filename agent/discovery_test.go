package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/localcloud/devcerts"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// ggCloud is the local cloud as a Greengrass core: plain MQTT (for the
// app), MQTT over mutual TLS (the core) and the discovery listener.
func ggCloud(t *testing.T, pki string) (c *cloud, mqtts, disc string) {
	t.Helper()
	return ggCloudAt(t, pki, "127.0.0.1:0", "")
}

// ggCloudAt is ggCloud with its discovery listener at discListen and its
// shadows in dataDir ("": memory).
func ggCloudAt(t *testing.T, pki, discListen, dataDir string) (c *cloud, mqtts, disc string) {
	t.Helper()
	o := localcloud.DefaultOptions()
	o.Listen, o.TLSListen, o.DiscoveryListen = "127.0.0.1:0", "127.0.0.1:0", discListen
	o.DataDir = dataDir
	o.TLSCertFile = filepath.Join(pki, devcerts.ServerCertFile)
	o.TLSKeyFile = filepath.Join(pki, devcerts.ServerKeyFile)
	o.ClientCAFile = filepath.Join(pki, devcerts.CACertFile)
	o.RatePerThing, o.MaxInFlight = 0, 0
	s, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		s.Close()
		t.Fatal(err)
	}
	c = &cloud{t: t, srv: s}
	t.Cleanup(c.stop)
	for _, ep := range s.Endpoints() {
		switch ep.Name {
		case "mqtt":
			c.addr = ep.Addr.String()
		case "mqtts":
			mqtts = ep.Addr.String()
		case "discovery":
			disc = ep.Addr.String()
		}
	}
	return c, mqtts, disc
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// ggConfig is one relay, with discovery at disc and endpoint as the
// fallback.
func ggConfig(pki, endpoint, disc string) string {
	return `
thing: gg1
board: pi4b
state_dir: ${STATE}
connection:
  endpoint: "` + endpoint + `"
  cert: ` + filepath.Join(pki, devcerts.DeviceCertFile) + `
  key: ` + filepath.Join(pki, devcerts.DeviceKeyFile) + `
  ca: ` + filepath.Join(pki, devcerts.CACertFile) + `
  backoff: {base: 20ms, max: 200ms, stable: 1s, jitter: none}
  discovery:
    endpoint: "` + disc + `"
    attempts: 1
    timeout: 2s
    connect_timeout: 2s
devices:
  - {id: heater, driver: relay, pin: GPIO17}
shadows:
  - desired:
      heater: {device: heater, boot: false}
`
}

// ggAgent is an agent running on the fake HAL until the test ends.
type ggAgent struct {
	*Agent
	hal    *fake.HAL
	cancel context.CancelFunc
	done   chan error
}

// startGG starts an agent on yaml (firstGet: Deps.FirstGetWait, 0 for the
// default) without waiting for anything.
func startGG(t *testing.T, yaml, state string, firstGet time.Duration) *ggAgent {
	t.Helper()
	cfg := parseConfig(t, yaml, state)
	h := fake.New(fake.WithPins("pinctrl-bcm2711/17"))
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ag, err := New(cfg, Deps{HAL: h, Logger: log, StopTimeout: 3 * time.Second, FirstGetWait: firstGet,
		Shadow: shadowsync.Options{Timeout: 2 * time.Second, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	g := &ggAgent{Agent: ag, hal: h, cancel: cancel, done: done}
	go func() { done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Error(err)
		}
	})
	return g
}

// stop stops the agent and returns Run's error (once; later calls: nil).
func (g *ggAgent) stop() error {
	if g.done == nil {
		return nil
	}
	done := g.done
	g.done = nil
	g.cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		return errors.New("agent did not stop")
	}
}

// ready waits until the agent has converged.
func (g *ggAgent) ready(t *testing.T) {
	t.Helper()
	select {
	case <-g.Ready():
	case err := <-g.done:
		t.Fatalf("agent stopped: %v", err)
	case <-time.After(wait):
		t.Fatalf("agent never converged: %+v", g.Status().Connection)
	}
}

// runGG runs an agent on yaml until the test ends and returns it once
// converged.
func runGG(t *testing.T, yaml, state string) *Agent {
	t.Helper()
	g := startGG(t, yaml, state, 0)
	g.ready(t)
	return g.Agent
}

// heaterOpened waits until the heater's line is opened and returns the op.
func (g *ggAgent) heaterOpened(t *testing.T, why string) fake.Op {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	op, err := g.hal.Log().Wait(ctx, fake.Match(fake.OpOpen, "pinctrl-bcm2711/17"))
	if err != nil {
		t.Fatalf("the heater was not opened %s: %v", why, err)
	}
	return op
}

// heaterFollows: a desired change made in the cloud reaches the relay and
// comes back reported.
func heaterFollows(t *testing.T, c *cloud, v bool) {
	t.Helper()
	app := newApp(t, c, "gg1")
	defer app.close()
	app.desire(t, `{"heater":`+strconv.FormatBool(v)+`}`)
	app.waitDoc(t, "heater reported "+strconv.FormatBool(v), func(d *shadowsync.Document) bool {
		return d.Reported["heater"] == v
	})
}

func TestAgentThroughGreengrassDiscovery(t *testing.T) {
	pki := t.TempDir()
	if err := devcerts.WriteSet(pki, "gg1", false); err != nil {
		t.Fatal(err)
	}
	c, mqtts, disc := ggCloud(t, pki)
	state := t.TempDir()
	// The endpoint (fallback) is a closed port: only the core can work.
	yaml := ggConfig(pki, "127.0.0.1:"+freePort(t), disc)

	t.Run("discovers the core and keeps the shadow through it", func(t *testing.T) {
		ag := runGG(t, yaml, state)
		if ep := ag.Status().Connection.Endpoint; !strings.Contains(ep, "mqtts://"+mqtts) || !strings.Contains(ep, "Greengrass core "+localcloud.DiscoveryCoreArn) {
			t.Errorf("status endpoint %q, want the local core at %s", ep, mqtts)
		}
		heaterFollows(t, c, true)
		if _, err := os.Stat(filepath.Join(state, DiscoveryDir, discoveryCache)); err != nil {
			t.Errorf("discovery answer not kept: %v", err)
		}
	})
	t.Run("offline start uses the last answer", func(t *testing.T) {
		ag := runGG(t, ggConfig(pki, "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)), state)
		if ep := ag.Status().Connection.Endpoint; !strings.Contains(ep, "mqtts://"+mqtts) {
			t.Errorf("status endpoint %q, want the cached core at %s", ep, mqtts)
		}
		heaterFollows(t, c, false)
	})
	t.Run("falls back to the endpoint", func(t *testing.T) {
		ag := runGG(t, ggConfig(pki, mqtts, "127.0.0.1:"+freePort(t)), t.TempDir())
		if ep := ag.Status().Connection.Endpoint; !strings.Contains(ep, "discovery fallback") {
			t.Errorf("status endpoint %q, want the fallback", ep)
		}
		heaterFollows(t, c, true)
	})
}

// A device that boots with no network must not leave its outputs undriven
// while discovery runs to its timeouts: past FirstGetWait they are opened at
// their boot values, and a stop during discovery is a normal stop.
func TestDiscoveryDoesNotHoldTheOutputs(t *testing.T) {
	pki := t.TempDir()
	if err := devcerts.WriteSet(pki, "gg1", false); err != nil {
		t.Fatal(err)
	}
	// A discovery endpoint that accepts and never answers (a link that
	// drops everything would do the same, one timeout per try).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range held {
			c.Close()
		}
	})
	yaml := strings.Replace(ggConfig(pki, "127.0.0.1:"+freePort(t), ln.Addr().String()), "timeout: 2s", "timeout: 5m", 1)
	g := startGG(t, yaml, t.TempDir(), 50*time.Millisecond)
	if op := g.heaterOpened(t, "while discovery hung"); op.Level {
		t.Errorf("heater opened at %v, want its boot value (off)", op.Level)
	}
	if err := g.stop(); err != nil {
		t.Errorf("a stop during discovery: %v, want a normal stop (nil)", err)
	}
}

// The core moves (a new address, as after a new DHCP lease or a replaced
// core machine): once no address of the answer and not the fallback
// answer, the agent asks discovery again and follows the core there,
// without a restart.
func TestAgentFollowsAMovedCore(t *testing.T) {
	pki := t.TempDir()
	if err := devcerts.WriteSet(pki, "gg1", false); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir() // the core keeps its shadows where it moves
	c1, mqtts1, disc := ggCloudAt(t, pki, "127.0.0.1:0", data)
	yaml := strings.Replace(ggConfig(pki, "127.0.0.1:"+freePort(t), disc), "    attempts: 1\n", "    attempts: 1\n    rediscover_interval: 1s\n", 1)
	ag := runGG(t, yaml, t.TempDir())
	heaterFollows(t, c1, true)

	c1.stop()
	c2, mqtts2, _ := ggCloudAt(t, pki, disc, data) // the same discovery service, the core elsewhere
	if mqtts2 == mqtts1 {
		t.Fatalf("the new core listens where the old one did (%s): nothing moved", mqtts2)
	}
	heaterFollows(t, c2, false)
	if ep := ag.Status().Connection.Endpoint; !strings.Contains(ep, "mqtts://"+mqtts2) {
		t.Errorf("status endpoint %q, want the moved core at %s", ep, mqtts2)
	}
}

// Without fallback the device waits for a core without blocking its
// start-up: the outputs get their boot values while discovery is refused,
// and once discovery answers (a core comes up, the thing joins a group) the
// agent connects through it, without a restart.
func TestAgentWaitsForACoreWithoutFallback(t *testing.T) {
	pki := t.TempDir()
	if err := devcerts.WriteSet(pki, "gg1", false); err != nil {
		t.Fatal(err)
	}
	disc := "127.0.0.1:" + freePort(t) // nothing there yet
	yaml := strings.Replace(ggConfig(pki, "127.0.0.1:"+freePort(t), disc), "    attempts: 1\n",
		"    attempts: 1\n    fallback: false\n    rediscover_interval: 1s\n", 1)
	g := startGG(t, yaml, t.TempDir(), 50*time.Millisecond)
	g.heaterOpened(t, "while discovery was refused")
	if ep := g.Status().Connection.Endpoint; ep != "Greengrass discovery (no core chosen yet)" {
		t.Errorf("status endpoint %q while no core is known", ep)
	}

	c, _, _ := ggCloudAt(t, pki, disc, "")
	g.ready(t) // it found the core that came up
	heaterFollows(t, c, true)
}
