package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/configs"
	"github.com/pinshadow/pinshadow/console"
	"github.com/pinshadow/pinshadow/sim"
)

// runSim runs the simulated greenhouse: the local cloud in-process, the
// agent on simulated hardware, and a scripted cloud side.
func runSim(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "sim", "[--config FILE] [--scenario FILE] [--duration D] [--listen ADDR | --cloud ADDR] [--quiet | --json] [--http ADDR|off] [--http-write] [--http-token T]")
	cfgPath := fs.String("config", "", "device configuration (default: configs/sim.yaml, built in)")
	scPath := fs.String("scenario", "", "scenario: a YAML list of timed steps (default: configs/scenarios/default.yaml, built in; 'none' for no steps)")
	duration := fs.Duration("duration", 0, "stop after this long and exit 0 (default: run the scenario, then until Ctrl-C)")
	listen := fs.String("listen", "", "address of the in-process cloud (default 127.0.0.1 on a free port)")
	cloud := fs.String("cloud", "", "use the cloud already running at host:port (e.g. agent cloud) instead of starting one")
	quiet := fs.Bool("quiet", false, "print only desired changes, rejections, deltas cleared, faults and connection changes")
	asJSON := fs.Bool("json", false, "print the account as one JSON object per line")
	logLevel := fs.String("log-level", "error", "agent and cloud logs on stderr: debug, info, warn or error")
	web := addConsoleFlags(fs, defaultSimConsole)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *duration < 0 {
		return fmt.Errorf("%w: --duration %s is negative", errUsage, *duration)
	}
	if *listen != "" && *cloud != "" {
		return fmt.Errorf("%w: --listen starts a cloud and --cloud uses another; give one", errUsage)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, *logLevel)
	}

	cfg, err := loadSimConfig(e, *cfgPath)
	if err != nil {
		return err
	}
	sc, err := loadScenario(e, *scPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	var events func(agent.Event)
	var attach func(*sim.Controls)
	wc, err := web.start(logger.With("part", "console"))
	if err != nil {
		return err
	}
	if wc != nil {
		defer wc.stop()
		if *asJSON {
			b, _ := json.Marshal(map[string]any{"t": 0, "kind": "console", "text": "web console: " + wc.url, "url": wc.url})
			fmt.Fprintf(e.stdout, "%s\n", b)
		} else {
			fmt.Fprintf(e.stdout, "web console: %s\n", wc.url)
		}
		events = wc.srv.Publish
		attach = func(c *sim.Controls) {
			wc.srv.Attach(console.Source{Mode: "sim", Agent: c.Agent, Desired: c.Desired, Faults: simFaults{c}})
		}
	}
	err = sim.Run(ctx, sim.Options{
		Config:   cfg,
		Scenario: sc,
		Listen:   *listen,
		Cloud:    *cloud,
		Duration: *duration,
		Out:      e.stdout,
		JSON:     *asJSON,
		Quiet:    *quiet,
		Logger:   logger,
		Events:   events,
		Attach:   attach,
	})
	var probs config.Errors
	if errors.As(err, &probs) {
		printProblems(e, probs)
		return &exitError{code: 2, err: errors.New(countProblems(probs, "the scenario"))}
	}
	if errors.Is(err, sim.ErrScenario) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}

// loadSimConfig loads the configuration, the built-in configs/sim.yaml
// when path is "". Problems are printed one per line; the error exits 2.
func loadSimConfig(e *env, path string) (*config.Config, error) {
	name := path
	read := os.ReadFile
	if path == "" {
		name = configs.SimName
		read = func(f string) ([]byte, error) {
			if f == configs.SimName {
				return configs.Sim(), nil
			}
			return os.ReadFile(f)
		}
	}
	cfg, err := config.Parse(name, config.Options{
		ReadFile:  read,
		LookupEnv: os.LookupEnv,
		// The simulation has no real board: pins are checked against the
		// board the file names, or a Pi 4 header for "auto".
		Detect: func() board.Detection {
			p, _ := board.ByName(fallbackBoard)
			return board.Detection{Profile: p, Source: "override"}
		},
	})
	var probs config.Errors
	if errors.As(err, &probs) {
		printProblems(e, probs)
		return nil, &exitError{code: 2, err: errors.New(countProblems(probs, name))}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}

// loadScenario reads the scenario, the built-in default when path is ""
// and an empty one for "none".
func loadScenario(e *env, path string) (*sim.Scenario, error) {
	name, data := configs.DefaultScenarioName, configs.DefaultScenario()
	switch path {
	case "":
	case "none":
		return &sim.Scenario{File: "none"}, nil
	default:
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: --scenario: %v", errUsage, err)
		}
		name, data = path, b
	}
	sc, err := sim.ParseScenario(name, data)
	var probs config.Errors
	if errors.As(err, &probs) {
		printProblems(e, probs)
		return nil, &exitError{code: 2, err: errors.New(countProblems(probs, name))}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return sc, nil
}

func printProblems(e *env, probs config.Errors) {
	for _, p := range probs {
		fmt.Fprintln(e.stderr, p.Error())
	}
}

func countProblems(probs config.Errors, name string) string {
	word := "problems"
	if len(probs) == 1 {
		word = "problem"
	}
	return fmt.Sprintf("%d %s in %s", len(probs), word, name)
}
