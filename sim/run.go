package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/devices"
)

// ErrScenario is wrapped by Run's error when the scenario does not fit the
// configuration or the mode (caller's mistake, not a failure).
var ErrScenario = errors.New("sim: scenario does not fit")

// Options configure Run.
type Options struct {
	// Config is the simulated device's configuration; its connection
	// endpoint (see Listen, Cloud), state directory and queue file are
	// replaced by temporary ones.
	Config *config.Config
	// Scenario is what the cloud side does (nil: nothing).
	Scenario *Scenario
	// Listen is where the in-process cloud listens ("" = 127.0.0.1:0).
	Listen string
	// Cloud, when set, is the host:port of a cloud already running
	// (`agent cloud`); no cloud is started.
	Cloud string
	// Duration ends the run that long after the start; 0 runs until ctx
	// is done.
	Duration time.Duration
	// Out receives the live account.
	Out io.Writer
	// JSON and Quiet shape the account (see AccountOptions).
	JSON, Quiet bool
	// Logger receives the agent's and the cloud's logs (nil: discarded).
	Logger *slog.Logger
	// World shapes the physics.
	World WorldOptions
	// Ready, if set, is called once the cloud is up and the agent started,
	// with the broker's address (tests drive the run from there).
	Ready func(addr string)
	// Attach, if set, is called once the agent is started, with the
	// controls a live console uses (desired changes from the cloud side,
	// fault injection). With Attach the cloud side always runs and shadows
	// are kept on disk, so a broker restart from the console keeps them.
	Attach func(*Controls)
	// Events, if set, receives every agent event too (from the agent's
	// goroutines; it must not block).
	Events func(agent.Event)
}

// Run runs a simulation: the local cloud in-process, the simulated
// hardware with its physics, the agent on it, and the cloud-side actor
// playing the scenario, printing the live account to o.Out. It returns nil
// when the duration is over or ctx is done, an error if a part fails to
// start or the agent stops by itself.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	cfg := o.Config
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sc := o.Scenario
	if sc == nil {
		sc = &Scenario{}
	}
	if err := sc.Check(cfg); err != nil {
		return fmt.Errorf("%w: %w", ErrScenario, err)
	}
	restarts := false
	for _, st := range sc.Steps {
		restarts = restarts || st.Kind == StepRestartBroker
	}
	if restarts && o.Cloud != "" {
		return fmt.Errorf("%w: restart_broker needs the in-process cloud; drop --cloud or the step", ErrScenario)
	}

	acct := NewAccount(o.Out, cfg, AccountOptions{Start: start, JSON: o.JSON, Quiet: o.Quiet})

	// The agent keeps its state in a directory of its own: a simulation
	// starts from nothing and leaves nothing behind.
	stateDir, err := os.MkdirTemp("", "pinshadow-sim-")
	if err != nil {
		return fmt.Errorf("sim: state directory: %w", err)
	}
	defer os.RemoveAll(stateDir)
	cfg.StateDir = stateDir
	if cfg.Connection.Queue.Path != "" {
		// A file queue survives restarts; a simulation keeps it with its state.
		cfg.Connection.Queue.Path = filepath.Join(stateDir, "queue.db")
	}
	o.World.SysRoot = filepath.Join(stateDir, "sysfs")

	addr := o.Cloud
	var restart func(context.Context) error
	if addr == "" {
		listen := o.Listen
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		dataDir := ""
		// A console may restart the broker too.
		persist := restarts || o.Attach != nil
		if persist {
			// Shadows must outlive the broker, as they do on AWS.
			dataDir = stateDir
		}
		cloud, err := StartCloud(ctx, listen, dataDir, o.Logger.With("part", "cloud"))
		if err != nil {
			return err
		}
		defer cloud.Close()
		addr = cloud.Addr()
		where := "shadows in memory"
		if persist {
			where = "shadows in a temporary directory, so they survive restart_broker"
		}
		acct.Printf(KindCloud, "local AWS IoT cloud on %s (%s)", addr, where)
		restart = cloud.Restart
	} else {
		acct.Printf(KindCloud, "using the cloud at %s", addr)
	}
	acct.Printf(KindCloud, "drive it from another terminal: %s", DriveCommand(cfg, addr))

	o.World.OnChange = acct.Change
	world, err := NewWorld(cfg, o.World)
	if err != nil {
		return err
	}
	defer world.Close()

	var actor *Actor
	if len(sc.Steps) > 0 || !o.Quiet || o.Attach != nil {
		shadows := []string{""}
		for _, s := range cfg.Shadows {
			if s.Name != "" {
				shadows = append(shadows, s.Name)
			}
		}
		actor, err = NewActor(ctx, ActorOptions{Endpoint: addr, Thing: cfg.Thing, Shadows: shadows,
			OnDocument: acct.Document, OnRejected: acct.Rejected, OnJob: acct.Job})
		if err != nil {
			return err
		}
		defer actor.Close(context.WithoutCancel(ctx))
	}

	events := acct.Agent
	if o.Events != nil {
		events = func(e agent.Event) {
			acct.Agent(e)
			o.Events(e)
		}
	}
	// A reboot job reboots the simulated device: the agent stops as in a
	// power loss and a new one starts on the same world and state, with a
	// new boot id. It never runs a command on this machine.
	var boot atomic.Int64
	reboots := make(chan struct{}, 1)
	reboot := jobrun.Reboot(jobrun.RebootOptions{Command: []string{"(simulated reboot)"}, Timeout: time.Minute,
		BootID: func() (string, error) { return fmt.Sprintf("sim-boot-%d", boot.Load()+1), nil },
		Exec: func(context.Context, []string) ([]byte, error) {
			select {
			case reboots <- struct{}{}:
			default:
			}
			return nil, nil
		}})
	newAgent := func() (*agent.Agent, error) {
		return agent.New(cfg, agent.Deps{HAL: world.HAL(), SysRoot: o.World.SysRoot, Endpoint: "tcp://" + addr,
			Logger: o.Logger.With("part", "agent"), Events: events,
			JobTypes: map[string]jobrun.Handler{jobrun.TypeReboot: reboot}})
	}
	ag, err := newAgent()
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}

	if o.Attach != nil {
		// Before the agent runs, so a simulated reboot's Attach of the next
		// agent can never be overtaken by this one.
		o.Attach(&Controls{Agent: ag, world: world, actor: actor, acct: acct, restart: restart})
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	agentDone := make(chan error, 1)
	wg.Add(2)
	go func(cur *agent.Agent) {
		defer wg.Done()
		for {
			actx, acancel := context.WithCancelCause(runCtx)
			done := make(chan error, 1)
			go func() { done <- cur.Run(actx) }()
			select {
			case err := <-done:
				acancel(nil)
				agentDone <- err
				return
			case <-reboots:
				acancel(agent.ErrHardStop)
				<-done
			}
			boot.Add(1)
			acct.Printf(KindScenario, "the device reboots (simulated): the agent starts again with boot id sim-boot-%d", boot.Load()+1)
			next, err := newAgent()
			if err != nil {
				agentDone <- err
				return
			}
			cur = next
			if o.Attach != nil {
				// The console must follow the new device, not the stopped one.
				o.Attach(&Controls{Agent: next, world: world, actor: actor, acct: acct, restart: restart})
			}
		}
	}(ag)
	go func() {
		defer wg.Done()
		_ = world.Run(runCtx)
	}()
	if o.Ready != nil {
		o.Ready(addr)
	}

	p := player{world: world, actor: actor, acct: acct, restart: restart}
	err = p.play(runCtx, start, sc, o.Duration, agentDone)
	cancel()
	wg.Wait()
	select {
	case aerr := <-agentDone:
		if err == nil && aerr != nil && !errors.Is(aerr, context.Canceled) {
			err = fmt.Errorf("sim: the agent stopped: %w", aerr)
		}
	default:
	}
	acct.Summary()
	return err
}

// action is one thing to do at a time: a step, or the end of a press or
// fault.
type action struct {
	at   time.Duration
	step Step
	end  bool
}

// player carries out a scenario.
type player struct {
	world   *World
	actor   *Actor // nil: no cloud side
	acct    *Account
	restart func(context.Context) error // nil: no in-process broker
}

// play carries out the scenario, then waits until duration (0: until ctx
// is done).
func (p *player) play(ctx context.Context, start time.Time, sc *Scenario, duration time.Duration, agentDone chan error) error {
	var acts []action
	for _, st := range sc.Steps {
		acts = append(acts, action{at: st.At, step: st})
		if st.Kind == StepPress || st.Kind == StepFault {
			acts = append(acts, action{at: st.At + st.For, step: st, end: true})
		}
	}
	sort.SliceStable(acts, func(i, j int) bool { return acts[i].at < acts[j].at })
	wait := func(at time.Duration) error {
		t := time.NewTimer(time.Until(start.Add(at)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-agentDone:
			agentDone <- err // Run reads it again
			return fmt.Errorf("sim: the agent stopped before the end: %v", err)
		case <-t.C:
			return nil
		}
	}
	for _, a := range acts {
		if duration > 0 && a.at > duration {
			break
		}
		if err := wait(a.at); err != nil {
			return quiet(err)
		}
		p.do(ctx, a)
	}
	if duration > 0 {
		return quiet(wait(duration))
	}
	if len(sc.Steps) > 0 {
		p.acct.Printf(KindScenario, "the scenario is over; still running (Ctrl-C to stop)")
	}
	<-ctx.Done()
	return nil
}

// quiet turns the end of the run by ctx into success.
func quiet(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func (p *player) do(ctx context.Context, a action) {
	world, actor, acct := p.world, p.actor, p.acct
	st := a.step
	if a.end {
		switch st.Kind {
		case StepPress:
			if err := world.SetPressed(st.Device, false); err != nil {
				acct.Printf(KindFault, "%v", err)
			}
		case StepFault:
			acct.Printf(KindScenario, "%s answers again", st.Device)
			if err := world.SetFault(st.Device, ""); err != nil {
				acct.Printf(KindFault, "%v", err)
			}
		}
		return
	}
	acct.Step(st)
	var err error
	switch st.Kind {
	case StepDesired:
		if actor == nil {
			return
		}
		acct.Sent(st.Shadow, st.Desired, time.Now())
		err = actor.Desired(ctx, st.Shadow, st.Desired)
	case StepPress:
		err = world.SetPressed(st.Device, true)
	case StepFault:
		err = world.SetFault(st.Device, st.Fault)
	case StepAmbient:
		world.SetAmbient(st.Ambient)
	case StepJob:
		if actor == nil {
			return
		}
		err = actor.CreateJob(ctx, st.JobID, st.Job)
	case StepRestartBroker:
		if p.restart == nil {
			err = errors.New("sim: no in-process broker to restart")
			break
		}
		if err = p.restart(ctx); err == nil {
			acct.Printf(KindCloud, "the broker is back; the agent reconnects by itself")
		}
	}
	if err != nil && ctx.Err() == nil {
		acct.Printf(KindFault, "scenario step at %s (%s): %v", st.At, st.Pos, err)
	}
}

// DriveCommand is the command a second terminal runs to change a desired
// value of the simulated device.
func DriveCommand(cfg *config.Config, addr string) string {
	spec := cfg.Spec()
	arg := "led=true"
	var pick string
	for _, k := range spec.Desired {
		if k.Key.Path == "fan" {
			pick = "fan=70"
			if k.Key.Shadow != "" {
				pick = ""
			}
		}
	}
	if pick == "" && len(spec.Desired) > 0 {
		k := spec.Desired[0]
		v := "true"
		switch {
		case k.Type == devices.TypeNumber && k.Range != nil:
			v = fmt.Sprint(math.Round(k.Range.Min + 0.7*(k.Range.Max-k.Range.Min)))
		case k.Type == devices.TypeNumber:
			v = "1"
		case len(k.Choices) > 0:
			v = k.Choices[0]
		}
		pick = k.Key.Path + "=" + v
		if k.Key.Shadow != "" {
			pick += " --name " + k.Key.Shadow
		}
	}
	if pick != "" {
		arg = pick
	}
	return strings.Join([]string{"agent shadow update --endpoint", addr, "--thing", cfg.Thing, "--desired", arg}, " ")
}
