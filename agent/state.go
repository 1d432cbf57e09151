package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pinshadow/pinshadow/internal/atomicfile"
	"github.com/pinshadow/pinshadow/shadowsync/reconcile"
)

// StateFile is the reconcile state's file name inside the state directory.
const StateFile = "state.json"

// stateFormat is the state file's format version.
const stateFormat = 1

type stateDoc struct {
	Format int             `json:"format"`
	Thing  string          `json:"thing"`
	State  reconcile.State `json:"state"`
}

// errCorruptState marks a state file that exists but cannot be used.
var errCorruptState = errors.New("state file is corrupt")

// loadState reads the state file. A missing file is a fresh device (zero
// State, nil error); an unreadable or corrupt one returns the zero State and
// an error saying so (wrapping errCorruptState when the content is bad).
func loadState(path, thing string) (reconcile.State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return reconcile.State{}, nil
	}
	if err != nil {
		return reconcile.State{}, fmt.Errorf("reading state file %s: %w; starting from boot values", path, err)
	}
	var d stateDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return reconcile.State{}, fmt.Errorf("%w: %s: %v; starting from boot values (the file is replaced at the next change)", errCorruptState, path, err)
	}
	if d.Format != stateFormat {
		return reconcile.State{}, fmt.Errorf("%w: %s has format %d, this agent writes %d; starting from boot values", errCorruptState, path, d.Format, stateFormat)
	}
	if d.Thing != "" && thing != "" && d.Thing != thing {
		return reconcile.State{}, fmt.Errorf("%w: %s belongs to thing %q, the configuration names %q; starting from boot values", errCorruptState, path, d.Thing, thing)
	}
	return d.State, nil
}

// clampFuture moves output changes recorded in the future to now. A saved
// time is wall-clock only; one after now means the clock went back since
// (a Pi without an RTC boots with an old time until NTP answers), and
// min_toggle_interval would otherwise hold the output for as long as the
// clock is behind — years for a clock at 1970. Counting the interval from
// now keeps the protection without the stall.
func clampFuture(st reconcile.State, now time.Time) reconcile.State {
	for o, os := range st.Outputs {
		if os.LastChange.After(now) {
			os.LastChange = now
			st.Outputs[o] = os
		}
	}
	return st
}

// encodeState renders the state file's content.
func encodeState(st reconcile.State, thing string) ([]byte, error) {
	return json.MarshalIndent(stateDoc{Format: stateFormat, Thing: thing, State: st}, "", " ")
}

// writeAtomic replaces path with b so that a crash at any moment leaves
// either the old or the new content (internal/atomicfile).
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("writing state file: %w (is the directory writable by the agent's user, and the disk not full?)", err)
	}
	return nil
}
