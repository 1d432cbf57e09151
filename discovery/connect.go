package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pinshadow/pinshadow/internal/atomicfile"
	"github.com/pinshadow/pinshadow/iot"
)

// DefaultEntryTimeout bounds one connection attempt to one entry.
const DefaultEntryTimeout = 10 * time.Second

// ConnectOptions configure Connect.
type ConnectOptions struct {
	// Device is the device's connection: its certificate and key, client
	// id, keep-alive, queue… and the IoT Core endpoint used as fallback.
	// For a core, Endpoint, Transport (mutual TLS; ALPN on port 443),
	// CAFile (the group CA) and ServerName (the entry's HostAddress) are
	// replaced.
	Device iot.Config
	// CADir is where each group's CAs are written (group-<id>.pem), as
	// iot.Config takes its CA from a file. Required. The files stay: they
	// are what a later offline start connects with.
	CADir string
	// EntryTimeout bounds one entry's connection attempt (default 10 s);
	// an entry whose first attempt fails is given up at once.
	EntryTimeout time.Duration
	// Fallback: when no entry answers, return a client for Device (the IoT
	// Core endpoint), not yet connected, instead of an error.
	Fallback bool
	// OnAttempt, if set, is told about each entry that failed.
	OnAttempt func(Attempt)
}

// Connection is what Connect chose.
type Connection struct {
	// Client is connected to Candidate, or (Fallback) created for the IoT
	// Core endpoint and not connected yet: call Connect, which keeps
	// retrying in the background as for any iot client.
	Client *iot.Client
	// Config is the client's configuration, for a caller that closes this
	// client and builds its own the same way.
	Config    iot.Config
	Candidate Candidate
	Fallback  bool
	// Failed lists the entries tried before, with their errors.
	Failed []Attempt
}

// Endpoint names what the client was made for: "core ARN entry ID
// (host:port)" or the fallback endpoint.
func (c *Connection) Endpoint() string {
	if c.Fallback {
		return "IoT Core endpoint (fallback)"
	}
	return c.Candidate.String()
}

// Connect tries every connectivity entry of every core in resp, in order,
// trusting only the entry's group CAs and verifying the core's certificate
// against the entry's HostAddress, and returns the first client that comes
// online. The client stays connected to that core (reconnecting to it,
// never re-discovering). When none answers it returns a *ConnectError
// (ErrNoCore), or with Fallback a client for the IoT Core endpoint.
func Connect(ctx context.Context, resp *Response, o ConnectOptions) (*Connection, error) {
	if o.CADir == "" {
		return nil, errors.New("discovery: ConnectOptions.CADir is required (the group CA is written there for the MQTT client)")
	}
	if o.EntryTimeout <= 0 {
		o.EntryTimeout = DefaultEntryTimeout
	}
	var failed []Attempt
	fail := func(c Candidate, err error) {
		a := Attempt{Candidate: c, Err: err}
		failed = append(failed, a)
		if o.OnAttempt != nil {
			o.OnAttempt(a)
		}
	}
	var cands []Candidate
	if resp != nil {
		cands = resp.Candidates()
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("discovery: connecting to a core: %w", err)
		}
		cl, cfg, err := tryCandidate(ctx, c, o)
		if err != nil {
			fail(c, err)
			continue
		}
		return &Connection{Client: cl, Config: cfg, Candidate: c, Failed: failed}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovery: connecting to a core: %w", err)
	}
	if !o.Fallback {
		return nil, &ConnectError{Attempts: failed}
	}
	cl, err := iot.New(o.Device)
	if err != nil {
		return nil, fmt.Errorf("discovery: no core reachable, and the fallback connection is unusable: %w", err)
	}
	return &Connection{Client: cl, Config: o.Device, Fallback: true, Failed: failed}, nil
}

// tryCandidate makes one connection attempt to one entry.
func tryCandidate(ctx context.Context, c Candidate, o ConnectOptions) (*iot.Client, iot.Config, error) {
	ep, err := c.Entry.Endpoint()
	if err != nil {
		return nil, iot.Config{}, err
	}
	caFile, err := WriteGroupCA(o.CADir, c)
	if err != nil {
		return nil, iot.Config{}, err
	}
	cfg := o.Device
	cfg.Endpoint = ep
	cfg.Transport = iot.TransportMQTTS // port 443 offers ALPN x-amzn-mqtt-ca by itself
	cfg.CAFile = caFile
	cfg.ServerName = ""
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > o.EntryTimeout {
		cfg.ConnectTimeout = o.EntryTimeout
	}
	cl, err := iot.New(cfg)
	if err != nil {
		return nil, cfg, err
	}
	if err := connectOnce(ctx, cl, o.EntryTimeout); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = cl.Close(cctx)
		return nil, cfg, err
	}
	return cl, cfg, nil
}

// connectOnce waits for the client's first attempt only: iot.Client.Connect
// would keep retrying a refused port until its timeout, and the next entry
// may be the one that works.
func connectOnce(ctx context.Context, cl *iot.Client, timeout time.Duration) error {
	ev, stop := cl.Watch(8)
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	firstErr := make(chan error, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for e := range ev {
			if e.Type == iot.EventConnectFailed {
				firstErr <- e.Err
				cancel()
				return
			}
		}
	}()
	err := cl.Connect(actx)
	stop()
	<-watched
	if err == nil {
		return nil
	}
	select {
	case fe := <-firstErr:
		return fe
	default:
		return err
	}
}

// WriteGroupCA writes the candidate's group CAs to dir/group-<id>.pem
// (atomically, mode 0644) and returns the path.
func WriteGroupCA(dir string, c Candidate) (string, error) {
	if _, err := c.CertPool(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("discovery: CA directory: %w", err)
	}
	path := filepath.Join(dir, "group-"+safeName(c.GroupID)+".pem")
	var b strings.Builder
	for _, pem := range c.GroupCAs {
		b.WriteString(strings.TrimSpace(pem))
		b.WriteString("\n")
	}
	if err := atomicfile.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("discovery: write group CA: %w", err)
	}
	return path, nil
}

// safeName keeps a group id usable as a file name.
func safeName(id string) string {
	if id == "" {
		return "unnamed"
	}
	b := []byte(id)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
