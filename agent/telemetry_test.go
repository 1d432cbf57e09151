package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/iot"
)

// Telemetry streams through the iot offline queue: readings taken while
// the link is down are queued (status shows the depth) and delivered after
// the reconnect.
func TestTelemetryQueuedWhileOffline(t *testing.T) {
	r := newRig(t)
	r.link = newLink(t, r.cloud.addr)
	yaml := strings.Replace(greenhouse, "        round: 1\n", "        round: 1\n        publish: {topic: gh1/telemetry/temperature, qos: 1, interval: 1s}\n", 1)
	r.start(yaml)
	r.ready()

	got := make(chan float64, 64)
	sub, err := iot.New(iot.Config{Endpoint: r.cloud.addr, Transport: iot.TransportTCP, ClientID: "telemetry-sub", Queue: iot.QueueConfig{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := sub.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	r.closers = append(r.closers, func() { sub.Close(context.Background()) })
	if err := sub.Subscribe(ctx, "gh1/telemetry/temperature", iot.QoS1, func(m iot.Message) {
		var v struct{ Value float64 }
		if json.Unmarshal(m.Payload, &v) == nil {
			select {
			case got <- v.Value:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	m := r.rec.mark()
	r.link.cut()
	r.rec.waitFor(t, m, "offline", kind(EventOffline))
	r.bme.SetTemperature(23)
	m = r.rec.mark()
	r.clock.Advance(time.Second)
	r.rec.waitFor(t, m, "telemetry queued", func(e Event) bool { return e.Kind == EventTelemetry && e.Status == "queued" })
	if q := r.ag.Status().Connection.Queued; q < 1 {
		t.Errorf("status shows %d queued while offline, want ≥ 1", q)
	}
	r.link.restore()
	deadline := time.After(wait)
	for {
		select {
		case v := <-got:
			if v == 23 {
				return
			}
		case <-deadline:
			t.Fatal("the reading taken offline never arrived on the telemetry topic")
		}
	}
}
