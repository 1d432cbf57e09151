package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
)

// fallbackBoard is what `agent validate` and `agent plan` check pins
// against when the configuration says board: auto and this machine is not
// a Raspberry Pi (a laptop, CI): every Pi since the B+ has its header.
const fallbackBoard = "pi4b"

// runValidate checks a configuration and prints every problem.
func runValidate(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "validate", "--config FILE [--board MODEL]")
	path := fs.String("config", "", "configuration file to check (required)")
	model := fs.String("board", "", "check pins against this board instead of the configuration's (pi4b, pi5, zero2w, …)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path, *model)
	if err != nil {
		return err
	}
	s := cfg.Spec()
	fmt.Fprintf(e.stdout, "ok: %d devices, %d desired keys, %d reported keys\n", len(cfg.Devices), len(s.Desired), len(s.Reported))
	if d := cfg.Connection.Discovery.Describe(cfg.Connection.Endpoint); d != "" {
		fmt.Fprintf(e.stdout, "connection: %s\n", d)
	}
	if cfg.Jobs != nil {
		fmt.Fprintln(e.stdout, cfg.Jobs.String())
	}
	return nil
}

// loadConfig loads path for validate and plan: problems go to stderr one
// per line and come back as an exit-1 error whose message counts them.
func loadConfig(e *env, path, model string) (*config.Config, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: --config is required", errUsage)
	}
	if model != "" {
		if _, err := board.ByName(model); err != nil {
			return nil, fmt.Errorf("%w: --board: %v", errUsage, err)
		}
	}
	var note string
	opts := config.Options{
		ReadFile:  os.ReadFile,
		LookupEnv: os.LookupEnv,
		Board:     model,
		Detect: func() board.Detection {
			d := board.Detect("")
			if d.Source == "fallback" {
				p, _ := board.ByName(fallbackBoard)
				note = fmt.Sprintf("note: board is auto and this machine is not a Raspberry Pi: pins checked against %s (the 40-pin header of every Pi since the B+); use --board to choose another model", fallbackBoard)
				return board.Detection{Profile: p, Source: "override", Note: note}
			}
			return d
		},
	}
	cfg, err := config.Parse(path, opts)
	if note != "" {
		fmt.Fprintln(e.stderr, note)
	}
	var probs config.Errors
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(e.stderr, p.Error())
		}
		word := "problems"
		if len(probs) == 1 {
			word = "problem"
		}
		return nil, &exitError{code: 1, err: fmt.Errorf("%d %s in %s", len(probs), word, path)}
	}
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return cfg, nil
}
