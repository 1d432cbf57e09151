package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/discovery"
	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// TestCloudServesDiscovery: `agent cloud --discovery-listen` answers the
// discovery API over mutual TLS with its mqtts listener as the core.
func TestCloudServesDiscovery(t *testing.T) {
	dir := t.TempDir()
	if err := devcerts.WriteSet(dir, "gw", false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lineWriter{lines: make(chan string, 16)}
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: out, stderr: &errOut}, []string{"cloud", "--listen", "",
			"--tls-listen", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "server.crt"), "--tls-key", filepath.Join(dir, "server.key"),
			"--client-ca", filepath.Join(dir, "ca.crt"), "--discovery-listen", "127.0.0.1:0", "--discovery-host", "localhost, 127.0.0.1",
			"--log-level", "warn"})
	}()
	addrs := map[string]string{}
	for len(addrs) < 2 {
		select {
		case l := <-out.lines:
			if name, addr, ok := strings.Cut(l, " listening on "); ok {
				addrs[name] = addr
			}
		case code := <-done:
			t.Fatalf("exited %d early: %s", code, errOut.String())
		case <-time.After(cloudWait):
			t.Fatalf("no listening lines, have %v", addrs)
		}
	}
	c, err := discovery.New(discovery.Config{Endpoint: addrs["discovery"], CAFile: filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "device.crt"), KeyFile: filepath.Join(dir, "device.key")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Discover(ctx, "gw")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addrs["mqtts"], ":")
	cands := r.Candidates()
	if len(cands) != 2 || cands[0].Entry.HostAddress != "localhost" || cands[1].Entry.HostAddress != "127.0.0.1" ||
		strconv.Itoa(cands[0].Entry.PortNumber) != port || cands[1].Entry.PortNumber != cands[0].Entry.PortNumber {
		t.Errorf("candidates %+v, want localhost and 127.0.0.1 at the mqtts port %s", cands, port)
	}
	c.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(cloudWait):
		t.Fatal("did not stop")
	}
}

func TestCloudDiscoveryNeedsTLS(t *testing.T) {
	code, _, errOut := runAgentCmd(t, "cloud", "--listen", "127.0.0.1:0", "--discovery-listen", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "--tls-listen") {
		t.Errorf("exit %d, stderr %q; want a usage error naming --tls-listen", code, errOut)
	}
}

func TestValidateAndPlanShowDiscovery(t *testing.T) {
	p := writeConfig(t, `thing: greenhouse
board: pi4b
connection:
  endpoint: abc123-ats.iot.eu-west-1.amazonaws.com
  cert: device.crt
  key: device.key
  discovery: {attempts: 5}
devices:
  - {id: heater, driver: relay, pin: GPIO17}
shadows:
  - desired: {heater: heater}
`)
	want := "connection: Greengrass discovery at greengrass-ats.iot.eu-west-1.amazonaws.com:8443 (5 tries, 10s each), then the first core address that answers; asked again when none does (at most every 1m0s); fallback: abc123-ats.iot.eu-west-1.amazonaws.com\n"
	for _, cmd := range []string{"validate", "plan"} {
		code, out, errOut := runAgentCmd(t, cmd, "--config", p)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d\nstdout: %s\nstderr: %s", cmd, code, out, errOut)
		}
	}
}
