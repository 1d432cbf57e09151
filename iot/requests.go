package iot

import (
	"context"
	"errors"
)

// Requests is a Client seen as a request/response connection: the shape
// the shadow and jobs clients define for themselves (shadowsync.Conn,
// jobs.Conn). Requests are published without the offline queue
// (WithoutQueue), as the v1 SDK's shadow and jobs clients do: a request
// queued while offline would be answered long after its timeout, so it
// fails at once with ErrNotConnected and the caller retries after the
// reconnect. Subscriptions are recorded and restored on every reconnect.
type Requests struct{ c *Client }

// Requests returns c as a request/response connection.
func (c *Client) Requests() Requests { return Requests{c} }

// Publish sends one request, never queued.
func (r Requests) Publish(ctx context.Context, topic string, qos byte, payload []byte) error {
	_, err := r.c.Publish(ctx, topic, payload, QoS(qos), WithoutQueue())
	return err
}

// Subscribe records filters with one handler for all of them.
func (r Requests) Subscribe(ctx context.Context, filters []string, qos byte, handler func(topic string, payload []byte)) error {
	h := func(m Message) { handler(m.Topic, m.Payload) }
	subs := make([]Subscription, len(filters))
	for i, f := range filters {
		subs[i] = Subscription{Filter: f, QoS: QoS(qos), Handler: h}
	}
	return r.c.SubscribeMany(ctx, subs)
}

// Unsubscribe removes filters; on a closed Client it does nothing, since a
// closed connection has no subscriptions left to remove.
func (r Requests) Unsubscribe(ctx context.Context, filters ...string) error {
	if err := r.c.Unsubscribe(ctx, filters...); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// CallOnOnline calls f for every EventOnline on events (a Watch channel)
// until ctx is done or events is closed. It blocks: run it on a goroutine
// the caller owns. The shadow and jobs clients use it to resync after every
// reconnect.
func CallOnOnline(ctx context.Context, events <-chan Event, f func()) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == EventOnline {
				f()
			}
		case <-ctx.Done():
			return
		}
	}
}
