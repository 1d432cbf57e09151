package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/agent/jobrun"
)

// Status is a snapshot of the running agent, for `agent status`.
type Status struct {
	Thing   string    `json:"thing"`
	Config  []string  `json:"config,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Now     time.Time `json:"now"`
	// Running is true while Run is in its loop; Ready once the first
	// convergence with every shadow is done.
	Running bool `json:"running"`
	Ready   bool `json:"ready"`
	// Heartbeat is when the reconcile loop last finished an iteration.
	Heartbeat  time.Time        `json:"heartbeat,omitzero"`
	Connection ConnectionStatus `json:"connection"`
	// LastError is the most recent problem (connection, report, write,
	// read, state file), with when it happened.
	LastError   string         `json:"last_error,omitempty"`
	LastErrorAt time.Time      `json:"last_error_at,omitzero"`
	Shadows     []ShadowStatus `json:"shadows,omitempty"`
	Keys        []KeyStatus    `json:"keys,omitempty"`
	Sensors     []SensorStatus `json:"sensors,omitempty"`
	// StateFile is where reconcile state is kept; StateError the last
	// failure reading or writing it ("" when fine).
	StateFile  string `json:"state_file,omitempty"`
	StateError string `json:"state_error,omitempty"`
	// Jobs is the job runner's state (nil: no jobs: section, or stopped).
	Jobs *jobrun.Snapshot `json:"jobs,omitempty"`
}

// ConnectionStatus is the MQTT connection's state.
type ConnectionStatus struct {
	Endpoint string `json:"endpoint"`
	// State is idle, connecting, online, offline or closed.
	State string `json:"state"`
	// Since is when the connection came up (online) or went down.
	Since       time.Time `json:"since,omitzero"`
	Connects    uint64    `json:"connects"`
	Drops       uint64    `json:"drops"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Queued is the offline queue's depth (telemetry waiting to be sent).
	Queued  int    `json:"queued"`
	Dropped uint64 `json:"dropped"`
}

// ShadowStatus is one shadow's sync state.
type ShadowStatus struct {
	Name    string `json:"name"` // "" classic
	Known   bool   `json:"known"`
	Version int64  `json:"version"`
	InSync  bool   `json:"in_sync"`
	// PendingReports counts coalesced reported patches not yet accepted.
	PendingReports int       `json:"pending_reports"`
	LastError      string    `json:"last_error,omitempty"`
	RetryAt        time.Time `json:"retry_at,omitzero"`
}

// KeyStatus is one desired key's last result.
type KeyStatus struct {
	Key      string `json:"key"`
	Device   string `json:"device"`
	Property string `json:"property"`
	// Value is the shadow-side value last applied from desired (nil: none
	// yet); Hardware what the output holds now, in device terms.
	Value    any       `json:"value,omitempty"`
	Hardware any       `json:"hardware,omitempty"`
	Status   string    `json:"status,omitempty"`
	Code     int       `json:"code,omitempty"`
	Message  string    `json:"message,omitempty"`
	Version  int64     `json:"version,omitempty"`
	At       time.Time `json:"at,omitzero"`
	ApplyAt  time.Time `json:"apply_at,omitzero"`
	// Latency is the time from the delta to the hardware write of the last
	// desired change applied.
	Latency time.Duration `json:"latency_ns,omitempty"`
}

// SensorStatus is one reported key's last reading.
type SensorStatus struct {
	Key      string    `json:"key"`
	Device   string    `json:"device"`
	Property string    `json:"property"`
	Value    any       `json:"value,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at,omitzero"`
}

// StatusHandler serves the agent's Status as JSON on any path (GET only).
func (a *Agent) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "only GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
}

// StatusSocket is the status socket's file name inside the state directory.
const StatusSocket = "status.sock"

// ListenStatus opens the status listener: a unix socket at
// StateDir/status.sock when addr is "" (a stale socket file is replaced),
// "unix:PATH" for another socket, or a TCP host:port.
func ListenStatus(stateDir, addr string) (net.Listener, error) {
	path := ""
	switch {
	case addr == "":
		path = filepath.Join(stateDir, StatusSocket)
	case strings.HasPrefix(addr, "unix:"):
		path = strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		path = addr
	}
	if path == "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("status endpoint: listen on %s: %w (choose another --status-addr)", addr, err)
		}
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("status socket: create %s: %w", filepath.Dir(path), err)
	}
	// A socket left by a previous run that died: nobody answers on it.
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("status socket %s: another agent is already running and answering on it", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: listen on %s: %w (check that the state directory is writable)", path, err)
	}
	_ = os.Chmod(path, 0o660)
	return ln, nil
}

// ServeStatus serves StatusHandler on ln until ctx is done, then closes it.
func (a *Agent) ServeStatus(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.StatusHandler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		if ln.Addr().Network() == "unix" {
			_ = os.Remove(ln.Addr().String())
		}
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("status endpoint: %w", err)
	}
}
