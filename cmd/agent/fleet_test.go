package main

import (
	"context"
	"strings"
	"testing"
)

func TestFleetUsage(t *testing.T) {
	for _, args := range [][]string{
		{"fleet", "--devices", "0"},
		{"fleet", "--devices", "2", "--endpoint", "127.0.0.1:1883", "--restart-broker-at", "1s"},
		{"fleet", "--devices", "2", "--cert", "c.pem"},
		{"fleet", "--log-level", "loud"},
	} {
		se := &strings.Builder{}
		if code := run(context.Background(), &env{stdout: &strings.Builder{}, stderr: se}, args); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); stderr %s", args, code, se)
		}
	}
}

// agent fleet end to end, small: the report is printed and the exit code
// says nothing was lost.
func TestFleetSmallRun(t *testing.T) {
	out := &strings.Builder{}
	se := &strings.Builder{}
	code := run(context.Background(), &env{stdout: out, stderr: se}, []string{"fleet", "--devices", "3", "--duration", "2s", "--desired-every", "500ms"})
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, se, out)
	}
	for _, want := range []string{"fleet: 3 devices against embedded local cloud", "lost updates: 0", "desired published → hardware write"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
