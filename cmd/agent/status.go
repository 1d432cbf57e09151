package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
	"github.com/pinshadow/pinshadow/config"
)

// runStatus is `agent status`: asks the running agent for its status.
func runStatus(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "status", "[--config FILE | --socket PATH | --addr HOST:PORT] [--json]")
	path := fs.String("config", "", "find the agent's status socket from this configuration's state_dir")
	sock := fs.String("socket", "", "the agent's status socket (default "+filepath.Join(config.DefaultStateDir, agent.StatusSocket)+")")
	addr := fs.String("addr", "", "the agent's status address when it runs with --status-addr HOST:PORT")
	asJSON := fs.Bool("json", false, "print the raw JSON status")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	n := 0
	for _, s := range []string{*path, *sock, *addr} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("%w: give at most one of --config, --socket and --addr", errUsage)
	}
	target := filepath.Join(config.DefaultStateDir, agent.StatusSocket)
	switch {
	case *sock != "":
		target = *sock
	case *addr != "":
		target = ""
	case *path != "":
		cfg, err := loadConfig(e, *path, "")
		if err != nil {
			return err
		}
		target = filepath.Join(stateDir(cfg), agent.StatusSocket)
	}
	body, err := fetchStatus(ctx, target, *addr)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if *asJSON {
		_, err := e.stdout.Write(body)
		return err
	}
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("the agent's answer is not a status document: %w", err)}
	}
	printStatus(e.stdout, st)
	return nil
}

// fetchStatus gets the status JSON from a unix socket (sock) or a TCP
// address (addr).
func fetchStatus(ctx context.Context, sock, addr string) ([]byte, error) {
	where := "unix socket " + sock
	tr := &http.Transport{}
	url := "http://" + addr + "/status"
	if addr == "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		url = "http://agent/status"
	} else {
		where = addr
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("no agent answers on %s: %v (is `agent run` running? is this the right --config/--socket? reading the socket needs the agent's user or group)", where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the status from %s: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the agent on %s answered %s", where, resp.Status)
	}
	return body, nil
}

// printStatus renders a status for people: aligned, units, ages.
func printStatus(w io.Writer, st agent.Status) {
	age := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return st.Now.Sub(t).Round(time.Millisecond).String() + " ago"
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := "stopped"
	if st.Running {
		state = "running"
		if st.Ready {
			state += ", converged"
		} else {
			state += ", not converged yet"
		}
	}
	fmt.Fprintf(tw, "thing\t%s (%s)\n", st.Thing, state)
	if len(st.Config) > 0 {
		fmt.Fprintf(tw, "config\t%s\n", strings.Join(st.Config, ", "))
	}
	fmt.Fprintf(tw, "loop\tlast iteration %s\n", age(st.Heartbeat))
	c := st.Connection
	conn := c.State
	if c.State == "online" {
		conn += " since " + c.Since.Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "connection\t%s — %s (%d connects, %d drops)\n", conn, c.Endpoint, c.Connects, c.Drops)
	if c.LastError != "" {
		fmt.Fprintf(tw, "connection error\t%s (%s)\n", c.LastError, age(c.LastErrorAt))
	}
	fmt.Fprintf(tw, "offline queue\t%d queued, %d dropped\n", c.Queued, c.Dropped)
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s (%s)\n", st.LastError, age(st.LastErrorAt))
	} else {
		fmt.Fprintf(tw, "last error\t-\n")
	}
	sf := dash(st.StateFile)
	if st.StateError != "" {
		sf += " — " + st.StateError
	}
	fmt.Fprintf(tw, "state file\t%s\n", sf)
	if j := st.Jobs; j != nil {
		fmt.Fprintf(tw, "jobs\t%s\n", jobsLine(*j, age))
	}
	tw.Flush()

	if len(st.Shadows) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SHADOW\tKNOWN\tVERSION\tIN SYNC\tPENDING REPORTS\tERROR")
		for _, s := range st.Shadows {
			name := s.Name
			if name == "" {
				name = "(classic)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", name, yesNo(s.Known), s.Version, yesNo(s.InSync), s.PendingReports, dash(s.LastError))
		}
		tw.Flush()
	}
	if len(st.Keys) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESIRED KEY\tOUTPUT\tHARDWARE\tAPPLIED\tRESULT\tVERSION\tLATENCY\tDECIDED\tMESSAGE")
		for _, k := range st.Keys {
			res := dash(k.Status)
			if k.Code != 0 {
				res = fmt.Sprintf("%s %d", k.Status, k.Code)
			}
			lat := "-"
			if k.Latency > 0 {
				lat = k.Latency.Round(time.Microsecond).String()
			}
			ver := "-"
			if k.Version > 0 {
				ver = fmt.Sprint(k.Version)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Key, output(k.Device, k.Property), value(k.Hardware), value(k.Value), res, ver, lat, age(k.At), dash(k.Message))
		}
		tw.Flush()
	}
	if len(st.Sensors) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REPORTED KEY\tINPUT\tLAST READING\tREAD\tERROR")
		for _, s := range st.Sensors {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Key, output(s.Device, s.Property), value(s.Value), age(s.At), dash(s.Error))
		}
		tw.Flush()
	}
}

func output(dev, prop string) string {
	if dev == "" || dev == "-" {
		return "-"
	}
	return dev + "." + prop
}

func value(v any) string {
	if v == nil {
		return "-"
	}
	if f, ok := v.(float64); ok {
		return fmt.Sprintf("%g", f)
	}
	return fmt.Sprint(v)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// jobsLine summarises the job runner: what runs, what ended last, what is
// still to be sent.
func jobsLine(j jobrun.Snapshot, age func(time.Time) string) string {
	var parts []string
	if r := j.Running; r != nil {
		p := fmt.Sprintf("running %s (%s) since %s", r.JobID, r.Type, age(r.Since))
		if r.Resumed {
			p += ", resumed after a restart"
		}
		if ph := r.Details["phase"]; ph != "" {
			p += ", " + ph
		}
		parts = append(parts, p)
	} else {
		parts = append(parts, "idle")
	}
	if l := j.Last; l != nil {
		p := fmt.Sprintf("last %s (%s) %s %s", l.JobID, l.Type, l.Status, age(l.Since))
		if why := l.Details["reason"]; why != "" {
			p += ": " + why
		}
		parts = append(parts, p)
	}
	if j.Unsent > 0 {
		parts = append(parts, fmt.Sprintf("%d status(es) not yet accepted", j.Unsent))
	}
	return strings.Join(parts, "; ")
}
