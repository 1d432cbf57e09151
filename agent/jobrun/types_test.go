package jobrun

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pinshadow/pinshadow/hal/fake"
)

func TestCheckRejectsBadDocuments(t *testing.T) {
	rh := RunHandler{Opts: RunHandlerOptions{Dir: "/x", Timeout: time.Minute, MaxTimeout: 10 * time.Minute}}
	dl := Download{Opts: DownloadOptions{Dir: "/x", MaxSize: 1000}}
	sum := strings.Repeat("ab", 32)
	cases := []struct {
		h    Handler
		doc  string
		want string // "" = valid
	}{
		{SetDesired{}, `{"type":"set-desired","desired":{"heater":true}}`, ""},
		{SetDesired{}, `{"type":"set-desired","shadow":"system","desired":{"a":{"b":1}},"timeout":"2m"}`, ""},
		{SetDesired{}, `{"type":"set-desired"}`, `"desired" is missing`},
		{SetDesired{}, `{"type":"set-desired","desired":{"a":{"b":null}}}`, `desired "a.b" is null`},
		{SetDesired{}, `{"type":"set-desired","desired":{"a":1},"timeout":"30"}`, "want a duration"},
		{SetDesired{}, `{"type":"set-desired","desired":{"a":1},"timeout":"2h"}`, "want 1s to 1h0m0s"},
		{SetDesired{}, `{"type":"set-desired","desird":{"a":1}}`, `unknown field "desird"; allowed: type, shadow, desired, timeout`},
		{Pulse{}, `{"type":"pulse","key":"relay1","value":true,"seconds":5}`, ""},
		{Pulse{}, `{"type":"pulse","key":"lights.hall","value":40,"seconds":0.5}`, ""},
		{Pulse{}, `{"type":"pulse","value":true,"seconds":5}`, `"key" is missing`},
		{Pulse{}, `{"type":"pulse","key":"a..b","value":true,"seconds":5}`, "empty path element"},
		{Pulse{}, `{"type":"pulse","key":"r","seconds":5}`, `"value" is missing`},
		{Pulse{}, `{"type":"pulse","key":"r","value":{"x":1},"seconds":5}`, "single value"},
		{Pulse{}, `{"type":"pulse","key":"r","value":true}`, `"seconds" is missing`},
		{Pulse{}, `{"type":"pulse","key":"r","value":true,"seconds":-1}`, "want a number more than 0"},
		{Pulse{}, `{"type":"pulse","key":"r","value":true,"seconds":3601}`, "at most 3600"},
		{Pulse{}, `{"type":"pulse","key":"r","value":true,"seconds":"5"}`, "seconds"},
		{rh, `{"type":"run-handler","handler":"rotate-logs","args":["--keep","3"]}`, ""},
		{rh, `{"type":"run-handler","handler":"../bin/sh"}`, "plain file name"},
		{rh, `{"type":"run-handler","handler":"a/b"}`, "plain file name"},
		{rh, `{"type":"run-handler","handler":".."}`, "plain file name"},
		{rh, `{"type":"run-handler","handler":".hidden"}`, "plain file name"},
		{rh, `{"type":"run-handler"}`, `"handler" is missing`},
		{rh, `{"type":"run-handler","handler":"x","args":"ls -l"}`, "args"},
		{rh, `{"type":"run-handler","handler":"x","args":[1]}`, "args"},
		{rh, `{"type":"run-handler","handler":"x","args":["a\u0000b"]}`, "no NUL"},
		{rh, `{"type":"run-handler","handler":"x","timeout":"11m"}`, "want 1s to 10m0s"},
		{dl, `{"type":"download-file","url":"https://example.com/f","name":"f.bin","sha256":"` + sum + `"}`, ""},
		{dl, `{"type":"download-file","url":"http://127.0.0.1:8080/f","name":"f.bin","sha256":"` + sum + `","max_size":10}`, ""},
		{dl, `{"type":"download-file","url":"http://example.com/f","name":"f","sha256":"` + sum + `"}`, "plain http is allowed only to a loopback host"},
		{dl, `{"type":"download-file","url":"file:///etc/passwd","name":"f","sha256":"` + sum + `"}`, "want an https:// URL"},
		{dl, `{"type":"download-file","url":"https://e.com/f","name":"../f","sha256":"` + sum + `"}`, "plain file name"},
		{dl, `{"type":"download-file","url":"https://e.com/f","name":"f","sha256":"abc"}`, "want 64 hex digits"},
		{dl, `{"type":"download-file","url":"https://e.com/f","name":"f","sha256":"` + sum + `","max_size":1001}`, "configured limit"},
		{dl, `{"type":"download-file","name":"f","sha256":"` + sum + `"}`, `"url" is missing`},
		{dl, `{"type":"download-file","url":"https://e.com/f","name":"f","sha256":"` + sum + `","timeout":"25h"}`, "want 1s to 24h0m0s"},
	}
	for _, c := range cases {
		_, err := c.h.Check(json.RawMessage(c.doc))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.doc, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid)):
			t.Errorf("%s: error %v, want ErrInvalid containing %q", c.doc, err, c.want)
		}
	}
}

func TestDetailsClean(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	d := Details{"ok": "v", "sp ace": "x", "empty": "", "nl": "a\nb\x1b", "long": long, strings.Repeat("k", 200): "v"}.Clean()
	if d["ok"] != "v" || d["sp_ace"] != "x" || d["nl"] != `a\nb\x1b` {
		t.Errorf("cleaned %v", d)
	}
	if _, ok := d["empty"]; ok {
		t.Error("empty value kept (AWS refuses values shorter than 1)")
	}
	if v := d["long"]; len(v) > MaxDetailValue || !utf8.ValidString(v) || len(v) < MaxDetailValue-1 {
		t.Errorf("long value cut to %d bytes, valid UTF-8 %v", len(v), utf8.ValidString(v))
	}
	for k := range d {
		if len(k) > MaxDetailKey {
			t.Errorf("key of %d bytes kept", len(k))
		}
	}
	many := Details{"reason": "why", "z": "\ue000private"}
	for i := 0; i < 20; i++ {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	c := many.Clean()
	if len(c) != MaxDetails || c["reason"] != "why" || c["k00"] != "v" || c["k08"] != "v" {
		t.Errorf("20 entries cleaned to %v; want %d with reason first", c, MaxDetails)
	}
	if got := (Details{"p": "a\ue000b"}).Clean()["p"]; got != `a\ue000b` {
		t.Errorf("private-use character: %q", got)
	}
}

func TestTail(t *testing.T) {
	for _, s := range []string{strings.Repeat("ü", 1000), strings.Repeat("a\n", 1000), strings.Repeat("x\x1b", 700), "short"} {
		got := Tail(s, OutputTail)
		if len(got) > OutputTail || !utf8.ValidString(got) {
			t.Errorf("Tail of %q…: %d bytes, valid %v", s[:10], len(got), utf8.ValidString(got))
		}
		if len(s) > OutputTail && !strings.HasPrefix(got, "…") {
			t.Errorf("cut tail %q… does not say it was cut", got[:10])
		}
		if strings.ContainsAny(got, "\n\x1b") {
			t.Errorf("control characters left in %q", got[:20])
		}
	}
	if got := Tail("abc\ndef", 100); got != `abc\ndef` {
		t.Errorf("Tail short = %q", got)
	}
}

// execFor returns an Exec on a real clock for running one job directly.
func execFor(t *testing.T, clk Clock) *Exec {
	if clk == nil {
		clk = realClock{}
	}
	return &Exec{JobID: "j1", ExecutionNumber: 2, Clock: clk, Host: &fakeHost{thing: "t1"},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), deadline: clk.Now().Add(time.Hour)}
}

func writeScript(t *testing.T, dir, name, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
		t.Fatal(err)
	}
}

func runDoc(t *testing.T, h Handler, x *Exec, doc string) (Details, error) {
	t.Helper()
	j, err := h.Check(json.RawMessage(doc))
	if err != nil {
		t.Fatalf("check %s: %v", doc, err)
	}
	return j.Run(context.Background(), x)
}

func TestRunHandler(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "hello", `echo "hi $1 $JOB_ID $THING_NAME $JOB_EXECUTION_NUMBER"; echo "oops" >&2; env | grep -c . >&2`, 0o755)
	writeScript(t, dir, "fail", `echo "bad things"; exit 3`, 0o755)
	writeScript(t, dir, "noisy", `i=0; while [ $i -lt 400 ]; do echo "line $i ü"; i=$((i+1)); done`, 0o755)
	writeScript(t, dir, "open", `echo hi`, 0o757)
	writeScript(t, dir, "noexec", `echo hi`, 0o644)
	if err := os.Symlink("/bin/echo", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	h := RunHandler{Opts: RunHandlerOptions{Dir: dir, Timeout: 10 * time.Second}}

	d, err := runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"hello","args":["a b; rm -rf /"]}`)
	if err != nil || d["exit_code"] != "0" || d["stdout"] != "hi a b; rm -rf / j1 t1 2" {
		t.Errorf("hello: %v %v", d, err)
	}
	// stderr: "oops" and the number of environment variables (6 set, plus
	// what sh adds itself: PWD, SHLVL, _ at most).
	if lines := strings.Split(d["stderr"], `\n`); len(lines) != 2 || lines[0] != "oops" || lines[1] > "9" {
		t.Errorf("stderr %q: want oops and a small environment", d["stderr"])
	}

	d, err = runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"fail"}`)
	if err == nil || !strings.Contains(err.Error(), "exited with status 3") || d["exit_code"] != "3" || d["stdout"] != "bad things" {
		t.Errorf("fail: %v %v", d, err)
	}

	d, err = runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"noisy"}`)
	if err != nil || len(d["stdout"]) > OutputTail || !strings.HasSuffix(d["stdout"], "line 399 ü") || !utf8.ValidString(d["stdout"]) {
		t.Errorf("noisy: %d bytes, ends %q, %v", len(d["stdout"]), d["stdout"][max(0, len(d["stdout"])-20):], err)
	}

	open := t.TempDir()
	writeScript(t, open, "ok", "echo hi", 0o755)
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	_, err = runDoc(t, RunHandler{Opts: RunHandlerOptions{Dir: open}}, execFor(t, nil), `{"type":"run-handler","handler":"ok"}`)
	if !errors.Is(err, ErrHandler) || !strings.Contains(err.Error(), "writable by everyone") {
		t.Errorf("handler in a world-writable directory: %v", err)
	}
	for name, want := range map[string]string{"open": "writable by group or others", "noexec": "not executable",
		"link": "not a regular file", "missing": "is not in"} {
		_, err := runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"`+name+`"}`)
		if !errors.Is(err, ErrHandler) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrHandler with %q", name, err, want)
		}
	}
}

func TestRunHandlerTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "child.pid")
	// The child sleeps in the background, the script waits for it: the
	// kill must reach both.
	writeScript(t, dir, "hang", `sleep 300 & echo $! > `+pidfile+`; echo started; wait`, 0o755)
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	x := execFor(t, clock{clk})
	h := RunHandler{Opts: RunHandlerOptions{Dir: dir, Timeout: 30 * time.Second}}
	type res struct {
		d   Details
		err error
	}
	done := make(chan res, 1)
	go func() {
		d, err := runDoc(t, h, x, `{"type":"run-handler","handler":"hang"}`)
		done <- res{d, err}
	}()
	// The handler's timer and the keep-alive's.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatal(err)
	}
	waitFile(t, pidfile)
	clk.Advance(30 * time.Second)
	select {
	case r := <-done:
		if r.err == nil || !strings.Contains(r.err.Error(), "timed out after 30s") || r.d["stdout"] != "started" {
			t.Errorf("timeout: %v %v", r.d, r.err)
		}
	case <-time.After(wait):
		t.Fatal("the handler was not stopped at its timeout")
	}
	b, _ := os.ReadFile(pidfile)
	var pid int
	fmt.Sscan(string(b), &pid)
	if pid == 0 {
		t.Fatal("no child pid")
	}
	// The killed child becomes a zombie of init or disappears (SIGKILL
	// takes effect asynchronously: poll the kernel's view with a deadline).
	deadline := time.Now().Add(wait)
	for {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handler's child %d survived the timeout: %s", pid, st)
		}
		time.Sleep(5 * time.Millisecond) // polling another process's state
	}
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond) // polling a file another process writes
	}
	t.Fatalf("%s never written", p)
}

func TestDownload(t *testing.T) {
	body := []byte(strings.Repeat("firmware ", 1000))
	sum := sha256.Sum256(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fw.bin":
			w.Write(body)
		case "/away":
			http.Redirect(w, r, "http://example.com/fw.bin", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	dl := Download{Opts: DownloadOptions{Dir: dir, MaxSize: 1 << 20}}
	doc := func(path, name, sum string, extra string) string {
		return fmt.Sprintf(`{"type":"download-file","url":"%s%s","name":"%s","sha256":"%s"%s}`, srv.URL, path, name, sum, extra)
	}
	d, err := runDoc(t, dl, execFor(t, nil), doc("/fw.bin", "fw.bin", hex.EncodeToString(sum[:]), ""))
	if err != nil || d["size"] != fmt.Sprint(len(body)) {
		t.Fatalf("download: %v %v", d, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "fw.bin")); err != nil || string(b) != string(body) {
		t.Errorf("downloaded file: %v, %d bytes", err, len(b))
	}
	bad := strings.Repeat("00", 32)
	for _, c := range []struct{ doc, want string }{
		{doc("/fw.bin", "other.bin", bad, ""), "sha256 mismatch"},
		{doc("/fw.bin", "small.bin", hex.EncodeToString(sum[:]), `,"max_size":100`), "more than the limit of 100"},
		{doc("/nope", "nope.bin", bad, ""), "404"},
		{doc("/away", "away.bin", bad, ""), "plain http is allowed only to a loopback host"},
	} {
		_, err := runDoc(t, dl, execFor(t, nil), c.doc)
		if !errors.Is(err, ErrDownload) && !errors.Is(err, ErrInvalid) || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
	// A server that stalls mid-transfer: the job's timeout ends it.
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer stall.Close()
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	x := execFor(t, clock{clk})
	done := make(chan error, 1)
	go func() {
		_, err := runDoc(t, dl, x, fmt.Sprintf(`{"type":"download-file","url":"%s/fw","name":"stalled.bin","sha256":"%s","timeout":"20s"}`, stall.URL, bad))
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil { // the timeout and the keep-alive
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second)
	select {
	case err := <-done:
		if !errors.Is(err, ErrDownload) || !strings.Contains(err.Error(), "timed out after 20s") {
			t.Errorf("stalled download: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("a stalled download was not stopped at its timeout")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "fw.bin" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("download dir holds %v; failed downloads must leave nothing", names)
	}
}

// fakeHost is a shadow service in memory whose device applies desired at
// once (or never, with stuck).
type fakeHost struct {
	thing  string
	mu     sync.Mutex
	stuck  bool
	sv     ShadowView
	ch     chan struct{}
	patchs []string
}

func (h *fakeHost) Thing() string { return h.thing }
func (h *fakeHost) Desire(ctx context.Context, shadow string, patch map[string]any) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.patchs = append(h.patchs, compact(patch))
	if h.sv.Desired == nil {
		h.sv.Desired, h.sv.Reported = map[string]any{}, map[string]any{}
	}
	merge(h.sv.Desired, patch)
	if !h.stuck {
		merge(h.sv.Reported, patch)
	}
	h.sv.Version++
	if h.ch != nil {
		close(h.ch)
		h.ch = nil
	}
	return h.sv.Version, nil
}
func (h *fakeHost) Shadow(name string) (ShadowView, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return ShadowView{Known: true, Version: h.sv.Version, Desired: clone(h.sv.Desired), Reported: clone(h.sv.Reported)}, true
}
func (h *fakeHost) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = make(chan struct{})
	}
	return h.ch
}

func merge(dst, p map[string]any) {
	for k, v := range p {
		if sub, ok := v.(map[string]any); ok {
			d, _ := dst[k].(map[string]any)
			if d == nil {
				d = map[string]any{}
				dst[k] = d
			}
			merge(d, sub)
			continue
		}
		dst[k] = v
	}
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func TestPulseRestoresThePreviousValue(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	x := execFor(t, clock{clk})
	host := x.Host.(*fakeHost)
	host.Desire(context.Background(), "", map[string]any{"relay1": false})
	host.patchs = nil
	j, err := Pulse{}.Check(json.RawMessage(`{"type":"pulse","key":"relay1","value":true,"seconds":5}`))
	if err != nil {
		t.Fatal(err)
	}
	phases := make(chan string, 8)
	x.progress = func(ctx context.Context, d Details) error { phases <- d["phase"]; return nil }
	done := make(chan error, 1)
	go func() { _, err := j.Run(context.Background(), x); done <- err }()
	for _, want := range []string{"on", "holding"} {
		select {
		case p := <-phases:
			if p != want {
				t.Fatalf("phase %s, want %s", p, want)
			}
		case <-time.After(wait):
			t.Fatalf("no phase %s", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil { // the hold
		t.Fatal(err)
	}
	if got := strings.Join(host.patchs, " "); got != `{"relay1":true}` {
		t.Errorf("while holding, desired patches %s", got)
	}
	clk.Advance(5 * time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("pulse did not finish")
	}
	if got := strings.Join(host.patchs, " "); got != `{"relay1":true} {"relay1":false}` {
		t.Errorf("desired patches %s", got)
	}
}

func TestSetDesiredTimesOut(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	x := execFor(t, clock{clk})
	x.Host.(*fakeHost).stuck = true
	j, err := SetDesired{}.Check(json.RawMessage(`{"type":"set-desired","desired":{"fan":40},"timeout":"10s"}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := j.Run(context.Background(), x); done <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Second)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), `reported did not match within 10s; still different: {"fan":40}`) {
			t.Errorf("set-desired on a stuck device: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("no timeout")
	}
}

// handlers.user: as root the handler runs as that user; otherwise the job
// fails with an error saying why.
func TestRunHandlerAsUser(t *testing.T) {
	// nobody must reach the script: t.TempDir's parent is private.
	dir, err := os.MkdirTemp("", "jobrun-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, dir, "whoami", `id -u; echo "$HOME"`, 0o755)
	h := RunHandler{Opts: RunHandlerOptions{Dir: dir, User: "nobody"}}
	d, err := runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"whoami"}`)
	if os.Geteuid() != 0 {
		if !errors.Is(err, ErrHandler) || !strings.Contains(err.Error(), "not root") {
			t.Errorf("as a non-root agent: %v, want a clear error", err)
		}
		return
	}
	if err != nil || d["stdout"] != `65534\n/nonexistent` {
		t.Errorf("as nobody: %v %v", d, err)
	}
	h.Opts.User = "no-such-user-here"
	if _, err := runDoc(t, h, execFor(t, nil), `{"type":"run-handler","handler":"whoami"}`); !errors.Is(err, ErrHandler) || !strings.Contains(err.Error(), "no-such-user-here") {
		t.Errorf("unknown user: %v", err)
	}
}

// flakyHost refuses desired updates while down.
type flakyHost struct {
	*fakeHost
	mu   sync.Mutex
	down bool
	hit  chan struct{}
}

func (h *flakyHost) Desire(ctx context.Context, shadow string, patch map[string]any) (int64, error) {
	h.mu.Lock()
	down := h.down
	h.mu.Unlock()
	if down {
		select {
		case h.hit <- struct{}{}:
		default:
		}
		return 0, errors.New("iot: not connected")
	}
	return h.fakeHost.Desire(ctx, shadow, patch)
}

// The connection is down when the hold ends: the pulse keeps trying to put
// the old value back instead of leaving the output on.
func TestPulseRestoreRetriesWhileOffline(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC))
	x := execFor(t, clock{clk})
	host := &flakyHost{fakeHost: x.Host.(*fakeHost), hit: make(chan struct{}, 1)}
	x.Host = host
	host.Desire(context.Background(), "", map[string]any{"relay1": false})
	phases := make(chan string, 16)
	x.progress = func(ctx context.Context, d Details) error { phases <- d["phase"]; return nil }
	j, err := Pulse{}.Check(json.RawMessage(`{"type":"pulse","key":"relay1","value":true,"seconds":5}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := j.Run(context.Background(), x); done <- err }()
	waitPhase := func(want string) {
		t.Helper()
		for {
			select {
			case p := <-phases:
				if p == want {
					return
				}
			case <-time.After(wait):
				t.Fatalf("no phase %s", want)
			}
		}
	}
	waitPhase("holding")
	host.mu.Lock()
	host.down = true
	host.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	waitPhase("restoring")
	<-host.hit // first attempt refused
	for i := 0; i < 2; i++ {
		// The retry timer and the keep-alive's.
		if err := clk.BlockUntil(ctx, 2); err != nil {
			t.Fatal(err)
		}
		clk.Advance(RestoreRetry)
		<-host.hit
	}
	host.mu.Lock()
	host.down = false
	host.mu.Unlock()
	if err := clk.BlockUntil(ctx, 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(RestoreRetry)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("pulse did not finish once the connection was back")
	}
	if sv, _ := host.Shadow(""); sv.Reported["relay1"] != false {
		t.Errorf("relay1 after the pulse: %v", sv.Reported["relay1"])
	}
}

func TestRejectedByAgent(t *testing.T) {
	rep := func(ver int) map[string]any {
		return map[string]any{"_status": map[string]any{
			"lights.hall": map[string]any{"status": "rejected", "message": "out of range", "version": json.Number(fmt.Sprint(ver))},
			"fan":         map[string]any{"status": "applied", "version": json.Number("9")},
		}}
	}
	diff := map[string]any{"lights": map[string]any{"hall": 300}, "fan": 40}
	if err := rejected(rep(4), diff, "", 5); err != nil {
		t.Errorf("a rejection older than our update counted: %v", err)
	}
	err := rejected(rep(5), diff, "", 5)
	if !errors.Is(err, ErrRejectedByAgent) || !strings.Contains(err.Error(), "lights.hall=300: out of range") {
		t.Errorf("rejection at our version: %v", err)
	}
}
