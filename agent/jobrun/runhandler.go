package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// namePattern is what a handler or download name may be: one path element,
// no leading dot (so never "." or ".."), no separators.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// checkName validates a file name taken from a job document.
func checkName(field, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %q is missing", ErrInvalid, field)
	}
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") || !namePattern.MatchString(name) {
		return fmt.Errorf("%w: %s %q: want a plain file name (letters, digits, . _ -; no path separators, no \"..\", not starting with a dot)", ErrInvalid, field, name)
	}
	return nil
}

// Limits of run-handler documents and output.
const (
	MaxArgs      = 64
	MaxArgLen    = 4096
	OutputTail   = 1024 // bytes of stdout and stderr kept in statusDetails
	keptOutput   = 8 * OutputTail
	killGrace    = 5 * time.Second
	handlerPath  = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	DefaultRunTO = 5 * time.Minute
)

// RunHandlerOptions configure the "run-handler" job type.
type RunHandlerOptions struct {
	// Dir holds the allow-listed handlers: executables named by documents.
	Dir string
	// User runs them ("" = the agent's own user). Another user needs the
	// agent to run as root.
	User string
	// Timeout is the default per job; MaxTimeout the largest a document may
	// ask for (defaults 5m and Timeout).
	Timeout, MaxTimeout time.Duration
}

// RunHandler is the "run-handler" job type:
//
//	{"type": "run-handler", "handler": "rotate-logs", "args": ["--keep", "3"], "timeout": "60s"}
//
// handler names an executable file directly inside the configured
// directory: a plain name, a regular file (not a symlink), executable, not
// writable by group or others. args are passed as they are (no shell). It
// runs in its own process group with a minimal environment (PATH, HOME,
// LANG, JOB_ID, JOB_EXECUTION_NUMBER, THING_NAME), in the handler
// directory, as the configured user; on timeout (default from the
// configuration) or cancellation the whole group is killed. statusDetails
// get exit_code and the last 1 KB of stdout and stderr; a non-zero exit is
// FAILED.
type RunHandler struct{ Opts RunHandlerOptions }

type runHandlerDoc struct {
	Type    string   `json:"type"`
	Handler string   `json:"handler"`
	Args    []string `json:"args"`
	Timeout string   `json:"timeout"`
}

// Check validates a run-handler document.
func (h RunHandler) Check(doc json.RawMessage) (Job, error) {
	var d runHandlerDoc
	if err := decodeStrict(doc, &d, "run-handler", "type, handler, args, timeout"); err != nil {
		return nil, err
	}
	if err := checkName("handler", d.Handler); err != nil {
		return nil, fmt.Errorf("run-handler: %w", err)
	}
	if len(d.Args) > MaxArgs {
		return nil, fmt.Errorf("%w: run-handler: %d args; at most %d", ErrInvalid, len(d.Args), MaxArgs)
	}
	for i, a := range d.Args {
		if len(a) > MaxArgLen || strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("%w: run-handler: args[%d]: at most %d bytes and no NUL", ErrInvalid, i, MaxArgLen)
		}
	}
	def, most := h.Opts.Timeout, h.Opts.MaxTimeout
	if def <= 0 {
		def = DefaultRunTO
	}
	if most < def {
		most = def
	}
	to, err := duration("timeout", d.Timeout, def, time.Second, most)
	if err != nil {
		return nil, fmt.Errorf("run-handler: %w", err)
	}
	return JobFunc(func(ctx context.Context, x *Exec) (Details, error) {
		return h.run(ctx, x, d, to)
	}), nil
}

// ErrHandler marks a handler that cannot be run (missing, unsafe, wrong
// user); the message says which and why.
var ErrHandler = errors.New("handler cannot be run")

// resolve checks the handler file and returns its path.
func (h RunHandler) resolve(name string) (string, error) {
	if h.Opts.Dir == "" {
		return "", fmt.Errorf("%w: no handler directory configured (jobs: handlers: dir)", ErrHandler)
	}
	if di, err := os.Stat(h.Opts.Dir); err != nil {
		return "", fmt.Errorf("%w: handler directory: %w", ErrHandler, err)
	} else if di.Mode().Perm()&0o002 != 0 {
		return "", fmt.Errorf("%w: handler directory %s is writable by everyone (mode %s): anyone could put a handler there; chmod o-w it", ErrHandler, h.Opts.Dir, di.Mode().Perm())
	}
	p := filepath.Join(h.Opts.Dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %q is not in %s", ErrHandler, name, h.Opts.Dir)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrHandler, err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%w: %s is not a regular file (%s); symlinks and directories are refused", ErrHandler, p, fi.Mode().Type())
	case fi.Mode().Perm()&0o111 == 0:
		return "", fmt.Errorf("%w: %s is not executable (chmod 755 it)", ErrHandler, p)
	case fi.Mode().Perm()&0o022 != 0:
		return "", fmt.Errorf("%w: %s is writable by group or others (mode %s); chmod go-w it", ErrHandler, p, fi.Mode().Perm())
	}
	return p, nil
}

// runAs is the user a handler runs as.
type runAs struct {
	uid, gid uint32
	groups   []uint32
}

// credential returns who to run as: nil for the agent's own user.
func (h RunHandler) credential() (*runAs, string, error) {
	if h.Opts.User == "" {
		home, _ := os.UserHomeDir()
		return nil, home, nil
	}
	u, err := user.Lookup(h.Opts.User)
	if err != nil {
		return nil, "", fmt.Errorf("%w: user %q: %w", ErrHandler, h.Opts.User, err)
	}
	if cur, err := user.Current(); err == nil && cur.Uid == u.Uid {
		return nil, u.HomeDir, nil
	}
	if os.Geteuid() != 0 {
		return nil, "", fmt.Errorf("%w: handlers run as user %q but the agent runs as uid %d, not root; run the agent as root or remove jobs.handlers.user", ErrHandler, h.Opts.User, os.Geteuid())
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "", fmt.Errorf("%w: user %q has non-numeric ids %s/%s", ErrHandler, h.Opts.User, u.Uid, u.Gid)
	}
	c := &runAs{uid: uint32(uid), gid: uint32(gid)}
	if gs, err := u.GroupIds(); err == nil {
		for _, g := range gs {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				c.groups = append(c.groups, uint32(n))
			}
		}
	}
	return c, u.HomeDir, nil
}

func (h RunHandler) run(ctx context.Context, x *Exec, d runHandlerDoc, timeout time.Duration) (Details, error) {
	path, err := h.resolve(d.Handler)
	if err != nil {
		return nil, fmt.Errorf("run-handler: %w", err)
	}
	cred, home, err := h.credential()
	if err != nil {
		return nil, fmt.Errorf("run-handler: %w", err)
	}
	thing := ""
	if x.Host != nil {
		thing = x.Host.Thing()
	}
	cmd := exec.Command(path, d.Args...)
	cmd.Dir = h.Opts.Dir
	cmd.Env = []string{"PATH=" + handlerPath, "HOME=" + home, "LANG=C.UTF-8",
		"JOB_ID=" + x.JobID, "JOB_EXECUTION_NUMBER=" + strconv.FormatInt(x.ExecutionNumber, 10), "THING_NAME=" + thing}
	if err := setProcAttr(cmd, cred); err != nil {
		return nil, fmt.Errorf("run-handler: %w", err)
	}
	var stdout, stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Pipes held open by a grandchild that outlived the kill must not
	// block Wait for ever.
	cmd.WaitDelay = killGrace
	start := x.Clock.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run-handler: starting %s: %w", path, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	stopKA := x.KeepAlive(ctx, func() Details { return Details{"phase": "running", "handler": d.Handler} })
	tc, stopT := x.Clock.NewTimer(timeout)
	var why error
	var werr error
	select {
	case werr = <-waited:
	case <-tc:
		why = fmt.Errorf("handler %s timed out after %s; its process group was killed", d.Handler, timeout)
	case <-ctx.Done():
		why = fmt.Errorf("handler %s stopped (its process group was killed): %w", d.Handler, context.Cause(ctx))
	}
	stopT()
	stopKA()
	if why != nil {
		killGroup(cmd)
		werr = <-waited
	}
	det := Details{"handler": d.Handler, "duration": x.Clock.Now().Sub(start).Round(time.Millisecond).String()}
	if s := Tail(stdout.String(), OutputTail); s != "" {
		det["stdout"] = s
	}
	if s := Tail(stderr.String(), OutputTail); s != "" {
		det["stderr"] = s
	}
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	det["exit_code"] = strconv.Itoa(code)
	if why != nil {
		return det, why
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if sig, ok := signaled(ee); ok {
				return det, fmt.Errorf("handler %s killed by signal %s", d.Handler, sig)
			}
			return det, fmt.Errorf("handler %s exited with status %d", d.Handler, code)
		}
		return det, fmt.Errorf("handler %s: %w", d.Handler, werr)
	}
	return det, nil
}

// tailBuffer keeps the last keptOutput bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > keptOutput {
		t.b = append(t.b[:0], t.b[len(t.b)-keptOutput:]...)
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.b), "\n")
}
