package sim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pinshadow/pinshadow/agent"
)

// Fault kinds Controls.Inject accepts besides the I2C ones (FaultI2CNACK,
// FaultI2CTimeout): FaultClear ends an I2C device's fault, FaultRestartBroker
// restarts the in-process broker.
const (
	FaultClear         = "clear"
	FaultRestartBroker = "restart_broker"
)

// ErrNoBroker is returned by Controls.Inject for a broker restart when the
// simulation uses a cloud it did not start (--cloud).
var ErrNoBroker = errors.New("sim: no in-process broker to restart (the simulation uses an external cloud)")

// FaultTarget is one fault a live console may inject: Kind on Device (""
// for the broker).
type FaultTarget struct {
	Kind   string `json:"kind"`
	Device string `json:"device,omitempty"`
}

// Controls are what a live console (console package, `agent sim --http`)
// may do to a running simulation: change desired state as the cloud side
// does, and inject faults. Methods are safe from any goroutine.
type Controls struct {
	// Agent is the simulated device's agent (status, shadow documents).
	Agent *agent.Agent

	world   *World
	actor   *Actor
	acct    *Account
	restart func(context.Context) error
}

// Desired publishes a desired update of shadow ("" classic) from the cloud
// side, exactly as a scenario step does: the service answers with a delta
// the agent applies or rejects.
func (c *Controls) Desired(ctx context.Context, shadow string, patch map[string]any) error {
	c.acct.Printf(KindScenario, "console: desired %s", formatPatch(patch))
	c.acct.Sent(shadow, patch, time.Now())
	return c.actor.Desired(ctx, shadow, patch)
}

// Faults lists the faults Inject accepts: NACK, timeout and clear on every
// simulated I2C device, and a broker restart when the broker is in-process.
func (c *Controls) Faults() []FaultTarget {
	var ts []FaultTarget
	ids := make([]string, 0, len(c.world.i2c))
	for id := range c.world.i2c {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, k := range []string{FaultI2CNACK, FaultI2CTimeout, FaultClear} {
			ts = append(ts, FaultTarget{Kind: k, Device: id})
		}
	}
	if c.restart != nil {
		ts = append(ts, FaultTarget{Kind: FaultRestartBroker})
	}
	return ts
}

// Inject starts a fault: an I2C fault on device until cleared (FaultClear),
// or a broker restart (the agent reconnects by itself).
func (c *Controls) Inject(ctx context.Context, kind, device string) error {
	switch kind {
	case FaultRestartBroker:
		if c.restart == nil {
			return ErrNoBroker
		}
		c.acct.Printf(KindScenario, "console: restarting the broker")
		if err := c.restart(ctx); err != nil {
			return err
		}
		c.acct.Printf(KindCloud, "the broker is back; the agent reconnects by itself")
		return nil
	case FaultClear:
		if err := c.world.SetFault(device, ""); err != nil {
			return err
		}
		c.acct.Printf(KindScenario, "console: %s answers again", device)
		return nil
	case FaultI2CNACK, FaultI2CTimeout:
		if err := c.world.SetFault(device, kind); err != nil {
			return err
		}
		c.acct.Printf(KindScenario, "console: %s on %s until cleared", kind, device)
		return nil
	}
	return fmt.Errorf("sim: unknown fault %q; want %s, %s, %s or %s", kind, FaultI2CNACK, FaultI2CTimeout, FaultClear, FaultRestartBroker)
}
