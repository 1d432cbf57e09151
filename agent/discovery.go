package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/discovery"
	"github.com/pinshadow/pinshadow/iot"
)

// DiscoveryDir is the directory under state_dir where Greengrass discovery
// keeps the group CAs and the last answer (for starts without internet).
const DiscoveryDir = "discovery"

// discoveryCache is the last successful discovery answer.
const discoveryCache = "response.json"

// newClient builds the connection's iot client and says what it connects
// to: the configured endpoint, or with connection.discovery a Greengrass
// core found through the discovery API (the endpoint being the fallback).
// An endpoint override (Deps.Endpoint) skips discovery.
func (a *Agent) newClient(ctx context.Context, cfg *config.Config) (*iot.Client, string, error) {
	ic, err := iotConfig(cfg, a.deps.Endpoint)
	if err != nil {
		return nil, "", err
	}
	direct := func(why string) (*iot.Client, string, error) {
		cl, err := iot.New(ic)
		if err != nil {
			return nil, "", fmt.Errorf("agent: connection %s: %w", endpointString(cfg, a.deps.Endpoint), err)
		}
		return cl, endpointString(cfg, a.deps.Endpoint) + why, nil
	}
	d := cfg.Connection.Discovery
	if !d.Enabled || a.deps.Endpoint != "" {
		return direct("")
	}
	conn, err := a.discover(ctx, cfg, ic)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("agent: Greengrass discovery: %w", err)
		}
		if !d.Fallback {
			return nil, "", fmt.Errorf("agent: Greengrass discovery: %w (set connection.discovery.fallback: true to use the endpoint instead)", err)
		}
		a.log.Warn("Greengrass discovery failed; connecting to the endpoint instead", "err", err)
		return direct(" (discovery fallback)")
	}
	if conn.Fallback {
		a.log.Warn("no Greengrass core reachable; connecting to the endpoint instead", "tried", len(conn.Failed))
		return conn.Client, endpointString(cfg, "") + " (discovery fallback)", nil
	}
	// The probe's client came online before the shadows subscribed: close
	// it and let the agent connect its own, so its start-up runs as usual.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = conn.Client.Close(cctx)
	cancel()
	cl, err := iot.New(conn.Config)
	if err != nil {
		return nil, "", fmt.Errorf("agent: connection to Greengrass %s: %w", conn.Candidate, err)
	}
	via := fmt.Sprintf("mqtts://%s (Greengrass core %s, entry %q)", conn.Config.Endpoint, conn.Candidate.CoreArn, conn.Candidate.Entry.ID)
	a.log.Info("Greengrass core chosen", "core", conn.Candidate.CoreArn, "entry", conn.Candidate.Entry.ID, "endpoint", conn.Config.Endpoint, "group", conn.Candidate.GroupID)
	return cl, via, nil
}

// discover asks the discovery API (falling back to the last answer when it
// cannot be reached) and probes the cores.
func (a *Agent) discover(ctx context.Context, cfg *config.Config, ic iot.Config) (*discovery.Connection, error) {
	d := cfg.Connection.Discovery
	dir := filepath.Join(filepath.Dir(statePath(cfg)), DiscoveryDir)
	dc, err := discovery.New(discovery.Config{
		Endpoint: d.Endpoint, CertFile: ic.CertFile, KeyFile: ic.KeyFile, CAFile: d.CAFile, Timeout: d.Timeout,
	})
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	a.log.Info("Greengrass discovery", "endpoint", dc.Endpoint(), "thing", cfg.Thing)
	resp, err := discovery.Retry{
		Attempts: d.Attempts,
		OnRetry: func(n int, err error, wait time.Duration) {
			a.log.Warn("Greengrass discovery failed; retrying", "attempt", n, "retry_in", wait, "err", err)
		},
	}.Do(ctx, dc, cfg.Thing)
	switch {
	case err == nil:
		if werr := saveDiscovery(dir, resp); werr != nil {
			a.log.Warn("cannot keep the discovery answer for offline starts", "err", werr)
		}
	case discovery.Permanent(err) || ctx.Err() != nil:
		return nil, err
	default:
		cached, cerr := loadDiscovery(dir)
		if cerr != nil {
			return nil, err
		}
		a.log.Warn("Greengrass discovery unreachable; using the last answer", "err", err, "file", filepath.Join(dir, discoveryCache))
		resp = cached
	}
	return discovery.Connect(ctx, resp, discovery.ConnectOptions{
		Device: ic, CADir: dir, EntryTimeout: d.ConnectTimeout, Fallback: d.Fallback,
		OnAttempt: func(at discovery.Attempt) {
			a.log.Warn("Greengrass core not reachable", "core", at.Candidate.CoreArn, "entry", at.Candidate.Entry.ID, "err", at.Err)
		},
	})
}

func saveDiscovery(dir string, r *discovery.Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, discoveryCache+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, discoveryCache))
}

func loadDiscovery(dir string) (*discovery.Response, error) {
	b, err := os.ReadFile(filepath.Join(dir, discoveryCache))
	if err != nil {
		return nil, err
	}
	r, err := discovery.Parse(b)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cached discovery answer %s", filepath.Join(dir, discoveryCache)), err)
	}
	return r, nil
}
