package localcloud

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mosquittoPath finds the broker binary (Debian installs it in /usr/sbin).
func mosquittoPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto is not installed but CI is set: scripts/test.sh installs it (apt-get install mosquitto)")
	}
	t.Skip("mosquitto not installed (apt-get install mosquitto, or run scripts/test.sh); skipping attach-mode tests")
	return ""
}

// startMosquitto runs mosquitto on a free loopback port until the test
// ends and returns its address.
func startMosquitto(t *testing.T) string {
	bin := mosquittoPath(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	var logs strings.Builder
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logs.WriteString(line + "\n")
			if strings.Contains(line, "Opening ipv4 listen socket on port "+port) {
				close(ready)
			}
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("mosquitto exited: %s", logs.String())
	case <-time.After(waitFor):
		t.Fatalf("mosquitto did not open port %s: %s", port, logs.String())
	}
	// The socket is opened just after that log line; wait until it accepts.
	deadline := time.Now().Add(waitFor)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto not accepting on %s: %v", addr, err)
		}
		select {
		case <-exited:
			t.Fatalf("mosquitto exited: %s", logs.String())
		case <-time.After(20 * time.Millisecond): // polling a port, not synchronising goroutines
		}
	}
}

func TestAttachToMosquitto(t *testing.T) {
	addr := startMosquitto(t)
	o := testOptions(t)
	o.Listen = ""
	o.Broker = "tcp://" + addr
	o.DataDir = t.TempDir()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	c := connect(t, "tcp://"+addr, nil)
	p := "$aws/things/mq/shadow"
	c.subscribe(p+"/update/+", p+"/get/+")
	// Start returned after the service subscribed: the first request is
	// answered.
	c.publish(p+"/get", `{"clientToken":"first"}`)
	if d := c.expect(p + "/get/rejected"); num(d["code"]) != 404 || d["clientToken"] != "first" {
		t.Errorf("get before any update = %v", d)
	}
	c.publish(p+"/update", `{"state":{"desired":{"on":true}},"clientToken":"u1"}`)
	if d := c.expect(p + "/update/accepted"); d["clientToken"] != "u1" || num(d["version"]) != 1 {
		t.Errorf("accepted = %v", d)
	}
	if d := c.expect(p + "/update/delta"); path(d, "state", "on") != true {
		t.Errorf("delta = %v", d)
	}
	c.expect(p + "/update/documents")
	for i := 2; i <= 20; i++ {
		c.publish(p+"/update", fmt.Sprintf(`{"state":{"reported":{"n":%d}}}`, i))
	}
	for want := int64(2); want <= 20; want++ {
		d := c.expect(p + "/update/accepted")
		if num(d["version"]) != want {
			t.Fatalf("version %v, want %d", d["version"], want)
		}
		c.expect(p + "/update/delta")
		c.expect(p + "/update/documents")
	}
}
