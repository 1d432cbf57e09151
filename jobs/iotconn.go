package jobs

import (
	"context"

	"github.com/pinshadow/pinshadow/iot"
)

// IOT adapts a connection from package iot to Conn. Requests are published
// without the offline queue (iot.WithoutQueue): a request queued while
// offline would be answered long after its timeout, so it fails at once
// with iot.ErrNotConnected instead. Subscriptions are recorded by iot and
// restored on every reconnect.
func IOT(c *iot.Client) Conn { return c.Requests() }

// NewIOT returns the client of thing on ic that follows ic's connection
// events itself (through its own iot.Client.Watch channel): every
// iot.EventOnline calls Reconnected. Close stops following.
func NewIOT(ctx context.Context, ic *iot.Client, thing string, opts Options) (*Client, error) {
	// Watch first: a connection that comes up while New runs must still
	// trigger a resync.
	events, stop := ic.Watch(8)
	c, err := New(ctx, IOT(ic), thing, opts)
	if err != nil {
		stop()
		return nil, err
	}
	c.onClose = append(c.onClose, stop)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		iot.CallOnOnline(c.ctx, events, c.Reconnected)
	}()
	return c, nil
}
