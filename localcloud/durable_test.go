package localcloud

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShadowsSurviveRestart(t *testing.T) {
	// Journal only, and compaction into the snapshot after every few writes.
	for _, compactAfter := range []int{0, 2, 3} {
		t.Run(fmt.Sprintf("compactAfter=%d", compactAfter), func(t *testing.T) {
			testRestart(t, compactAfter)
		})
	}
}

func testRestart(t *testing.T, compactAfter int) {
	dir := t.TempDir()
	o := testOptions(t)
	o.DataDir = dir
	o.compactAfter = compactAfter
	s := startServer(t, o)
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	p := "$aws/things/keep/shadow"
	n := "$aws/things/keep/shadow/name/gone"
	c.subscribe(p+"/update/accepted", n+"/update/accepted", n+"/delete/accepted")
	for _, body := range []string{`{"state":{"desired":{"a":1}}}`, `{"state":{"reported":{"a":1}}}`, `{"state":{"desired":{"b":[1,2]}}}`} {
		c.publish(p+"/update", body)
		c.expect(p + "/update/accepted")
	}
	c.publish(n+"/update", `{"state":{"reported":{"x":1}}}`)
	c.expect(n + "/update/accepted")
	c.publish(n+"/delete", ``)
	if d := c.expect(n + "/delete/accepted"); num(d["version"]) != 1 {
		t.Fatalf("delete/accepted %v", d)
	}
	c.c.Disconnect(50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, o)
	defer s2.Close()
	if s2.Loaded() != 2 {
		t.Errorf("loaded %d shadows, want 2 (one live, one deletion record)", s2.Loaded())
	}
	c2 := connect(t, "tcp://"+endpoint(t, s2, "mqtt"), nil)
	c2.subscribe(p+"/get/accepted", n+"/get/rejected", n+"/update/accepted")
	c2.publish(p+"/get", `{"clientToken":"after"}`)
	get := c2.expect(p + "/get/accepted")
	if num(get["version"]) != 3 || num(path(get, "state", "desired", "a")) != 1 || num(path(get, "state", "reported", "a")) != 1 {
		t.Errorf("after restart get = %v", get)
	}
	if b, _ := path(get, "state", "desired", "b").([]any); len(b) != 2 {
		t.Errorf("after restart desired.b = %v", path(get, "state", "desired", "b"))
	}
	c2.publish(n+"/get", ``)
	if rej := c2.expect(n + "/get/rejected"); num(rej["code"]) != 404 {
		t.Errorf("deleted named shadow after restart: %v", rej)
	}
	// The deletion record survived too: re-creation continues the versions.
	c2.publish(n+"/update", `{"state":{"reported":{"x":2}}}`)
	if acc := c2.expect(n + "/update/accepted"); num(acc["version"]) <= 1 {
		t.Errorf("re-created after restart: version %v, want it to follow the deleted version 1", acc["version"])
	}
	// More writes after the restart, then a third start sees them all.
	c2.publish(p+"/update", `{"state":{"reported":{"a":5}}}`)
	c2.publish(p+"/get", `{"clientToken":"third"}`)
	if get := c2.expect(p + "/get/accepted"); num(get["version"]) != 4 {
		t.Fatalf("get after 4th update = %v", get)
	}
	c2.c.Disconnect(50)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := startServer(t, o)
	c3 := connect(t, "tcp://"+endpoint(t, s3, "mqtt"), nil)
	c3.subscribe(p+"/get/accepted", n+"/get/accepted")
	c3.publish(p+"/get", ``)
	if get := c3.expect(p + "/get/accepted"); num(get["version"]) != 4 || num(path(get, "state", "reported", "a")) != 5 {
		t.Errorf("third start: %v", get)
	}
	c3.publish(n+"/get", ``)
	if get := c3.expect(n + "/get/accepted"); num(path(get, "state", "reported", "x")) != 2 {
		t.Errorf("third start, re-created named shadow: %v", get)
	}
}

func TestDatabaseLockedFailsFast(t *testing.T) {
	dir := t.TempDir()
	o := testOptions(t)
	o.DataDir = dir
	startServer(t, o)
	start := time.Now()
	_, err := New(o)
	if !errors.Is(err, ErrDatabaseLocked) || !strings.Contains(err.Error(), filepath.Join(dir, DBFile)) {
		t.Fatalf("second server on the same data dir: %v, want ErrDatabaseLocked naming the file", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

func TestCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, DBFile)
	garbage := make([]byte, 64*1024)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if err := os.WriteFile(file, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	o.DataDir = dir
	_, err := New(o)
	if !errors.Is(err, ErrDatabaseCorrupt) || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("corrupt file: %v, want a one-line ErrDatabaseCorrupt naming %s", err, file)
	}
}

func TestNewReportsUnusableListener(t *testing.T) {
	s := startServer(t, testOptions(t))
	o := testOptions(t)
	o.Listen = endpoint(t, s, "mqtt")
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), o.Listen) {
		t.Fatalf("port taken: %v, want an error naming %s", err, o.Listen)
	}
	o = testOptions(t)
	o.Listen = ""
	if _, err := New(o); !errors.Is(err, ErrOptions) {
		t.Errorf("no listener: %v, want ErrOptions", err)
	}
	o = testOptions(t)
	o.Broker = "tcp://127.0.0.1:1"
	if _, err := New(o); !errors.Is(err, ErrOptions) {
		t.Errorf("broker with listener: %v, want ErrOptions", err)
	}
	o.Listen = ""
	s2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s2.Start(ctx); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable broker: %v", err)
	}
	s2.Close()
}
