package shadowsync

import (
	"github.com/pinshadow/pinshadow/iot"
)

// IOT adapts a connection from package iot to Conn. Shadow requests are
// published without the offline queue (iot.WithoutQueue), as the v1 SDK's
// shadow client does: a request queued while offline would be answered
// long after its timeout, so it fails at once with iot.ErrNotConnected and
// the shadow retries after the reconnect instead. Subscriptions are
// recorded by iot and restored on every reconnect.
//
// With IOT the owner calls Client.Reconnected on every iot.EventOnline;
// NewIOT does that itself. Use one shadowsync Client per connection: iot
// keeps one handler per filter.
func IOT(c *iot.Client) Conn { return c.Requests() }

// NewIOT returns a client on ic that follows ic's connection events itself
// (through its own iot.Client.Watch channel): every iot.EventOnline calls
// Reconnected. Close stops following.
func NewIOT(ic *iot.Client, opts Options) (*Client, error) {
	c, err := New(IOT(ic), opts)
	if err != nil {
		return nil, err
	}
	events, stop := ic.Watch(8)
	c.onClose = append(c.onClose, stop)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		iot.CallOnOnline(c.ctx, events, c.Reconnected)
	}()
	return c, nil
}
