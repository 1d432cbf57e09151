package agent

import (
	"errors"
	"log/slog"
	"time"

	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/devices"
	"github.com/pinshadow/pinshadow/hal"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/jobs"
	"github.com/pinshadow/pinshadow/shadowsync"
)

// ErrHardStop, as the cause of Run's context (context.WithCancelCause), stops
// the agent the way a crash would: no final report, no flush of pending
// reports. Devices and the connection are still released so a test can start
// a new Agent on the same fake HAL and state directory.
var ErrHardStop = errors.New("agent: hard stop (no final report)")

// ErrRunning is returned by Run when the Agent is already running.
var ErrRunning = errors.New("agent: already running")

// ErrReloadRefused wraps the reason a reload was refused; the old
// configuration stays in force.
var ErrReloadRefused = errors.New("agent: reload refused, the old configuration stays in force")

// Clock is the agent's time source. It has the shape of shadowsync.Clock so
// one value can drive both. Tests inject a fake clock (see HALClock).
type Clock = shadowsync.Clock

// Deps are what the agent needs besides the configuration. Every field is
// optional.
type Deps struct {
	// HAL opens lines, PWM channels and buses. nil: hal/periph on the real
	// machine (closed by the agent when it stops; a HAL given here is not).
	HAL hal.HAL
	// Registry holds the drivers. nil: every built-in driver.
	Registry *devices.Registry
	// Endpoint, when set, overrides the configured connection:
	// "tcp://127.0.0.1:1883" (also ws://, mqtts://, tls://, alpn://, wss://;
	// without a scheme only the host:port is replaced).
	Endpoint string
	// Logger receives the agent's logs. nil: discard.
	Logger *slog.Logger
	// Events observes what the agent does (deltas, writes, rejections,
	// faults, reports, readings, connection changes). It is called from the
	// agent's goroutines and must not block.
	Events func(Event)
	// Clock is the time source of the reconcile loop, the sensor schedule
	// and failsafe timing. nil: real time.
	Clock Clock
	// SysRoot prefixes /sys for drivers that read it (cpu temperature) and
	// for hal/periph's PWM. "" is the real /sys.
	SysRoot string
	// Heartbeat is the longest the loop waits without an iteration, so its
	// liveness is visible (default 1 s).
	Heartbeat time.Duration
	// FirstGetWait bounds how long start-up waits for the connection and a
	// get of every shadow before opening the outputs (default 3 s; negative:
	// do not wait, open at the restored or boot values at once).
	FirstGetWait time.Duration
	// StopTimeout bounds the final report and disconnect (default 5 s).
	StopTimeout time.Duration
	// Shadow configures the shadow client (timeouts, rate, retry waits);
	// Logger defaults to the agent's.
	Shadow shadowsync.Options
	// Jobs configures the Jobs client (used when the configuration has a
	// jobs: section); its notify callbacks are the agent's own.
	Jobs jobs.Options
	// JobTypes adds job types to the built-in ones the configuration
	// enables (set-desired, pulse, run-handler, download-file), or replaces
	// them by name: `agent run` adds apply-config and reboot.
	JobTypes map[string]jobrun.Handler
}

// EventKind says what an Event reports.
type EventKind string

// Event kinds.
const (
	// EventDelta: a delta (or resync) arrived for Shadow; Value is its state.
	EventDelta EventKind = "delta"
	// EventWrite: a write to Device.Property succeeded; Value is the
	// device-side value, Key the shadow key it serves, Message its reason
	// (desired, failsafe, boot, restore), Latency the time since the delta
	// (desired writes) or since the iteration began.
	EventWrite EventKind = "write"
	// EventResult: a desired key's result changed (Status: applied,
	// pending, failsafe, rejected, fault; Message says why). Value is the
	// applied value, set only when Status is applied.
	EventResult EventKind = "result"
	// EventReject: a desired value was rejected (Status "rejected"): the
	// hardware was not touched for it.
	EventReject EventKind = "reject"
	// EventFault: a write or read failed, or something the agent depends on
	// failed (Message says what).
	EventFault EventKind = "fault"
	// EventReported: a reported patch was queued for Shadow; Value is the
	// patch.
	EventReported EventKind = "reported"
	// EventDesiredPatch: an on_reject desired patch was sent (Value) or
	// failed (Message).
	EventDesiredPatch EventKind = "desired_patch"
	// EventSensor: a sensor reading of Device.Property (Key the reported
	// key), Value the raw reading.
	EventSensor EventKind = "sensor"
	// EventSensorError: reading Device failed (Message).
	EventSensorError EventKind = "sensor_error"
	// EventTelemetry: a telemetry message was published or queued (Key,
	// Value, Message the topic).
	EventTelemetry EventKind = "telemetry"
	// EventOnline and EventOffline: the connection came up or went down.
	EventOnline  EventKind = "online"
	EventOffline EventKind = "offline"
	// EventFailsafe: an output went to its failsafe value after being
	// offline too long.
	EventFailsafe EventKind = "failsafe"
	// EventReady: the first convergence with every shadow is done.
	EventReady EventKind = "ready"
	// EventReload: a new configuration is in force; EventReloadRefused: one
	// was refused (Message says why).
	EventReload        EventKind = "reload"
	EventReloadRefused EventKind = "reload_refused"
	// EventStateError: the state file could not be read or written.
	EventStateError EventKind = "state_error"
	// EventIteration: one loop iteration finished (Message: what woke it).
	EventIteration EventKind = "iteration"
	// EventStopped: Run is returning.
	EventStopped EventKind = "stopped"

	// Job events (package jobrun): Key is the job id, Property the job
	// type, Status the execution status, Value the statusDetails
	// (map[string]string), Message a reason.
	//
	// EventJobStarted: an execution began (Message "resumed after a
	// restart" when it continues one the agent was running when it stopped).
	EventJobStarted EventKind = "job_started"
	// EventJobProgress: the job reported progress (IN_PROGRESS, persisted).
	EventJobProgress EventKind = "job_progress"
	// EventJobFinished: the execution ended on the device with Status
	// (SUCCEEDED, FAILED, REJECTED); it is persisted and being sent.
	EventJobFinished EventKind = "job_finished"
	// EventJobSent: the service accepted a status.
	EventJobSent EventKind = "job_sent"
	// EventJobDropped: the service refused a status for good
	// (TerminalStateReached, VersionMismatch: cancelled or timed out).
	EventJobDropped EventKind = "job_dropped"
	// EventJobError: starting or updating failed and is retried, or the
	// jobs state file failed.
	EventJobError EventKind = "job_error"
)

// Event is one thing the agent did or saw.
type Event struct {
	Time     time.Time
	Kind     EventKind
	Shadow   string // shadow name ("" classic)
	Key      string // shadow key (dotted path; "name/path" for named shadows)
	Device   string
	Property string
	Value    any
	Status   string
	Message  string
	Latency  time.Duration
}

// HALClock adapts the fake HAL's clock (a *fake.FakeClock in tests) to Clock,
// so the agent, the fake hardware and the test share one time.
func HALClock(c fake.Clock) Clock { return halClock{c} }

type halClock struct{ c fake.Clock }

func (h halClock) Now() time.Time { return h.c.Now() }
func (h halClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := h.c.NewTimer(d)
	return t.C(), t.Stop
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
