package sim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/localcloud"
)

// Cloud is the local AWS IoT cloud a simulation runs in-process, with the
// one thing a test of reconnects needs beyond localcloud: Restart on the
// same address.
type Cloud struct {
	mu   sync.Mutex
	opts localcloud.Options
	srv  *localcloud.Server
	addr string
}

// StartCloud starts an embedded broker with the shadow service on listen
// ("127.0.0.1:0" picks a free port). dataDir "" keeps shadows in memory;
// a directory keeps them across Restart.
func StartCloud(ctx context.Context, listen, dataDir string, logger *slog.Logger) (*Cloud, error) {
	o := localcloud.DefaultOptions()
	o.Listen = listen
	o.DataDir = dataDir
	o.Logger = logger
	c := &Cloud{opts: o}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	for _, ep := range c.srv.Endpoints() {
		if ep.Name == "mqtt" {
			c.addr = ep.Addr.String()
		}
	}
	// A restart must come back where the agent looks for it.
	c.opts.Listen = c.addr
	return c, nil
}

func (c *Cloud) start(ctx context.Context) error {
	srv, err := localcloud.New(c.opts)
	if err != nil {
		return fmt.Errorf("sim: starting the local cloud on %s: %w", c.opts.Listen, err)
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("sim: starting the local cloud on %s: %w", c.opts.Listen, err)
	}
	c.srv = srv
	return nil
}

// Addr is the broker's host:port.
func (c *Cloud) Addr() string { return c.addr }

// Restart closes the broker (every client is disconnected) and starts it
// again on the same address. Shadows survive only with a data directory.
func (c *Cloud) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
	// The port is free once Close returns; retry briefly in case the
	// kernel still holds it.
	var err error
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		if err = c.start(ctx); err == nil {
			return nil
		}
		if wait > time.Second {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("sim: restarting the broker: %w (last attempt: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Close stops the cloud.
func (c *Cloud) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.Close()
	c.srv = nil
	return err
}
