package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"syscall"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/agent/sdnotify"
	"github.com/pinshadow/pinshadow/agent/supervisor"
	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/console"
	"github.com/pinshadow/pinshadow/metrics"
)

// runOptions is what runAgent needs besides the flags; runRun fills it from
// the process, tests with fakes.
type runOptions struct {
	configPath  string
	logFormat   string
	logLevel    string
	statusAddr  string
	metricsAddr string               // --metrics-listen ("" = no metrics)
	web         *consoleFlags        // the web console (nil: none)
	deps        agent.Deps           // HAL, endpoint, … (zero: the real machine)
	hup         <-chan os.Signal     // reload requests
	getenv      func(string) string  // NOTIFY_SOCKET, WATCHDOG_USEC
	watchdog    <-chan time.Time     // replaces the watchdog ticker (tests)
	started     func(a *agent.Agent) // called once the agent exists (tests)
	// configSwitch is the supervisor, for the apply-config job type (set
	// by superviseAgent for each generation).
	configSwitch jobrun.ConfigSwitch
	// reboot overrides the reboot job type's options from the
	// configuration where set (tests: a fake command and boot id).
	reboot jobrun.RebootOptions
}

// runRun is `agent run`: the daemon.
func runRun(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "run", "--config FILE [--log-format text|json] [--log-level LEVEL] [--status-addr ADDR] [--metrics-listen ADDR] [--http ADDR [--http-write] [--http-token T]]")
	o := runOptions{}
	fs.StringVar(&o.configPath, "config", "", "configuration file (required)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json (json for journald/log shippers)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.statusAddr, "status-addr", "", "serve `agent status` on this address: host:port (HTTP) or unix:PATH (default: unix socket status.sock in state_dir)")
	o.web = addConsoleFlags(fs, "")
	fs.StringVar(&o.metricsAddr, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9100 (default: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	o.hup, o.getenv = hup, os.Getenv
	return runAgent(ctx, e, o)
}

// newLogger builds the slog logger the flags ask for.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, format)
}

// parseRunConfig loads the daemon's configuration; problems come back in
// the error, one per line.
func parseRunConfig(path string) (*config.Config, error) {
	cfg, err := config.Parse(path, config.Options{
		ReadFile:  os.ReadFile,
		LookupEnv: os.LookupEnv,
		Detect:    func() board.Detection { return board.Detect("") },
	})
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

func runAgent(ctx context.Context, e *env, o runOptions) error {
	if o.configPath == "" {
		return fmt.Errorf("%w: --config is required", errUsage)
	}
	log, err := newLogger(e.stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	if o.getenv == nil {
		o.getenv = func(string) string { return "" }
	}
	// The supervisor (supervise.go) runs runGeneration once per
	// configuration: again after an apply-config job switched the file.
	return superviseAgent(ctx, e, o, log)
}

// runGeneration runs one agent on g.Config until ctx is done (nil) or the
// agent stops by itself.
func runGeneration(ctx context.Context, e *env, o runOptions, log *slog.Logger, g *supervisor.Generation) error {
	cfg := g.Config
	if cfg.BoardNote != "" {
		log.Info(cfg.BoardNote)
	}
	deps := o.deps
	deps.Logger = log
	sent := newDeliveries()
	deps.Events = observeEvents(g, sent, deps.Events)
	deps.JobTypes = systemJobTypes(o, cfg, sent, deps.JobTypes)
	// The console lives as long as one generation: an apply-config restart
	// rebinds it and the page's event stream reconnects.
	var wc *runningConsole
	if o.web != nil {
		var err error
		if wc, err = o.web.start(log.With("part", "console")); err != nil {
			return err
		}
	}
	if wc != nil {
		defer wc.stop()
		if prev := deps.Events; prev != nil {
			deps.Events = func(ev agent.Event) { prev(ev); wc.srv.Publish(ev) }
		} else {
			deps.Events = wc.srv.Publish
		}
	}
	var reg *metrics.Registry
	var met *agent.Metrics
	if o.metricsAddr != "" {
		reg = metrics.NewRegistry()
		metrics.RegisterProcess(reg)
		met = agent.NewMetrics(reg)
		if prev := deps.Events; prev != nil {
			deps.Events = func(ev agent.Event) { met.Observe(ev); prev(ev) }
		} else {
			deps.Events = met.Observe
		}
		deps.Shadow.Observer = met
	}
	a, err := agent.New(cfg, deps)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	g.Started(a)
	if wc != nil {
		wc.srv.Attach(console.Source{Mode: "run", Agent: a, Desired: a.UpdateDesired})
		log.Info("web console", "url", wc.url, "write", o.web.write)
	}
	if met != nil {
		met.Watch(a)
	}
	if o.started != nil {
		o.started(a)
	}
	notify := sdnotify.FromEnv(o.getenv)

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()

	// Helpers owned here, stopped before returning.
	helpers, stopHelpers := context.WithCancel(context.Background())
	var helpersDone []chan struct{}
	spawn := func(f func()) {
		c := make(chan struct{})
		helpersDone = append(helpersDone, c)
		go func() { defer close(c); f() }()
	}
	defer func() {
		stopHelpers()
		for _, c := range helpersDone {
			<-c
		}
	}()

	if ln, err := agent.ListenStatus(stateDir(cfg), o.statusAddr); err != nil {
		log.Error("status endpoint not available; the agent runs without it", "err", err)
	} else {
		log.Info("status endpoint", "addr", ln.Addr().String())
		spawn(func() {
			if err := a.ServeStatus(helpers, ln); err != nil {
				log.Error("status endpoint stopped", "err", err)
			}
		})
	}
	if reg != nil {
		if ln, err := metrics.Listen(o.metricsAddr); err != nil {
			log.Error("metrics endpoint not available; the agent runs without it", "err", err)
		} else {
			log.Info("metrics endpoint", "url", "http://"+ln.Addr().String()+"/metrics")
			spawn(func() {
				if err := reg.Serve(helpers, ln); err != nil {
					log.Error("metrics endpoint stopped", "err", err)
				}
			})
		}
	}
	if iv := sdnotify.WatchdogInterval(o.getenv, os.Getpid()); iv > 0 || o.watchdog != nil {
		// The loop beats at least every second; a beat older than the
		// watchdog interval means it is stuck.
		maxAge := iv
		if maxAge < 3*time.Second {
			maxAge = 3 * time.Second
		}
		spawn(func() {
			notify.RunWatchdog(helpers, iv, func() bool { return a.Alive(maxAge) }, o.watchdog, func() {
				log.Error("reconcile loop not responding; withholding the systemd watchdog ping", "last_beat", a.LastBeat())
			})
		})
	}
	ready := a.Ready()
	for {
		select {
		case <-ready:
			ready = nil
			if err := notify.Notify(sdnotify.Ready, "STATUS=converged with the cloud"); err != nil && !errors.Is(err, sdnotify.ErrNoSocket) {
				log.Warn("sd_notify READY failed", "err", err)
			}
		case <-o.hup:
			_ = notify.Notify(sdnotify.Reloading)
			log.Info("SIGHUP: reloading the configuration", "file", o.configPath)
			ncfg, err := parseRunConfig(o.configPath)
			if err == nil {
				err = a.Reload(ncfg)
			}
			if err != nil {
				log.Error("reload refused; the running configuration stays in force", "reason", err.Error())
			}
			_ = notify.Notify(sdnotify.Ready)
		case err := <-done:
			_ = notify.Notify(sdnotify.Stopping)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		case <-ctx.Done():
			log.Info("stopping: final report and disconnect")
			_ = notify.Notify(sdnotify.Stopping)
			cancelRun()
			select {
			case err := <-done:
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				return nil
			case <-time.After(15 * time.Second):
				return &exitError{code: 1, err: errors.New("the agent did not stop within 15s; exiting anyway")}
			}
		}
	}
}

func stateDir(cfg *config.Config) string {
	if cfg.StateDir != "" {
		return cfg.StateDir
	}
	return config.DefaultStateDir
}
