package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/discovery"
	"github.com/pinshadow/pinshadow/internal/atomicfile"
	"github.com/pinshadow/pinshadow/iot"
)

// DiscoveryDir is the directory under state_dir where Greengrass discovery
// keeps the last answer, group CAs included (for starts without internet).
const DiscoveryDir = "discovery"

// discoveryCache is the last successful discovery answer.
const discoveryCache = "response.json"

// newClient builds the connection's iot client and says what it connects
// to: the configured endpoint, or with connection.discovery the Greengrass
// cores of the discovery API's answer through a discovery.Router (the
// endpoint being the fallback). The router asks discovery at the client's
// first attempt, not here, so start-up (and the outputs) never wait on it;
// it moves the client between core addresses and asks again when none
// answers. via is "" then: the client's Destination says where it is. An
// endpoint override (Deps.Endpoint) skips discovery.
func (a *Agent) newClient(cfg *config.Config) (cl *iot.Client, via string, err error) {
	ic, err := iotConfig(cfg, a.deps.Endpoint)
	if err != nil {
		return nil, "", err
	}
	d := cfg.Connection.Discovery
	if !d.Enabled || a.deps.Endpoint != "" {
		cl, err := iot.New(ic)
		if err != nil {
			return nil, "", fmt.Errorf("agent: connection %s: %w", endpointString(cfg, a.deps.Endpoint), err)
		}
		return cl, endpointString(cfg, a.deps.Endpoint), nil
	}
	asked := false
	ro := discovery.RouterOptions{
		// The first time: every try, then the cached answer (a start
		// without internet); later the API once per round that failed.
		// Called from the client's connection goroutine only.
		Rediscover: func(ctx context.Context) (*discovery.Response, error) {
			first := !asked
			asked = true
			if first {
				return a.discover(ctx, cfg, ic)
			}
			return a.askDiscovery(ctx, cfg, ic, 1)
		},
		Interval: d.RediscoverInterval,
		Logger:   a.log,
	}
	if d.Fallback {
		// The configured endpoint, with its own CA (Amazon's).
		ro.Fallback = &iot.Route{Name: endpointString(cfg, "") + " (discovery fallback)"}
	}
	ic.Router = discovery.NewRouter(nil, ro)
	if ic.ConnectTimeout == 0 || ic.ConnectTimeout > d.ConnectTimeout {
		ic.ConnectTimeout = d.ConnectTimeout // per core address: the next may answer
	}
	cl, err = iot.New(ic)
	if err != nil {
		return nil, "", fmt.Errorf("agent: connection through Greengrass discovery: %w", err)
	}
	return cl, "", nil
}

// discover asks the discovery API, falling back to the last answer when it
// cannot be reached.
func (a *Agent) discover(ctx context.Context, cfg *config.Config, ic iot.Config) (*discovery.Response, error) {
	resp, err := a.askDiscovery(ctx, cfg, ic, cfg.Connection.Discovery.Attempts)
	if err == nil || discovery.Permanent(err) || ctx.Err() != nil {
		return resp, err
	}
	dir := filepath.Join(filepath.Dir(statePath(cfg)), DiscoveryDir)
	cached, cerr := loadDiscovery(dir)
	if cerr != nil {
		return nil, err
	}
	a.log.Warn("Greengrass discovery unreachable; using the last answer", "err", err, "file", filepath.Join(dir, discoveryCache))
	logCores(a, cached)
	return cached, nil
}

// logCores lists an answer's core addresses.
func logCores(a *Agent, resp *discovery.Response) {
	for _, c := range resp.Candidates() {
		a.log.Info("Greengrass core address", "core", c.CoreArn, "entry", c.Entry.ID, "address", net.JoinHostPort(c.Entry.HostAddress, strconv.Itoa(c.Entry.PortNumber)), "group", c.GroupID)
	}
}

// askDiscovery makes up to attempts discovery requests and keeps a
// successful answer for offline starts.
func (a *Agent) askDiscovery(ctx context.Context, cfg *config.Config, ic iot.Config, attempts int) (*discovery.Response, error) {
	d := cfg.Connection.Discovery
	dc, err := discovery.New(discovery.Config{
		Endpoint: d.Endpoint, CertFile: ic.CertFile, KeyFile: ic.KeyFile, CAFile: d.CAFile, Timeout: d.Timeout,
	})
	if err != nil {
		return nil, err
	}
	defer dc.Close()
	a.log.Info("Greengrass discovery", "endpoint", dc.Endpoint(), "thing", cfg.Thing)
	resp, err := discovery.Retry{
		Attempts: attempts,
		OnRetry: func(n int, err error, wait time.Duration) {
			a.log.Warn("Greengrass discovery failed; retrying", "attempt", n, "retry_in", wait, "err", err)
		},
	}.Do(ctx, dc, cfg.Thing)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(filepath.Dir(statePath(cfg)), DiscoveryDir)
	if werr := saveDiscovery(dir, resp); werr != nil {
		a.log.Warn("cannot keep the discovery answer for offline starts", "err", werr)
	}
	logCores(a, resp)
	return resp, nil
}

func saveDiscovery(dir string, r *discovery.Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, discoveryCache), b, 0o644)
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
