package jobrun

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
)

// fakeMachine has a boot id and a reboot command that changes it (when
// works) after recording the call.
type fakeMachine struct {
	mu    sync.Mutex
	boot  string
	calls [][]string
	works bool
	fail  error
}

func (m *fakeMachine) bootID() (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boot, nil
}

func (m *fakeMachine) exec(_ context.Context, argv []string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, argv)
	if m.fail != nil {
		return []byte("Failed to reboot: Access denied\n"), m.fail
	}
	if m.works {
		m.boot = "boot-2"
	}
	return nil, nil
}

func (m *fakeMachine) handler() Handler {
	return Reboot(RebootOptions{Command: []string{"fake-reboot", "now"}, Timeout: 5 * time.Minute, BootID: m.bootID, Exec: m.exec})
}

func rebootJobFor(t *testing.T, h Handler) Job {
	t.Helper()
	j, err := h.Check(json.RawMessage(`{"type":"reboot"}`))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestRebootCheck(t *testing.T) {
	_, err := Reboot(RebootOptions{}).Check(json.RawMessage(`{"type":"reboot","delay":"5s"}`))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown field "delay"`) {
		t.Fatalf("Check: %v", err)
	}
}

func TestRebootRecordsBeforeCommand(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	m := &fakeMachine{boot: "boot-1", works: true}
	x, progress, _ := testExec(clk, false)
	var atCommand int
	h := Reboot(RebootOptions{BootID: m.bootID, Exec: func(ctx context.Context, argv []string) ([]byte, error) {
		atCommand = len(*progress)
		return m.exec(ctx, argv)
	}})
	d, err := rebootJobFor(t, h).Run(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	if atCommand != 2 || (*progress)[0]["phase"] != "requested" || (*progress)[1]["phase"] != "rebooting" ||
		(*progress)[0]["boot_id"] != "boot-1" || (*progress)[0]["requested_at"] != "2026-11-26T10:00:00Z" {
		t.Fatalf("progress before the command: %d %v", atCommand, *progress)
	}
	if strings.Join(m.calls[0], " ") != "systemctl reboot" {
		t.Fatalf("default command %v", m.calls)
	}
	if d["boot_id"] != "boot-2" || d["previous_boot_id"] != "boot-1" {
		t.Fatalf("details %v", d)
	}
}

func TestRebootCommandFails(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	m := &fakeMachine{boot: "boot-1", fail: errors.New("exit status 1")}
	x, _, _ := testExec(clk, false)
	d, err := rebootJobFor(t, m.handler()).Run(context.Background(), x)
	if err == nil || err.Error() != `reboot command "fake-reboot now" failed: exit status 1` {
		t.Fatalf("Run: %v", err)
	}
	if d["output"] != "Failed to reboot: Access denied" {
		t.Fatalf("details %v", d)
	}
}

// The command returns and the machine stays up: FAILED once the timeout
// has passed.
func TestRebootDidNotHappen(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	m := &fakeMachine{boot: "boot-1"}
	x, _, _ := testExec(clk, false)
	done := make(chan error, 1)
	go func() { _, err := rebootJobFor(t, m.handler()).Run(context.Background(), x); done <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 2); err != nil { // waiting for the timeout, keeping the step alive
		t.Fatal(err)
	}
	clk.Advance(5*time.Minute - time.Second)
	select {
	case err := <-done:
		t.Fatalf("ended before the timeout: %v", err)
	default:
	}
	clk.Advance(time.Second)
	select {
	case err := <-done:
		want := "reboot did not happen: the boot id is still boot-1 5m0s after the reboot was requested"
		if err == nil || err.Error() != want {
			t.Fatalf("Run: %v, want %q", err, want)
		}
	case <-ctx.Done():
		t.Fatal("the reboot job never ended")
	}
}

func TestRebootResume(t *testing.T) {
	requested := Details{"phase": "rebooting", "boot_id": "boot-1", "requested_at": "2026-11-26T10:00:00Z"}
	for _, tc := range []struct {
		name  string
		boot  string
		now   time.Time
		last  Details
		err   string
		calls int
	}{
		{name: "came back", boot: "boot-2", now: time.Date(2026, 11, 26, 10, 1, 0, 0, time.UTC), last: requested},
		{name: "same boot after the timeout", boot: "boot-1", now: time.Date(2026, 11, 26, 10, 6, 0, 0, time.UTC), last: requested,
			err: "reboot did not happen: the boot id is still boot-1 5m0s after the reboot was requested"},
		{name: "stopped before the request", boot: "boot-1", now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), last: nil, calls: 1},
		{name: "stopped before the command", boot: "boot-1", now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), calls: 1,
			last: Details{"phase": "requested", "boot_id": "boot-1", "requested_at": "2026-11-26T10:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fake.NewFakeClock(tc.now)
			m := &fakeMachine{boot: tc.boot, works: true}
			x, _, _ := testExec(clk, true)
			_, err := rebootJobFor(t, m.handler()).(Resumer).Resume(context.Background(), x, tc.last)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
				t.Fatalf("Resume: %v, want %q", err, tc.err)
			}
			if len(m.calls) != tc.calls {
				t.Fatalf("the command ran %d times, want %d", len(m.calls), tc.calls)
			}
		})
	}
}

func TestReadBootID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(p, []byte("5b6f4c1e-0000-4000-8000-000000000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, err := ReadBootID(p)()
	if err != nil || id != "5b6f4c1e-0000-4000-8000-000000000001" {
		t.Fatalf("%q %v", id, err)
	}
	if _, err := ReadBootID(filepath.Join(t.TempDir(), "none"))(); err == nil {
		t.Fatal("a missing boot id file gave no error")
	}
}

// With Delivered the command waits for the service to accept the
// "rebooting" note; no confirmation, no reboot.
func TestRebootWaitsForDelivery(t *testing.T) {
	for _, confirm := range []bool{true, false} {
		clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
		m := &fakeMachine{boot: "boot-1", works: true}
		var got Details
		h := Reboot(RebootOptions{BootID: m.bootID, Exec: m.exec, Delivered: func(_ context.Context, job string, d Details) error {
			if len(m.calls) != 0 {
				t.Error("the command ran before the request was delivered")
			}
			got = d
			if !confirm {
				return errors.New("step timeout reached")
			}
			return nil
		}})
		x, _, _ := testExec(clk, false)
		_, err := rebootJobFor(t, h).Run(context.Background(), x)
		if got["phase"] != "requested" || got["boot_id"] != "boot-1" {
			t.Fatalf("delivery awaited for %v", got)
		}
		if confirm && (err != nil || len(m.calls) != 1) {
			t.Fatalf("confirmed: %v, %d commands", err, len(m.calls))
		}
		if !confirm && (err == nil || !strings.Contains(err.Error(), "not rebooting") || len(m.calls) != 0) {
			t.Fatalf("unconfirmed: %v, %d commands", err, len(m.calls))
		}
	}
}
