package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.snapshot(true))
}

// handleEvents is the Server-Sent Events stream: a full "status" snapshot
// first (and again after falling behind), then every agent event as an
// "agent" event and, at most every StatusEvery after a change (and at least
// every Keepalive), a fresh "status". It ends when the client goes away or
// the server stops.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	sub := s.hub.subscribe()
	defer s.hub.unsubscribe(sub)

	send := func(name string, id uint64, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if id > 0 {
			fmt.Fprintf(&buf, "id: %d\n", id)
		}
		fmt.Fprintf(&buf, "event: %s\ndata: %s\n\n", name, b)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		return rc.Flush()
	}
	// retry: how soon the browser reconnects after the server went away.
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	if err := send("status", 0, s.snapshot(true)); err != nil {
		return
	}
	throttle := time.NewTimer(s.o.Keepalive)
	defer throttle.Stop()
	dirty := false
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-sub.c:
			if s.hub.takeLag(sub) {
				// Events were dropped: start over from a full snapshot.
				if err := send("status", 0, s.snapshot(true)); err != nil {
					return
				}
				continue
			}
			if err := send("agent", e.Seq, e); err != nil {
				return
			}
			if !dirty {
				dirty = true
				throttle.Reset(s.o.StatusEvery)
			}
		case <-throttle.C:
			if err := send("status", 0, s.snapshot(false)); err != nil {
				return
			}
			dirty = false
			throttle.Reset(s.o.Keepalive)
		}
	}
}

// desiredRequest is POST /api/desired: set the desired value of one
// configured key (null clears it, as in AWS).
type desiredRequest struct {
	Key   string          `json:"key"` // "path" or "shadow/path", as in the status
	Value json.RawMessage `json:"value"`
}

func (s *Server) handleDesired(w http.ResponseWriter, r *http.Request) {
	src := s.source()
	if src.Desired == nil || src.Agent == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the agent is not running yet, or this console cannot change desired values"})
		return
	}
	var req desiredRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the request is not valid JSON: " + err.Error()})
		return
	}
	var key *Key
	snap := s.snapshot(false)
	for i := range snap.Keys {
		if snap.Keys[i].Key == req.Key {
			key = &snap.Keys[i]
		}
	}
	if key == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("%q is not a desired key of the configuration", req.Key)})
		return
	}
	if len(bytes.TrimSpace(req.Value)) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "value is missing (send null to clear the key)"})
		return
	}
	dec := json.NewDecoder(bytes.NewReader(req.Value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "value is not valid JSON: " + err.Error()})
		return
	}
	patch := nest(key.Path, v)
	if err := src.Desired(r.Context(), key.Shadow, patch); err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "the shadow service did not take the update: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"sent": patch, "shadow": key.Shadow})
}

// nest turns "a.b" and v into {"a":{"b":v}}.
func nest(path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	m := map[string]any{parts[len(parts)-1]: v}
	for i := len(parts) - 2; i >= 0; i-- {
		m = map[string]any{parts[i]: m}
	}
	return m
}

type faultRequest struct {
	Kind   string `json:"kind"`
	Device string `json:"device"`
}

func (s *Server) handleFault(w http.ResponseWriter, r *http.Request) {
	src := s.source()
	if src.Faults == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "fault injection exists only in simulation (agent sim)"})
		return
	}
	var req faultRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the request is not valid JSON: " + err.Error()})
		return
	}
	known := false
	for _, f := range src.Faults.List() {
		known = known || (f.Kind == req.Kind && f.Device == req.Device)
	}
	if !known {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("no fault %q on %q in this simulation", req.Kind, req.Device)})
		return
	}
	if err := src.Faults.Inject(r.Context(), req.Kind, req.Device); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, r.Context().Err()) {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, req)
}
