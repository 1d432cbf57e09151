//go:build browser

package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// chromium is a headless Chromium driven over the DevTools protocol: one
// page target in flat session mode, its console errors and uncaught
// exceptions collected.
type chromium struct {
	cmd     *exec.Cmd
	ws      *websocket.Conn
	session string

	wmu     sync.Mutex // one writer on the socket
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpReply
	errs    []string
	readErr chan error
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// chromiumFlags are what Chromium needs on this machine as root with no
// network (without the background-networking ones its connections are
// refused).
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
	"--remote-debugging-port=0", "--window-size=1200,1400"}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startChromium starts the browser and attaches to a new blank page. It is
// killed and its profile removed when the test ends.
func startChromium(ctx context.Context, t *testing.T, bin string) *chromium {
	t.Helper()
	profile := t.TempDir()
	cmd := exec.Command(bin, append(chromiumFlags, "--user-data-dir="+profile, "about:blank")...)
	// Its own process group: the renderer and zygote processes are ended
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	c := &chromium{cmd: cmd, pending: map[int64]chan cdpReply{}, readErr: make(chan error, 1)}
	stderrDone := make(chan struct{})
	t.Cleanup(func() {
		if c.ws != nil {
			c.ws.Close()
			<-c.readErr // the reader has returned
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-stderrDone // before Wait, which closes the pipe
		_ = cmd.Wait()
	})
	wsURL := make(chan string, 1)
	go func() {
		defer close(stderrDone)
		// Read stderr to the end so Chromium never blocks on it.
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				wsURL <- m[1]
				sent = true
			}
		}
		if !sent {
			close(wsURL)
		}
	}()
	var u string
	select {
	case u = <-wsURL:
	case <-ctx.Done():
	}
	if u == "" {
		t.Fatalf("chromium did not print its DevTools address")
	}
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		t.Fatalf("connecting to chromium's DevTools at %s: %v", u, err)
	}
	c.ws = ws
	go c.read()

	var target struct {
		TargetID string `json:"targetId"`
	}
	c.call(ctx, t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct {
		SessionID string `json:"sessionId"`
	}
	c.call(ctx, t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	c.session = att.SessionID
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		c.call(ctx, t, c.session, m, nil, nil)
	}
	return c
}

// read dispatches replies and records console errors.
func (c *chromium) read() {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			c.readErr <- err
			c.mu.Lock()
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m struct {
			ID     int64           `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.cdpReply
			}
			continue
		}
		if msg := consoleError(m.Method, m.Params); msg != "" {
			c.mu.Lock()
			c.errs = append(c.errs, msg)
			c.mu.Unlock()
		}
	}
}

// consoleError turns an error-level console message, log entry or
// uncaught exception into text ("" for anything else).
func consoleError(method string, p json.RawMessage) string {
	switch method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(p, &e) == nil && (e.Type == "error" || e.Type == "assert") {
			return fmt.Sprintf("console.%s %v", e.Type, e.Args)
		}
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		if json.Unmarshal(p, &e) == nil {
			return "uncaught " + e.Details.Text + " " + e.Details.Exception.Description
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
		}
		if json.Unmarshal(p, &e) == nil && e.Entry.Level == "error" {
			return "log: " + e.Entry.Text + " " + e.Entry.URL
		}
	}
	return ""
}

// errors returns the console errors so far.
func (c *chromium) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// call sends a DevTools command and decodes its result into out.
func (c *chromium) call(ctx context.Context, t *testing.T, session, method string, params, out any) {
	t.Helper()
	if err := c.try(ctx, session, method, params, out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

func (c *chromium) try(ctx context.Context, session, method string, params, out any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	c.wmu.Lock()
	err := c.ws.WriteJSON(msg)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return errors.New("the DevTools connection closed")
		}
		if r.Error != nil {
			return errors.New(r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// page calls a command on the page's session.
func (c *chromium) page(ctx context.Context, t *testing.T, method string, params, out any) {
	t.Helper()
	c.call(ctx, t, c.session, method, params, out)
}

// eval evaluates a JavaScript expression (awaiting a promise) and returns
// its value as JSON.
func (c *chromium) eval(ctx context.Context, expr string) (json.RawMessage, error) {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := c.try(ctx, c.session, "Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true}, &r)
	if err != nil {
		return nil, err
	}
	if r.Exception != nil {
		return nil, fmt.Errorf("%s %s", r.Exception.Text, r.Exception.Exception.Description)
	}
	return r.Result.Value, nil
}

// waitFor waits, inside the page, until the JavaScript expression cond is
// truthy (re-checked on every DOM change and at least every 100 ms) and
// returns its value; it fails the test after timeout.
func (c *chromium) waitFor(ctx context.Context, t *testing.T, what, cond string, timeout time.Duration) json.RawMessage {
	t.Helper()
	expr := fmt.Sprintf(`new Promise((resolve, reject) => {
  const check = () => { try { return (%s); } catch (e) { return undefined; } };
  let v = check();
  if (v) return resolve(v);
  const obs = new MutationObserver(() => { v = check(); if (v) { done(); resolve(v); } });
  const tick = setInterval(() => { v = check(); if (v) { done(); resolve(v); } }, 100);
  const timer = setTimeout(() => { done(); reject(new Error("timed out")); }, %d);
  function done() { obs.disconnect(); clearInterval(tick); clearTimeout(timer); }
  obs.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
})`, cond, timeout.Milliseconds())
	v, err := c.eval(ctx, expr)
	if err != nil {
		body, _ := c.eval(ctx, `document.body ? document.body.innerText : ""`)
		t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, cond, err, body)
	}
	return v
}

// screenshot saves a PNG of the page (the whole page when full, else the
// viewport) in dir and returns its path.
func (c *chromium) screenshot(ctx context.Context, t *testing.T, dir, name string, full bool) string {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	c.page(ctx, t, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": full}, &r)
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/" + name
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// typeText focuses a field and types into it, then presses Enter.
func (c *chromium) typeAndEnter(ctx context.Context, t *testing.T, selector, text string) {
	t.Helper()
	sel, _ := json.Marshal(selector)
	if _, err := c.eval(ctx, fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.focus(); e.select(); return document.activeElement === e; })()`, sel)); err != nil {
		t.Fatalf("focusing %s: %v", selector, err)
	}
	c.page(ctx, t, "Input.insertText", map[string]any{"text": text}, nil)
	for _, typ := range []string{"keyDown", "keyUp"} {
		p := map[string]any{"type": typ, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
		if typ == "keyDown" {
			p["text"] = "\r"
		}
		c.page(ctx, t, "Input.dispatchKeyEvent", p, nil)
	}
}
