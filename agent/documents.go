package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/pinshadow/pinshadow/shadowsync"
)

// ErrNotRunning is returned by UpdateDesired when the agent is not running
// (not started yet, or stopped).
var ErrNotRunning = errors.New("agent: not running")

// ShadowDocument is the agent's copy of one shadow's document: what it last
// saw of desired and reported and the delta between them.
type ShadowDocument struct {
	Name    string `json:"name"` // "" classic
	Known   bool   `json:"known"`
	Exists  bool   `json:"exists"`
	Version int64  `json:"version"`
	// Desired, Reported and Delta are nil when empty; numbers are
	// json.Number, exactly as the service sent them.
	Desired  map[string]any `json:"desired,omitempty"`
	Reported map[string]any `json:"reported,omitempty"`
	Delta    map[string]any `json:"delta,omitempty"`
	InSync   bool           `json:"in_sync"`
}

// ShadowDocuments returns the agent's mirror of every shadow, sorted by
// name (nil when the agent is not running). Safe from any goroutine.
func (a *Agent) ShadowDocuments() []ShadowDocument {
	a.mu.Lock()
	r := a.live
	a.mu.Unlock()
	if r == nil {
		return nil
	}
	docs := make([]ShadowDocument, 0, len(r.shadows))
	for _, name := range sortedKeys(r.shadows) {
		m := r.shadows[name].Mirror()
		docs = append(docs, ShadowDocument{Name: name, Known: m.Known, Exists: m.Exists, Version: m.Version,
			Desired: m.Desired, Reported: m.Reported, Delta: m.Delta, InSync: m.InSync})
	}
	return docs
}

// UpdateDesired publishes a desired update of shadow ("" classic) through the
// shadow service, as a cloud application would: the change comes back to
// the agent as a delta and is applied (or rejected) like any other. It
// returns once the service accepted the update (or rejected it: the error
// wraps shadowsync's sentinels). Safe from any goroutine.
func (a *Agent) UpdateDesired(ctx context.Context, shadow string, patch map[string]any) error {
	a.mu.Lock()
	r := a.live
	a.mu.Unlock()
	if r == nil {
		return ErrNotRunning
	}
	sh, ok := r.shadows[shadow]
	if !ok {
		return fmt.Errorf("agent: no shadow %q in the configuration", shadow)
	}
	if _, err := sh.Update(ctx, shadowsync.UpdateRequest{Desired: patch}); err != nil {
		return fmt.Errorf("agent: desired update of shadow %q: %w", shadow, err)
	}
	return nil
}
