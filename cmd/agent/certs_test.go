package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runAgentCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), &env{stdout: &o, stderr: &e}, args)
	return code, o.String(), e.String()
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errOut := runAgentCmd(t, "certs", "--out", dir, "--thing", "dev-1")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.Contains(out, "device.crt") {
		t.Errorf("stdout %q does not list what was written", out)
	}
	for _, n := range []string{"ca.crt", "ca.key", "server.crt", "server.key", "device.crt", "device.key"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Error(err)
		}
	}
	code, _, errOut = runAgentCmd(t, "certs", "--out", dir, "--thing", "dev-1")
	if code != 1 || !strings.Contains(errOut, "ca.crt") || !strings.Contains(errOut, "--force") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("rerun without --force: exit %d, stderr %q; want 1 and a one-line error naming ca.crt and --force", code, errOut)
	}
	if code, _, errOut = runAgentCmd(t, "certs", "--out", dir, "--thing", "dev-1", "--force"); code != 0 {
		t.Errorf("--force: exit %d, stderr %q", code, errOut)
	}
}

func TestCertsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"certs"},
		{"certs", "--out", t.TempDir()},
		{"certs", "--thing", "x"},
		{"certs", "--bogus"},
		{"certs", "--out", t.TempDir(), "--thing", "x", "extra"},
	} {
		if code, _, errOut := runAgentCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d (stderr %q), want 2", args, code, errOut)
		}
	}
}
