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
	reported map[int]float64 // reported level in the driver's last get, by device
	gets     map[int]bool    // devices whose get was answered
	slots    chan struct{}   // bounds updates in flight (the cloud allows 10 per connection)
	getSlots chan struct{}   // bounds gets in flight (only after the updates are over)
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
		gets: map[int]bool{}, slots: make(chan struct{}, driverInFlight), getSlots: make(chan struct{}, driverInFlight)}
	if err := c.Connect(ctx); err != nil {
		c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("fleet: driver cannot reach %s:%s: %w", host, port, err)
	}
	// Not update/accepted: every device report is answered there (1,000/s
	// for a 1,000-device fleet), which would make the driver the
	// bottleneck. A delta carries the clientToken of the update that made
	// it, and each change differs from what the device reports, so a
	// delta with our token means accepted.
	err = c.SubscribeMany(ctx, []iot.Subscription{
		{Filter: "$aws/things/+/shadow/update/delta", QoS: iot.QoS1, Handler: d.onDelta},
		{Filter: "$aws/things/+/shadow/update/rejected", QoS: iot.QoS1, Handler: d.onRejected},
		{Filter: "$aws/things/+/shadow/get/accepted", QoS: iot.QoS1, Handler: d.onGet},
		{Filter: "$aws/things/+/shadow/get/rejected", QoS: iot.QoS1, Handler: d.onGetRejected},
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

var (
	tokenMark = []byte(`"clientToken":"fleet-drv-`)
	getMark   = []byte(`"clientToken":"fleet-get-`)
)

func (d *driver) onDelta(m iot.Message) {
	if bytes.Contains(m.Payload, tokenMark) {
		d.answer(m.Payload, 0)
	}
}

// onGet records the reported level of a thing the driver asked for.
func (d *driver) onGet(m iot.Message) {
	if !bytes.Contains(m.Payload, getMark) {
		return // a device's own get
	}
	var doc struct {
		State struct {
			Reported map[string]any `json:"reported"`
		} `json:"state"`
	}
	i := d.thingIndex(m.Topic)
	if json.Unmarshal(m.Payload, &doc) != nil || i < 0 {
		return
	}
	d.mu.Lock()
	if v, ok := doc.State.Reported[DesiredKey].(float64); ok {
		d.reported[i] = v
	}
	d.gets[i] = true
	d.mu.Unlock()
	d.freeGet()
}

func (d *driver) onGetRejected(m iot.Message) {
	if bytes.Contains(m.Payload, getMark) {
		d.freeGet()
	}
}

// freeGet returns a get's slot; never blocks (a late answer after getAll
// gave up finds none).
func (d *driver) freeGet() {
	select {
	case <-d.getSlots:
	default:
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
	// Not the caller's context: a window that ends during the wait for
	// PUBACK must not make a change the broker took look unsent.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := d.conn.Publish(pctx, "$aws/things/"+thing+"/shadow/update", []byte(payload), iot.QoS1, iot.WithoutQueue()); err != nil {
		// Probably not sent (the broker is down); a delta that still
		// comes counts it as accepted.
		d.mu.Lock()
		free := !c.expired
		c.expired = true
		d.mu.Unlock()
		if free {
			<-d.slots
		}
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

// snapshot returns every change sent.
func (d *driver) snapshot() []change {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]change, len(d.order))
	for i, c := range d.order {
		out[i] = *c
	}
	return out
}

// getAll asks the cloud for the shadow of every device in devs and waits
// (until ctx ends) for the answers; it returns the reported level of each
// device whose get was answered.
func (d *driver) getAll(ctx context.Context, things map[int]string) map[int]float64 {
	d.mu.Lock()
	clear(d.gets)
	clear(d.reported)
	d.mu.Unlock()
	for i, thing := range things {
		select {
		case d.getSlots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		payload := fmt.Sprintf(`{"clientToken":"fleet-get-%d"}`, i)
		if _, err := d.conn.Publish(ctx, "$aws/things/"+thing+"/shadow/get", []byte(payload), iot.QoS1, iot.WithoutQueue()); err != nil {
			d.freeGet()
		}
	}
	// Wait for the outstanding answers: every slot taken back, or ctx.
	taken := 0
	for ; taken < cap(d.getSlots); taken++ {
		select {
		case d.getSlots <- struct{}{}:
			continue
		case <-ctx.Done():
		}
		break
	}
	for range taken {
		d.freeGet()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[int]float64{}
	for i := range things {
		if v, ok := d.reported[i]; ok && d.gets[i] {
			out[i] = v
		}
	}
	return out
}
