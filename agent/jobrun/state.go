package jobrun

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
)

// StateFile is the runner's file name inside the agent's state directory.
const StateFile = "jobs.json"

const stateFormat = 1

// stateDoc is what survives a restart: the execution being run and the
// statuses not yet accepted by the service.
type stateDoc struct {
	Format  int      `json:"format"`
	Thing   string   `json:"thing,omitempty"`
	Current *current `json:"current,omitempty"`
	Outbox  []Update `json:"outbox,omitempty"`
}

// current is the execution being run.
type current struct {
	JobID           string          `json:"job_id"`
	ExecutionNumber int64           `json:"execution_number,omitempty"`
	Type            string          `json:"type"`
	Document        json.RawMessage `json:"document"`
	// Details are the last progress statusDetails.
	Details   Details   `json:"details,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

var errCorruptState = errors.New("jobs state file is corrupt")

func loadState(path, thing string) (stateDoc, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return stateDoc{}, nil
	}
	if err != nil {
		return stateDoc{}, fmt.Errorf("reading %s: %w", path, err)
	}
	var d stateDoc
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&d); err != nil {
		return stateDoc{}, fmt.Errorf("%w: %s: %v (replaced at the next job)", errCorruptState, path, err)
	}
	if d.Format != stateFormat {
		return stateDoc{}, fmt.Errorf("%w: %s has format %d, this agent writes %d", errCorruptState, path, d.Format, stateFormat)
	}
	if d.Thing != "" && thing != "" && d.Thing != thing {
		return stateDoc{}, fmt.Errorf("%w: %s belongs to thing %q, not %q", errCorruptState, path, d.Thing, thing)
	}
	return d, nil
}

// saveLocked writes the state atomically; r.mu is held.
func (r *Runner) saveLocked() error {
	r.st.Format, r.st.Thing = stateFormat, r.opts.Thing
	b, err := json.MarshalIndent(r.st, "", " ")
	if err != nil {
		return fmt.Errorf("encoding jobs state: %w", err)
	}
	return writeAtomic(r.opts.StatePath, b)
}

// writeAtomic replaces path with b so that a crash at any moment leaves
// either the old or the new content (internal/atomicfile).
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("writing jobs state: %w (is the directory writable, the disk not full?)", err)
	}
	return nil
}
