package localcloud

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/pinshadow/pinshadow/localcloud/jobs"
	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// attached connects the shadow service to an external broker as an MQTT
// client.
type attached struct {
	url    string
	client paho.Client
	log    *slog.Logger
	// ready is closed after the first successful subscription.
	ready     chan struct{}
	readyOnce sync.Once
}

func newAttached(o *Options, svc *service) *attached {
	a := &attached{url: o.Broker, log: o.Logger.With("component", "broker-client"), ready: make(chan struct{})}
	filters := map[string]byte{}
	for _, f := range append(shadow.RequestFilters(), jobs.RequestFilters()...) {
		filters[f] = 1
	}
	onRequest := func(_ paho.Client, m paho.Message) {
		// OrderMatters: this runs on paho's router goroutine in arrival
		// order, so queueing here keeps per-shadow order.
		svc.submit(m.Topic(), append([]byte(nil), m.Payload()...), "")
	}
	po := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(o.BrokerClientID).
		SetCleanSession(true).SetOrderMatters(true).SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetWriteTimeout(10 * time.Second).
		SetDefaultPublishHandler(func(paho.Client, paho.Message) {})
	// Subscribe on every (re)connect: with a clean session the broker
	// forgets subscriptions when the connection drops.
	po.SetOnConnectHandler(func(c paho.Client) {
		t := c.SubscribeMultiple(filters, onRequest)
		if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			a.log.Error("subscribe to shadow request topics failed; reconnecting", "broker", o.Broker, "error", t.Error())
			return
		}
		a.log.Info("attached to broker", "broker", o.Broker)
		a.readyOnce.Do(func() { close(a.ready) })
	})
	po.SetConnectionLostHandler(func(_ paho.Client, err error) {
		a.log.Warn("lost broker connection; reconnecting", "broker", o.Broker, "error", err)
	})
	a.client = paho.NewClient(po)
	return a
}

// connect makes the first connection and returns once the service is
// subscribed to the request topics; later drops reconnect on their own.
func (a *attached) connect(ctx context.Context) error {
	t := a.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		return fmt.Errorf("connect to broker %s: %w", a.url, ctx.Err())
	}
	if err := t.Error(); err != nil {
		return fmt.Errorf("connect to broker %s: %w", a.url, err)
	}
	select {
	case <-a.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribe to shadow requests on broker %s: %w", a.url, ctx.Err())
	}
}

// publish hands a QoS 1 response to the client without waiting for the
// PUBACK: waiting here could deadlock with the router goroutine blocked on
// a full shard queue. Errors already known are returned.
func (a *attached) publish(_ context.Context, topic string, payload []byte) error {
	t := a.client.Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
		return t.Error()
	default:
		return nil
	}
}

func (a *attached) close() { a.client.Disconnect(250) }
