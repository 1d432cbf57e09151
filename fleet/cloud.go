package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pinshadow/pinshadow/localcloud"
)

// cloud is the embedded local cloud, restartable on the same address.
type cloud struct {
	opts localcloud.Options
	srv  *localcloud.Server
	addr string
}

// startCloud starts the embedded cloud: AWS's default limits, shadows in
// dataDir ("" = memory).
func startCloud(ctx context.Context, listen, dataDir string, log *slog.Logger) (*cloud, error) {
	o := localcloud.DefaultOptions()
	o.Listen, o.DataDir, o.Logger = listen, dataDir, log
	c := &cloud{opts: o}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	c.addr = c.srv.Endpoints()[0].Addr.String()
	c.opts.Listen = c.addr // a restart comes back where the devices look
	return c, nil
}

func (c *cloud) start(ctx context.Context) error {
	srv, err := localcloud.New(c.opts)
	if err != nil {
		return fmt.Errorf("fleet: local cloud on %s: %w", c.opts.Listen, err)
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("fleet: local cloud on %s: %w", c.opts.Listen, err)
	}
	c.srv = srv
	return nil
}

func (c *cloud) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(c.addr)
	return h, p
}

// stop closes the broker: every client is disconnected.
func (c *cloud) stop() {
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

// restart starts the broker again on the same address (retrying briefly
// while the kernel still holds the port).
func (c *cloud) restart(ctx context.Context) error {
	var err error
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		if err = c.start(ctx); err == nil {
			return nil
		}
		if wait > 2*time.Second {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
