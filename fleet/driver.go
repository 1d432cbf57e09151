package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/iot"
)

// change is one desired value the driver sent.
type change struct {
	dev      int
	value    float64
	sent     time.Time
	accepted bool
	rejected int  // code when rejected
	expired  bool // its slot was freed without an answer (a late answer still counts)
}

// driver is the cloud side: one MQTT connection that changes each device's
// desired value in turn and watches every thing's update/accepted and
// update/rejected (a wildcard subscription) to learn which changes the
// cloud accepted and what each device reported.
type driver struct {
	conn   *iot.Client
	prefix string

	mu       sync.Mutex
	changes  map[string]*change // by clientToken
	order    []*change
	reported map[int]float64 // last reported level accepted by the cloud, by device
	reports  int             // accepted reported updates (sensor or level)
	slots    chan struct{}   // bounds requests in flight (the cloud allows 10 per connection)
}

const driverInFlight = 8

func newDriver(ctx context.Context, o *Options, host, port string) (*driver, error) {
	cfg := iot.Config{Endpoint: host + ":" + port, Transport: iot.TransportTCP, ClientID: o.ThingPrefix + "driver",
		Backoff: iot.BackoffConfig{Base: 100 * time.Millisecond, Max: time.Second},
		Queue:   iot.QueueConfig{Disabled: true}}
	if o.CertFile != "" {
		cfg.Transport, cfg.CertFile, cfg.KeyFile, cfg.CAFile = iot.TransportMQTTS, o.CertFile, o.KeyFile, o.CAFile
	}
	c, err := iot.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: driver connection: %w", err)
	}
	d := &driver{conn: c, prefix: o.ThingPrefix, changes: map[string]*change{}, reported: map[int]float64{},
		slots: make(chan struct{}, driverInFlight)}
	if err := c.Connect(ctx); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("fleet: driver cannot reach %s:%s: %w", host, port, err)
	}
	err = c.SubscribeMany(ctx, []iot.Subscription{
		{Filter: "$aws/things/+/shadow/update/accepted", QoS: iot.QoS1, Handler: d.onAccepted},
		{Filter: "$aws/things/+/shadow/update/rejected", QoS: iot.QoS1, Handler: d.onRejected},
	})
	if err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("fleet: driver subscribe: %w", err)
	}
	return d, nil
}

func (d *driver) close(ctx context.Context) { d.conn.Close(ctx) }

// thingIndex parses <prefix>NNNN out of a shadow topic (-1 if not ours).
func (d *driver) thingIndex(topic string) int {
	rest, ok := strings.CutPrefix(topic, "$aws/things/"+d.prefix)
	if !ok {
		return -1
	}
	n := 0
	for i := 0; i < len(rest) && rest[i] != '/'; i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return -1
		}
		n = n*10 + int(rest[i]-'0')
	}
	return n - 1
}

var tokenMark = []byte(`"clientToken":"fleet-drv-`)

func (d *driver) onAccepted(m iot.Message) {
	if bytes.Contains(m.Payload, tokenMark) {
		d.answer(m.Payload, 0)
		return
	}
	// A device's report: count it, and remember the reported level.
	d.mu.Lock()
	d.reports++
	d.mu.Unlock()
	if !bytes.Contains(m.Payload, []byte(`"`+DesiredKey+`"`)) {
		return
	}
	var doc struct {
		State struct {
			Reported map[string]any `json:"reported"`
		} `json:"state"`
	}
	if json.Unmarshal(m.Payload, &doc) != nil {
		return
	}
	v, ok := doc.State.Reported[DesiredKey].(float64)
	if !ok {
		return
	}
	if i := d.thingIndex(m.Topic); i >= 0 {
		d.mu.Lock()
		d.reported[i] = v
		d.mu.Unlock()
	}
}

func (d *driver) onRejected(m iot.Message) {
	if !bytes.Contains(m.Payload, tokenMark) {
		return
	}
	var doc struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(m.Payload, &doc)
	d.answer(m.Payload, max(doc.Code, 1))
}

func (d *driver) answer(payload []byte, code int) {
	var doc struct {
		Token string `json:"clientToken"`
	}
	if json.Unmarshal(payload, &doc) != nil {
		return
	}
	d.mu.Lock()
	c, ok := d.changes[doc.Token]
	free := ok && !c.expired
	if ok {
		delete(d.changes, doc.Token)
		c.accepted, c.rejected = code == 0, code
	}
	d.mu.Unlock()
	if free {
		<-d.slots
	}
}

// set sends device dev's new desired value; it waits for a free slot (at
// most driverInFlight unanswered), so the driver never trips the cloud's
// in-flight limit.
func (d *driver) set(ctx context.Context, dev int, thing string, value float64, seq int) {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	token := fmt.Sprintf("fleet-drv-%d-%d", dev, seq)
	payload := fmt.Sprintf(`{"state":{"desired":{%q:%v}},"clientToken":%q}`, DesiredKey, value, token)
	c := &change{dev: dev, value: value, sent: time.Now()}
	d.mu.Lock()
	d.changes[token] = c
	d.order = append(d.order, c)
	d.mu.Unlock()
	if _, err := d.conn.Publish(ctx, "$aws/things/"+thing+"/shadow/update", []byte(payload), iot.QoS1, iot.WithoutQueue()); err != nil {
		// Not sent (the broker is down): not accepted, nothing to lose.
		d.mu.Lock()
		delete(d.changes, token)
		d.mu.Unlock()
		<-d.slots
	}
}

// expire frees the slots of requests unanswered for longer than after (the
// answer was lost with a broker restart, or is very late); a late answer
// still marks its change accepted or rejected.
func (d *driver) expire(after time.Duration) {
	now := time.Now()
	d.mu.Lock()
	var n int
	for _, c := range d.changes {
		if !c.expired && now.Sub(c.sent) > after {
			c.expired = true
			n++
		}
	}
	d.mu.Unlock()
	for range n {
		<-d.slots
	}
}

// snapshot returns every change sent and the reported levels.
func (d *driver) snapshot() ([]change, map[int]float64, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]change, len(d.order))
	for i, c := range d.order {
		out[i] = *c
	}
	rep := make(map[int]float64, len(d.reported))
	for k, v := range d.reported {
		rep[k] = v
	}
	return out, rep, d.reports
}
