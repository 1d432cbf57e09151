package jobrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// TypeReboot is the job type that reboots the device.
const TypeReboot = "reboot"

// Reboot defaults.
const (
	// DefaultRebootTimeout is how long the device has to come back with a
	// new boot id.
	DefaultRebootTimeout = 10 * time.Minute
	// BootIDFile is where Linux keeps the id of the current boot.
	BootIDFile = "/proc/sys/kernel/random/boot_id"
)

// DefaultRebootCommand returns the command the reboot type runs by
// default (a new slice each time: no shared mutable default).
func DefaultRebootCommand() []string { return []string{"systemctl", "reboot"} }

// RebootOptions configure the reboot type. Every field is optional.
type RebootOptions struct {
	// Command is the reboot command, argv (default DefaultRebootCommand()).
	// Under the packaged systemd unit the agent's user needs the right to
	// reboot (a polkit rule for org.freedesktop.login1.reboot).
	Command []string
	// Timeout is how long after the command the device must have come back
	// with a new boot id (default DefaultRebootTimeout).
	Timeout time.Duration
	// BootID returns the id of the current boot (default: BootIDFile).
	BootID func() (string, error)
	// Exec runs the command and returns its combined output (default
	// os/exec). Tests and `agent sim` give a fake that simulates the
	// restart.
	Exec func(ctx context.Context, argv []string) ([]byte, error)
	// Delivered, when set, waits until the service has accepted the
	// IN_PROGRESS update with statusDetails d for job (the agent wires it to
	// its job events), so the cloud knows a reboot was requested before it
	// happens. It returns ctx's cause when ctx ends first (the step
	// timeout: the job is FAILED without rebooting). nil: do not wait.
	Delivered func(ctx context.Context, job string, d Details) error
}

// Progress notes the reboot type leaves itself (statusDetails of its
// IN_PROGRESS updates): "requested" is sent and confirmed first, then
// "rebooting" is persisted right before the command runs, so a restart
// tells a command that ran from one that never did.
const (
	phaseRequested    = "requested"
	phaseRebooting    = "rebooting"
	detailPhase       = "phase"
	detailBootID      = "boot_id"
	detailRequestedAt = "requested_at"
)

// Reboot returns the reboot handler. Its document is {"type": "reboot"}.
//
// Run records the request ("requested", the current boot id and time) in
// an IN_PROGRESS update, persisted and (with Delivered) accepted by the
// service before the command runs. After the restart the runner resumes
// the job: a new boot id is SUCCEEDED; the same boot id once Timeout has
// passed since the request is FAILED "reboot did not happen" (so is an
// agent still running Timeout after the command). A failing command is
// FAILED with its output.
func Reboot(o RebootOptions) Handler {
	if len(o.Command) == 0 {
		o.Command = DefaultRebootCommand()
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRebootTimeout
	}
	if o.BootID == nil {
		o.BootID = ReadBootID(BootIDFile)
	}
	if o.Exec == nil {
		o.Exec = execCommand
	}
	return HandlerFunc(func(doc json.RawMessage) (Job, error) {
		var d struct {
			Type string `json:"type"`
		}
		dec := json.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return nil, fmt.Errorf("%w: reboot document: %v (want {\"type\": \"reboot\"})", ErrInvalid, err)
		}
		return &rebootJob{o: o}, nil
	})
}

// ReadBootID returns a BootID function reading path.
func ReadBootID(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading the boot id: %w", err)
		}
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("reading the boot id: %s is empty", path)
		}
		return id, nil
	}
}

func execCommand(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

type rebootJob struct{ o RebootOptions }

func (j *rebootJob) Run(ctx context.Context, x *Exec) (Details, error) {
	id, err := j.o.BootID()
	if err != nil {
		return nil, fmt.Errorf("%w; not rebooting (success could not be told from a failed reboot)", err)
	}
	at := x.Clock.Now().UTC()
	note := func(phase string) Details {
		return Details{detailPhase: phase, detailBootID: id, detailRequestedAt: at.Format(time.RFC3339Nano)}
	}
	if err := x.Progress(ctx, note(phaseRequested)); err != nil {
		return nil, fmt.Errorf("cannot persist the reboot request (%w); not rebooting", err)
	}
	if j.o.Delivered != nil {
		if err := j.o.Delivered(ctx, x.JobID, note(phaseRequested)); err != nil {
			return nil, fmt.Errorf("the service did not confirm the reboot request (%w); not rebooting", err)
		}
	}
	if err := x.Progress(ctx, note(phaseRebooting)); err != nil {
		return nil, fmt.Errorf("cannot persist the reboot (%w); not rebooting", err)
	}
	x.Log.Info("rebooting", "command", strings.Join(j.o.Command, " "), "boot_id", id)
	out, err := j.o.Exec(ctx, j.o.Command)
	if ctx.Err() != nil {
		// Stopped during the command: most likely by the shutdown the
		// command started. The resume after the boot decides.
		return nil, context.Cause(ctx)
	}
	if err != nil {
		d := Details{}
		if s := strings.TrimSpace(string(out)); s != "" {
			d["output"] = Tail(s, MaxDetailValue)
		}
		return d, fmt.Errorf("reboot command %q failed: %w", strings.Join(j.o.Command, " "), err)
	}
	return j.await(ctx, x, id, at)
}

// Resume decides after a restart: a new boot id is success; the same one is
// a failure once the timeout has passed since the request.
func (j *rebootJob) Resume(ctx context.Context, x *Exec, last Details) (Details, error) {
	if last[detailPhase] != phaseRebooting || last[detailBootID] == "" {
		// Stopped before the command: it never ran.
		x.Resumed = false
		return j.Run(ctx, x)
	}
	at, err := time.Parse(time.RFC3339Nano, last[detailRequestedAt])
	if err != nil {
		return nil, fmt.Errorf("reboot: the recorded request time %q is unreadable: %v", last[detailRequestedAt], err)
	}
	return j.await(ctx, x, last[detailBootID], at)
}

// await waits for the timeout after the request at, unless the boot id
// already differs from before.
func (j *rebootJob) await(ctx context.Context, x *Exec, before string, at time.Time) (Details, error) {
	id, err := j.o.BootID()
	if err != nil {
		return nil, err
	}
	if id != before {
		return Details{detailBootID: id, "previous_boot_id": before}, nil
	}
	if left := at.Add(j.o.Timeout).Sub(x.Clock.Now()); left > 0 {
		// The timeout may outlast the step timeout between two Progress calls.
		note := Details{detailPhase: phaseRebooting, detailBootID: before, detailRequestedAt: at.Format(time.RFC3339Nano)}
		stop := x.KeepAlive(ctx, func() Details { return note })
		err := x.Sleep(ctx, left)
		stop()
		if err != nil {
			return nil, err
		}
	}
	return Details{detailBootID: id}, fmt.Errorf("reboot did not happen: the boot id is still %s %s after the reboot was requested", id, j.o.Timeout)
}
