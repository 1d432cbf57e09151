package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/pinshadow/pinshadow/config"
)

// runPlan prints which shadow key drives or reads which device, and how.
func runPlan(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "plan", "--config FILE [--board MODEL]")
	path := fs.String("config", "", "configuration file (required)")
	model := fs.String("board", "", "resolve pins on this board instead of the configuration's (pi4b, pi5, zero2w, …)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path, *model)
	if err != nil {
		return err
	}
	writePlan(e, cfg)
	return nil
}

// writePlan prints the plan table, then the interlock groups and the
// outputs' safety settings.
func writePlan(e *env, cfg *config.Config) {
	fmt.Fprintf(e.stdout, "thing %s on %s (%s)\n", cfg.Thing, cfg.Profile.Title, cfg.Profile.Name)
	if d := cfg.Connection.Discovery.Describe(cfg.Connection.Endpoint); d != "" {
		fmt.Fprintf(e.stdout, "connection: %s\n", d)
	}
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SHADOW KEY\tDEVICE\tPROPERTY\tWIRING\tDIRECTION\tINTERVAL")
	for _, r := range cfg.Plan() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Key, r.Device, r.Property, r.Wiring, r.Direction, r.Interval)
	}
	_ = tw.Flush()
	s := cfg.Spec()
	for _, il := range s.Interlocks {
		keys := make([]string, len(il.Keys))
		for i, k := range il.Keys {
			keys[i] = k.Path
			if k.Shadow != "" {
				keys[i] = k.Shadow + ":" + k.Path
			}
		}
		fmt.Fprintf(e.stdout, "\ninterlock %s: at most one of %s on at a time", il.Name, strings.Join(keys, ", "))
	}
	if len(s.Interlocks) > 0 {
		fmt.Fprintln(e.stdout)
	}
	if cfg.Jobs != nil {
		fmt.Fprintf(e.stdout, "\n%s\n", cfg.Jobs)
	}
}
