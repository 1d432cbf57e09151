package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v, c := version, commit
	// A plain `go build` inside a checkout stamps VCS info; use it when the
	// linker flags did not set a commit.
	if bi, ok := debug.ReadBuildInfo(); ok && c == "unknown" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				c = s.Value
			}
		}
	}
	fmt.Fprintf(e.stdout, "pinshadow agent %s (commit %s, %s, %s/%s)\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
