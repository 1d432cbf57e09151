// Package agent is the daemon: it turns a validated configuration into a
// running system whose hardware follows its device shadows.
//
// New builds an Agent from a config.Config and Deps (the HAL, the driver
// registry, an endpoint override, a clock, a logger, an event observer).
// Run connects (never giving up) and waits briefly (Deps.FirstGetWait) for a
// get of each shadow, opens the devices with each output at its start-up level
// (desired when the shadow is known, else the restored or boot value, so a
// restart costs no toggle), converges and sends one coalesced report, then
// keeps one goroutine — the reconcile loop — owning every device and all
// reconcile state. The loop selects on shadow deltas, mirror changes,
// connection events (offline time drives failsafe values), the decision's
// wake timer, the sensor read schedule, button/PIR watch events, reload
// requests and its context. One iteration is:
//
//	reconcile.Plan → writes in order with Decision.Ready → device Write and
//	read-back → Decision.Outcome → on_reject desired patch as a conditional
//	update → reported patch through the shadow's coalescing Report → State
//	persisted atomically in state_dir → liveness heartbeat.
//
// Sensor readings are batched into one coalesced report per tick
// (reconcile.Sensors); telemetry goes through the iot offline queue.
//
// Status returns a snapshot for `agent status`; StatusHandler serves it as
// JSON. The heartbeat (LastBeat, Alive) lets a supervisor — the systemd
// watchdog in `agent run` — see whether the loop itself is alive, not just the
// process.
//
// Cancelling Run's context stops the agent with a final report and a clean
// disconnect, bounded by Deps.StopTimeout; cancelling it with cause
// ErrHardStop (context.WithCancelCause) skips the final report, as a crash
// would, for tests of restart behaviour.
package agent
