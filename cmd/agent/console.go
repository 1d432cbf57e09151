package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"net"

	"github.com/pinshadow/pinshadow/console"
	"github.com/pinshadow/pinshadow/sim"
)

// defaultSimConsole is where `agent sim` serves its console unless told
// otherwise (a free port of 127.0.0.1 when it is busy).
const defaultSimConsole = "127.0.0.1:8750"

// consoleFlags are the web console's flags, shared by run and sim.
type consoleFlags struct {
	addr  string
	write bool
	token string
	def   string // the default address ("" off)
}

func addConsoleFlags(fs *flag.FlagSet, def string) *consoleFlags {
	cf := &consoleFlags{def: def}
	usage := "serve the web console on host:port (\"\" or off: no console)"
	if def != "" {
		usage = "serve the web console on host:port (off: no console; a busy default port falls back to a free one)"
	}
	fs.StringVar(&cf.addr, "http", def, usage)
	fs.BoolVar(&cf.write, "http-write", false, "let the console change desired values (and inject faults in sim); default read-only")
	fs.StringVar(&cf.token, "http-token", "", "token the console requires (generated and printed when --http is not a loopback address)")
	return cf
}

// runningConsole is a console being served; stop it with its cancel and
// wait on done.
type runningConsole struct {
	srv  *console.Server
	url  string
	stop func()
}

// start listens and serves the console, or returns nil when it is off. A
// non-loopback address without --http-token gets a generated token.
func (cf *consoleFlags) start(log *slog.Logger) (*runningConsole, error) {
	if cf.addr == "" || cf.addr == "off" {
		return nil, nil
	}
	ln, moved, err := console.Listen(cf.addr, cf.addr == cf.def)
	if err != nil {
		return nil, fmt.Errorf("%w: --http: %v", errUsage, err)
	}
	token, err := consoleToken(ln.Addr(), cf.token)
	if err != nil {
		ln.Close()
		return nil, err
	}
	srv := console.New(console.Options{Write: cf.write, Token: token, Logger: log})
	rc := &runningConsole{srv: srv, url: console.URL(ln, token)}
	if moved {
		log.Warn("web console: the default port is busy; using a free one", "wanted", cf.addr, "addr", ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx, ln); err != nil {
			log.Error("web console stopped", "err", err)
		}
	}()
	rc.stop = func() { cancel(); <-done }
	return rc, nil
}

// consoleToken is the token the console requires on addr: the one given,
// else a random one when addr is not loopback, else none.
func consoleToken(addr net.Addr, given string) (string, error) {
	if given != "" || console.CheckExposure(addr, "") == nil {
		return given, nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("console: generating a token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// simFaults adapts the simulation's controls to the console.
type simFaults struct{ c *sim.Controls }

func (f simFaults) List() []console.Fault {
	var out []console.Fault
	for _, t := range f.c.Faults() {
		out = append(out, console.Fault{Kind: t.Kind, Device: t.Device})
	}
	return out
}

func (f simFaults) Inject(ctx context.Context, kind, device string) error {
	return f.c.Inject(ctx, kind, device)
}
