package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var mqttsLine = regexp.MustCompile(`^mqtts listening on (\S+)$`)

// TestInteropAWSDeviceSDKv1 runs the unmodified AWS IoT Device SDK for
// JavaScript v1 (thingShadow, npm aws-iot-device-sdk) against `agent cloud`
// over mutual TLS with certificates from `agent certs`: report, delta to a
// second client, get with delta, optimistic-locked update, a 400 rejection,
// delete and the 404 after it (scripts/interop/shadow-v1.js asserts each).
// scripts/test.sh installs node and the SDK; outside CI the test is skipped
// when they are missing.
func TestInteropAWSDeviceSDKv1(t *testing.T) {
	if testing.Short() {
		t.Skip("interop test builds the binary and runs node")
	}
	dir, err := filepath.Abs("../../scripts/interop")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "aws-iot-device-sdk"))
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or the AWS SDK is missing (%v): scripts/test.sh installs them", err)
		}
		t.Skipf("node or the AWS SDK is missing (%v): run scripts/test.sh once to install them", err)
	}

	bin := buildAgent(t)
	certs := t.TempDir()
	if out, err := exec.Command(bin, "certs", "--out", certs, "--thing", "interop1").CombinedOutput(); err != nil {
		t.Fatalf("agent certs: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cloud := exec.CommandContext(ctx, bin, "cloud", "--listen", "",
		"--tls-listen", "127.0.0.1:0",
		"--tls-cert", filepath.Join(certs, "server.crt"), "--tls-key", filepath.Join(certs, "server.key"),
		"--client-ca", filepath.Join(certs, "ca.crt"))
	stdout, err := cloud.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cloudErr lockedBuffer
	cloud.Stderr = &cloudErr
	if err := cloud.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := mqttsLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = cloud.Wait()
	}()
	t.Cleanup(func() {
		_ = cloud.Process.Kill()
		<-done
	})
	var hostPort string
	select {
	case hostPort = <-addr:
	case <-done:
		t.Fatalf("agent cloud exited: %s", cloudErr.String())
	case <-ctx.Done():
		t.Fatalf("agent cloud printed no mqtts line: %s", cloudErr.String())
	}
	port := hostPort[strings.LastIndex(hostPort, ":")+1:]

	js := exec.CommandContext(ctx, node, "shadow-v1.js")
	js.Dir = dir
	js.Env = append(os.Environ(), "HOST=localhost", "PORT="+port, "CERTS="+certs, "THING=interop1")
	out, err := js.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "INTEROP OK") {
		t.Fatalf("AWS SDK v1 interop failed: %v\n%s\ncloud log:\n%s", err, out, cloudErr.String())
	}
	t.Logf("AWS SDK v1 transcript:\n%s", out)
}
