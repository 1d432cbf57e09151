package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped unit file keeps what the daemon relies on, and its ExecStart
// flags are ones `agent run` accepts.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "pinshadow.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=pinshadow",
		"SupplementaryGroups=gpio i2c", "StateDirectory=pinshadow", "ExecReload=/bin/kill -HUP $MAINPID",
		"DeviceAllow=char-gpiochip rw", "DeviceAllow=char-i2c rw", "ProtectKernelTunables=no"} {
		if !strings.Contains(unit, want) {
			t.Errorf("pinshadow.service lacks %q", want)
		}
	}
	var exec string
	for _, l := range strings.Split(unit, "\n") {
		if strings.HasPrefix(l, "ExecStart=") {
			exec = strings.TrimPrefix(l, "ExecStart=")
		}
	}
	f := strings.Fields(exec)
	if len(f) < 2 || f[1] != "run" {
		t.Fatalf("ExecStart %q does not run `agent run`", exec)
	}
	args := append([]string{"run"}, f[2:]...)
	for i, a := range args {
		if a == "--config" && i+1 < len(args) {
			args[i+1] = filepath.Join(t.TempDir(), "missing.yaml") // flags only: no daemon starts
		}
	}
	se := &strings.Builder{}
	if code := run(context.Background(), &env{stdout: &strings.Builder{}, stderr: se}, args); code == 2 {
		t.Errorf("ExecStart flags %v are not accepted by agent run: %s", f[2:], se)
	}
}

// systemd-analyze, where installed, finds nothing wrong with the unit.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "pinshadow.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at one that does.
	p := filepath.Join(t.TempDir(), "pinshadow.service")
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/pinshadow-agent", "/bin/true")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The udev rule hands GPIO, I2C and PWM to the groups the unit uses.
func TestUdevRule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "packaging", "99-pinshadow.rules"))
	if err != nil {
		t.Fatal(err)
	}
	rules := string(b)
	for _, want := range []string{`KERNEL=="gpiochip*", GROUP="gpio"`, `SUBSYSTEM=="i2c-dev"`, `GROUP="i2c"`, `SUBSYSTEM=="pwm"`, "chgrp -R gpio"} {
		if !strings.Contains(rules, want) {
			t.Errorf("99-pinshadow.rules lacks %q", want)
		}
	}
}
