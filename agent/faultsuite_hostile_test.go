//go:build faults

package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// hostilePayloads are malformed or absurd messages for the shadow topics
// the agent subscribes to.
func hostilePayloads() map[string][]byte {
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	tooDeep := strings.Repeat("[", 100000)
	arr := "[" + strings.Repeat("0,", 40000) + "0]"
	return map[string][]byte{
		"empty":              {},
		"truncated":          []byte(`{"state":{"heater":tr`),
		"null":               []byte(`null`),
		"array":              []byte(`[1,2,3]`),
		"number":             []byte(`42`),
		"oversized":          []byte(strings.Repeat("x", 200<<10)),
		"deep nesting":       []byte(`{"state":` + deep + `,"version":1}`),
		"deeper than json":   []byte(`{"state":` + tooDeep),
		"huge array":         []byte(`{"state":{"fan":` + arr + `},"version":1}`),
		"state a string":     []byte(`{"state":"heater","version":"7"}`),
		"version a string":   []byte(`{"state":{"heater":true},"version":"7"}`),
		"version overflow":   []byte(`{"state":{"heater":true},"version":1e400}`),
		"version negative":   []byte(`{"state":{"heater":true},"version":-5}`),
		"version fraction":   []byte(`{"state":{"heater":true},"version":2.5}`),
		"invalid utf-8":      []byte("{\"state\":{\"he\xffater\":true},\"version\":1}"),
		"NUL in key":         []byte(`{"state":{"heater\u0000":true},"version":1}`),
		"lone surrogate":     []byte(`{"state":{"\ud800":true},"version":1}`),
		"BOM":                []byte("\xef\xbb\xbf{\"state\":{},\"version\":1}"),
		"huge client token":  []byte(`{"clientToken":"` + strings.Repeat("t", 100<<10) + `","state":{},"version":1}`),
		"metadata not a map": []byte(`{"state":{},"metadata":[1],"version":1,"timestamp":"x"}`),
	}
}

// TestFaultHostileInput sends malformed and oversized payloads to every
// shadow topic the agent subscribes to (through a local cloud that lets
// any client publish there, as a broker without ACLs would), then hostile desired values through the
// shadow service itself. Asserts: no payload moves an output or stops the
// agent; each bad desired value gets a rejected status naming the key;
// afterwards valid deltas are still applied.
func TestFaultHostileInput(t *testing.T) {
	r := newRig(t)
	openResponseTopics(r)
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true, "fan": 40}`)
	app.waitDoc(t, "applied", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return d.Reported["heater"] == true && f == 40 && len(d.Delta) == 0
	})

	// An observer proves each message was delivered (so the agent had to
	// handle it).
	observer := rawClient(t, r.cloud.addr, "observer")
	var delivered atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	prefix := "$aws/things/gh1/shadow/"
	topics := []string{"get/accepted", "get/rejected", "update/accepted", "update/rejected", "update/delta", "update/documents", "delete/accepted", "delete/rejected"}
	for _, tp := range topics {
		if err := observer.Subscribe(ctx, prefix+tp, iot.QoS1, func(iot.Message) { delivered.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	ops := len(r.hal.Ops())
	m := r.rec.mark()
	sent, refused := 0, 0
	for name, p := range hostilePayloads() {
		// An attacker's client per payload: the broker disconnects a client
		// whose packet exceeds its limit.
		attacker := rawClient(t, r.cloud.addr, fmt.Sprintf("attacker-%d", sent+refused))
		for _, tp := range topics {
			if _, err := attacker.Publish(ctx, prefix+tp, p, iot.QoS1); err != nil {
				// The broker's packet limit (AWS IoT's 128 KB) disconnects
				// the sender: only the oversized payload may end so.
				if name != "oversized" {
					t.Errorf("%s on %s: not delivered: %v", name, tp, err)
				}
				refused++
				break
			}
			sent++
		}
	}
	for delivered.Load() < int64(sent) {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of %d hostile messages delivered", delivered.Load(), sent)
		case <-time.After(10 * time.Millisecond): // polling a counter
		}
	}
	// A valid change after the barrage is applied, so everything before it
	// has been handled.
	app.desire(t, `{"fan": 41}`)
	app.waitDoc(t, "valid delta applied after the barrage", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return f == 41 && len(d.Delta) == 0
	})
	for _, op := range r.hal.Ops()[ops:] {
		if op.Kind == "set" || (op.Kind == "pwm-set" && (op.Duty < 0.40 || op.Duty > 0.42)) {
			t.Errorf("a hostile message moved an output: %v", op)
		}
	}
	for _, e := range r.rec.since(m) {
		if e.Kind == EventWrite && e.Key != "fan" {
			t.Errorf("write caused by hostile input: %+v", e)
		}
	}
	if !r.ag.Status().Running {
		t.Fatal("agent stopped")
	}
	t.Logf("%d hostile messages delivered, %d refused by the broker; agent still applying deltas", sent, refused)

	// Hostile desired values through the shadow service: each is rejected
	// with a status naming the key; the hardware is not touched.
	for _, tc := range []struct{ desired, key string }{
		{`{"heater": "true"}`, "heater"},
		{`{"heater": {"nested": {"deeper": true}}}`, "heater"},
		{`{"fan": [` + strings.TrimSuffix(strings.Repeat("50,", 1500), ",") + `]}`, "fan"},
		{`{"fan": "50"}`, "fan"},
		{`{"fan": 1e308}`, "fan"},
		{`{"fan": -0.0000001}`, "fan"},
		{`{"h\u00e9ater": true}`, "h\u00e9ater"},
		{`{"🔥": true}`, "🔥"},
		{`{"heater\u2028": true}`, "heater\u2028"},
	} {
		ops := len(r.hal.Ops())
		v := app.desire(t, tc.desired)
		d := app.waitDoc(t, "rejection of "+tc.desired, func(d *shadowsync.Document) bool {
			st := status(d, tc.key)
			ver, _ := num(st["version"])
			return st["status"] == "rejected" && int64(ver) >= v
		})
		if msg, _ := status(d, tc.key)["message"].(string); !strings.Contains(msg, tc.key) {
			t.Errorf("%s: rejection message %q does not name the key", tc.desired, msg)
		}
		for _, op := range r.hal.Ops()[ops:] {
			if op.Kind == "set" || op.Kind == "pwm-set" {
				t.Errorf("%s moved an output: %v", tc.desired, op)
			}
		}
		// Clear it so the next case starts from a clean desired.
		app.desire(t, `{"`+strings.ReplaceAll(tc.key, "\u2028", `\u2028`)+`": null}`)
	}
	app.desire(t, `{"heater": false, "fan": 42}`)
	app.waitDoc(t, "valid deltas applied after the hostile values", func(d *shadowsync.Document) bool {
		f, _ := num(d.Reported["fan"])
		return d.Reported["heater"] == false && f == 42 && len(d.Delta) == 0
	})
}

// TestFaultHostileThingName: a thing name that MQTT reserves is a clear
// configuration error naming the character, before anything connects.
func TestFaultHostileThingName(t *testing.T) {
	for _, name := range []string{"gh/1", "gh+1", "gh#1", "#", "+/+"} {
		yaml := strings.Replace(greenhouse, "thing: gh1", "thing: \""+name+"\"", 1)
		_, err := config.Parse("test.yaml", config.Options{
			ReadFile:  func(string) ([]byte, error) { return []byte(yaml), nil },
			LookupEnv: func(string) (string, bool) { return os.TempDir(), true },
		})
		if err == nil {
			t.Errorf("thing %q accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "MQTT topics reserve") || !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("thing %q: error %q does not name the thing and why", name, err)
		}
	}
}

// rawClient is a plain MQTT client of the local cloud.
func rawClient(t *testing.T, addr, id string) *iot.Client {
	t.Helper()
	c, err := iot.New(iot.Config{Endpoint: addr, Transport: iot.TransportTCP, ClientID: id,
		Backoff: iot.BackoffConfig{Base: 20 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: iot.JitterNone},
		Queue:   iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// TestFaultSpoofedVersion: a well-formed message with a wrong-typed value
// and an absurd version on the delta and accepted topics. Asserts: the
// local cloud refuses it (only the shadow service publishes there); no
// output moves; the agent still applies the next genuine delta.
//
// With -faults.known the same runs against a broker that lets anyone
// publish there (an external broker without ACLs, an over-broad AWS IoT
// policy): a known gap (RELIABILITY.md), the mirror adopts the version and
// ignores genuine deltas until a restart.
func TestFaultSpoofedVersion(t *testing.T) {
	t.Run("local cloud", func(t *testing.T) { spoofVersion(t, false) })
	t.Run("broker without ACL", func(t *testing.T) {
		if !*faultKnown {
			t.Skip("known gap: a spoofed response version wedges the shadow mirror (run with -faults.known)")
		}
		spoofVersion(t, true)
	})
}

func spoofVersion(t *testing.T, open bool) {
	r := newRig(t)
	if open {
		openResponseTopics(r)
	}
	r.start(greenhouse)
	r.ready()
	app := r.newApp("gh1")
	app.desire(t, `{"heater": true}`)
	app.waitDoc(t, "applied", func(d *shadowsync.Document) bool { return d.Reported["heater"] == true && len(d.Delta) == 0 })
	attacker := rawClient(t, r.cloud.addr, "spoofer")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ops := len(r.hal.Ops())
	m := r.rec.mark()
	for tp, p := range map[string]string{
		"update/delta":     `{"state":{"heater":"on"},"version":999999999,"timestamp":1}`,
		"update/accepted":  `{"state":{"desired":{"heater":"on"}},"version":999999999,"timestamp":1}`,
		"update/documents": `{"previous":null,"current":{"state":{"desired":{"heater":"on"}},"version":999999999},"timestamp":1}`,
	} {
		_, err := attacker.Publish(ctx, "$aws/things/gh1/shadow/"+tp, []byte(p), iot.QoS1)
		if !open {
			if err == nil {
				t.Fatalf("the local cloud accepted a client's publish on %s", tp)
			}
			attacker = rawClient(t, r.cloud.addr, "spoofer-"+tp) // it was disconnected
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if open {
		r.rec.waitFor(t, m, "the spoofed delta reached the agent", kind(EventDelta))
	}
	app.desire(t, `{"heater": false}`)
	app.waitDoc(t, "genuine delta applied after the spoofed version", func(d *shadowsync.Document) bool {
		return d.Reported["heater"] == false && len(d.Delta) == 0
	})
	for _, op := range r.hal.Ops()[ops:] {
		if op.Kind == "set" && op.Level {
			t.Errorf("the spoofed value moved the heater: %v", op)
		}
	}
}

// openResponseTopics restarts the rig's cloud with the shadow response
// topics open to every client, so a test can play (or forge) the service.
func openResponseTopics(r *rig) {
	r.cloud.stop()
	r.cloud.opts = func(o *localcloud.Options) { o.OpenResponseTopics = true }
	r.cloud.start()
}
