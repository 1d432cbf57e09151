package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pinshadow/pinshadow/internal/atomicfile"
)

// Phase is where a configuration switch stands.
type Phase string

// Phases of a switch, in the order they happen.
const (
	// PhaseVerifying: the new file is in place (or about to be) and an
	// agent on it has not yet proved it can run. Found at start-up, it
	// means the process died during the switch: the switch is rolled back.
	PhaseVerifying Phase = "verifying"
	// PhaseRollingBack: the switch failed (Reason) and the backup is being
	// put back. Found at start-up, the restore is done again.
	PhaseRollingBack Phase = "rolling_back"
	// PhaseApplied: the new configuration runs; final.
	PhaseApplied Phase = "applied"
	// PhaseRolledBack: the previous configuration is back in place and
	// running; final, Reason says why.
	PhaseRolledBack Phase = "rolled_back"
)

// Final reports whether p ends a switch.
func (p Phase) Final() bool { return p == PhaseApplied || p == PhaseRolledBack }

// recordFormat is the version of the record file's layout.
const recordFormat = 1

// Record is the persisted state of the last configuration switch. It lives
// next to the configuration file (RecordPath) rather than in the state
// directory, because the new configuration may name another state
// directory and the record must be found whichever file is in place.
type Record struct {
	Format int `json:"format"`
	// Job is the job execution that asked for the switch.
	Job   string `json:"job"`
	Phase Phase  `json:"phase"`
	// Config is the configuration file; Backup the copy of what it held
	// before.
	Config string `json:"config"`
	Backup string `json:"backup"`
	// VerifyTimeout is how long the new agent had to converge (the value
	// in force when the job arrived: a new file cannot relax it).
	VerifyTimeout time.Duration `json:"verify_timeout"`
	Started       time.Time     `json:"started"`
	Ended         time.Time     `json:"ended,omitzero"`
	// Reason says why the switch was rolled back.
	Reason string `json:"reason,omitempty"`
	// Earlier are the switches before this one (newest first, at most
	// maxEarlier, all final): a job resumed late (from a state directory
	// used again) gets its outcome instead of being applied a second time.
	Earlier []Record `json:"earlier,omitempty"`
}

// maxEarlier bounds Record.Earlier.
const maxEarlier = 16

// find returns the switch of job: r itself or one of the earlier ones.
func (r *Record) find(job string) (Record, bool) {
	if r == nil {
		return Record{}, false
	}
	if r.Job == job {
		return *r, true
	}
	for _, e := range r.Earlier {
		if e.Job == job {
			return e, true
		}
	}
	return Record{}, false
}

// history returns r and its earlier switches as the Earlier of the next.
func (r *Record) history() []Record {
	if r == nil {
		return nil
	}
	top := *r
	top.Earlier = nil
	out := append([]Record{top}, r.Earlier...)
	if len(out) > maxEarlier {
		out = out[:maxEarlier]
	}
	return out
}

// BackupPath is where the configuration at path is kept while a new one is
// tried (and after, until the next switch).
func BackupPath(path string) string { return path + ".previous" }

// RecordPath is where the switch record of the configuration at path is
// kept.
func RecordPath(path string) string { return path + ".apply.json" }

// loadRecord reads the record; a missing file is (nil, nil).
func loadRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the apply-config record %s: %w", path, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("apply-config record %s is corrupt: %w (delete it if no apply-config job is pending)", path, err)
	}
	if r.Format != recordFormat {
		return nil, fmt.Errorf("apply-config record %s has format %d, this agent reads %d (delete it if no apply-config job is pending)", path, r.Format, recordFormat)
	}
	return &r, nil
}

func saveRecord(path string, r Record) error {
	r.Format = recordFormat
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("encoding the apply-config record: %w", err)
	}
	return writeAtomic(path, b, 0o640)
}

// modeOf returns the permissions of the file at path, def when it cannot
// be read (so a backup is as private as the configuration it copies).
func modeOf(path string, def fs.FileMode) fs.FileMode {
	if st, err := os.Stat(path); err == nil {
		return st.Mode().Perm()
	}
	return def
}

// writeAtomic replaces path with b, with mode perm, so that a crash at any
// moment leaves either the old or the new content (internal/atomicfile).
func writeAtomic(path string, b []byte, perm fs.FileMode) error {
	if err := atomicfile.WriteFile(path, b, perm); err != nil {
		dir := filepath.Dir(path)
		return fmt.Errorf("%w (the agent's user needs write access to %s; under systemd add ReadWritePaths=%s)", err, dir, dir)
	}
	return nil
}
