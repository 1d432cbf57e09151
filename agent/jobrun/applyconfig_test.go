package jobrun

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/hal/fake"
)

// jobClock adapts the fake HAL clock to Clock for the handler tests.
type jobClock struct{ c *fake.FakeClock }

func (j jobClock) Now() time.Time { return j.c.Now() }
func (j jobClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := j.c.NewTimer(d)
	return t.C(), t.Stop
}

// testExec is an Exec as the runner makes it (10m step timeout), recording
// Progress in the slice and signalling each on the channel.
func testExec(clk *fake.FakeClock, resumed bool) (*Exec, *[]Details, <-chan Details) {
	var mu sync.Mutex
	var got []Details
	sig := make(chan Details, 16)
	const step = 10 * time.Minute
	x := &Exec{JobID: "job1", Clock: jobClock{clk}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Resumed: resumed, deadline: clk.Now().Add(step)}
	x.progress = func(_ context.Context, d Details) error {
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		x.mu.Lock()
		x.deadline = clk.Now().Add(step)
		x.mu.Unlock()
		select {
		case sig <- d:
		default:
		}
		return nil
	}
	return x, &got, sig
}

// fakeSwitch records what apply-config asks; Outcome answers from result
// once it is set (ErrNoSwitch before Apply).
type fakeSwitch struct {
	mu       sync.Mutex
	invalid  string
	applied  []string
	verify   time.Duration
	result   *SwitchResult
	changed  chan struct{}
	applyErr error
}

func newFakeSwitch() *fakeSwitch { return &fakeSwitch{changed: make(chan struct{})} }

func (f *fakeSwitch) Validate(data []byte) error {
	if f.invalid != "" && strings.Contains(string(data), f.invalid) {
		var lines []string
		for i := 1; i <= 7; i++ {
			lines = append(lines, fmt.Sprintf("/etc/pinshadow/agent.yaml:%d:1: problem %d", i, i))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	return nil
}

func (f *fakeSwitch) Apply(_ context.Context, job string, data []byte, verify time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.applyErr != nil {
		return f.applyErr
	}
	f.applied = append(f.applied, job+":"+string(data))
	f.verify = verify
	return nil
}

func (f *fakeSwitch) finish(r SwitchResult) {
	f.mu.Lock()
	f.result = &r
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeSwitch) Outcome(ctx context.Context, job string) (SwitchResult, error) {
	for {
		f.mu.Lock()
		n, r, ch := len(f.applied), f.result, f.changed
		f.mu.Unlock()
		if n == 0 {
			return SwitchResult{}, ErrNoSwitch
		}
		if r != nil {
			return *r, nil
		}
		select {
		case <-ctx.Done():
			return SwitchResult{}, context.Cause(ctx)
		case <-ch:
		}
	}
}

func TestDecodeApplyConfig(t *testing.T) {
	yaml := "thing: t\n"
	b64 := base64.StdEncoding.EncodeToString([]byte(yaml))
	for _, tc := range []struct {
		doc, want, err string
		verify         time.Duration
	}{
		{doc: `{"type":"apply-config","config":"thing: t\n"}`, want: yaml},
		{doc: `{"type":"apply-config","config_base64":"` + b64 + `"}`, want: yaml},
		{doc: `{"type":"apply-config","config":"thing: t\n","verify_timeout":"30s"}`, want: yaml, verify: 30 * time.Second},
		{doc: `{"type":"apply-config"}`, err: `no "config"`},
		{doc: `{"type":"apply-config","config":"  \n"}`, err: "empty"},
		{doc: `{"type":"apply-config","config":"a","config_base64":"YQ=="}`, err: "not both"},
		{doc: `{"type":"apply-config","config_base64":"%%%"}`, err: "not standard base64"},
		{doc: `{"type":"apply-config","config":"a","verify_timeout":"soon"}`, err: "verify_timeout"},
		{doc: `{"type":"apply-config","config":"a","verify_timeout":"10ms"}`, err: "at least 1s"},
		{doc: `{"type":"apply-config","conifg":"a"}`, err: `unknown field "conifg"`},
		{doc: `[1]`, err: "apply-config document"},
	} {
		data, verify, err := decodeApplyConfig(json.RawMessage(tc.doc))
		if tc.err != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want ErrInvalid with %q", tc.doc, err, tc.err)
			}
			continue
		}
		if err != nil || string(data) != tc.want || verify != tc.verify {
			t.Errorf("%s: got %q %s %v", tc.doc, data, verify, err)
		}
	}
}

func FuzzDecodeApplyConfig(f *testing.F) {
	f.Add(`{"type":"apply-config","config":"thing: t\n"}`)
	f.Add(`{"type":"apply-config","config_base64":"dGhpbmc6IHQK","verify_timeout":"5s"}`)
	f.Add(`{"type":"apply-config","config":"","config_base64":""}`)
	f.Fuzz(func(t *testing.T, doc string) {
		data, verify, err := decodeApplyConfig(json.RawMessage(doc))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(strings.TrimSpace(string(data))) == 0 || (verify != 0 && verify < time.Second) {
			t.Fatalf("accepted %q: data %q verify %s", doc, data, verify)
		}
	})
}

func TestApplyConfigRejectsInvalidConfiguration(t *testing.T) {
	sw := newFakeSwitch()
	sw.invalid = "broken"
	_, err := ApplyConfig(ApplyConfigOptions{Switch: sw}).Check(json.RawMessage(`{"type":"apply-config","config":"broken: ["}`))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Check: %v, want ErrInvalid", err)
	}
	msg := err.Error()
	for _, want := range []string{"7 problems (first 5)", "agent.yaml:1:1: problem 1; ", "problem 5"} {
		if !strings.Contains(msg, want) {
			t.Errorf("reason %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "problem 6") {
		t.Errorf("reason %q lists more than %d problems", msg, MaxConfigProblems)
	}
	if len(sw.applied) != 0 {
		t.Fatal("an invalid configuration was applied")
	}
}

func TestApplyConfigRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		result SwitchResult
		err    string
	}{
		{name: "applied", result: SwitchResult{Applied: true, Config: "/c.yaml", Backup: "/c.yaml.previous"}},
		{name: "rolled back", result: SwitchResult{Reason: "a device failed: x; the previous configuration was restored", Config: "/c.yaml", Backup: "/c.yaml.previous"},
			err: "a device failed: x; the previous configuration was restored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
			sw := newFakeSwitch()
			job, err := ApplyConfig(ApplyConfigOptions{Switch: sw, VerifyTimeout: time.Minute}).Check(json.RawMessage(`{"type":"apply-config","config":"thing: t\n","verify_timeout":"2h"}`))
			if err != nil {
				t.Fatal(err)
			}
			x, progress, _ := testExec(clk, false)
			type res struct {
				d   Details
				err error
			}
			done := make(chan res, 1)
			go func() { d, err := job.Run(context.Background(), x); done <- res{d, err} }()
			// Wait until the job waits for the outcome (its refresh timer).
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := clk.BlockUntil(ctx, 1); err != nil {
				t.Fatal(err)
			}
			sw.finish(tc.result)
			r := <-done
			if tc.err == "" && r.err != nil || tc.err != "" && (r.err == nil || r.err.Error() != tc.err) {
				t.Fatalf("Run: %v, want %q", r.err, tc.err)
			}
			if r.d["config"] != "/c.yaml" || r.d["backup"] != "/c.yaml.previous" {
				t.Fatalf("details %v", r.d)
			}
			if len(sw.applied) != 1 || sw.applied[0] != "job1:thing: t\n" || sw.verify != time.Minute {
				t.Fatalf("applied %q with verify %s (a document may not ask for more than the configured 1m)", sw.applied, sw.verify)
			}
			if len(*progress) == 0 || (*progress)[0]["phase"] != "applying" {
				t.Fatalf("progress %v, want phase applying before the switch", *progress)
			}
		})
	}
}

// The agent is stopped right after Apply (the switch restarts it): Run
// returns the stop's cause, and Resume on the next agent reports.
func TestApplyConfigStoppedThenResumed(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	sw := newFakeSwitch()
	h := ApplyConfig(ApplyConfigOptions{Switch: sw})
	doc := json.RawMessage(`{"type":"apply-config","config":"thing: t\n"}`)
	job, err := h.Check(doc)
	if err != nil {
		t.Fatal(err)
	}
	stopped := errors.New("agent stopping")
	ctx, cancel := context.WithCancelCause(context.Background())
	x, _, _ := testExec(clk, false)
	done := make(chan error, 1)
	go func() { _, err := job.Run(ctx, x); done <- err }()
	bctx, bcancel := context.WithTimeout(context.Background(), wait)
	defer bcancel()
	if err := clk.BlockUntil(bctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel(stopped)
	if err := <-done; !errors.Is(err, stopped) {
		t.Fatalf("Run after the stop: %v, want the stop's cause", err)
	}

	sw.finish(SwitchResult{Applied: true})
	job2, _ := h.Check(doc)
	x2, _, _ := testExec(clk, true)
	if _, err := job2.(Resumer).Resume(context.Background(), x2, Details{"phase": "applying"}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if len(sw.applied) != 1 {
		t.Fatalf("applied %d times, want once", len(sw.applied))
	}
}

// Resumed with no switch recorded: the agent stopped before Apply, so the
// job applies now.
func TestApplyConfigResumeBeforeApply(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	sw := newFakeSwitch()
	job, _ := ApplyConfig(ApplyConfigOptions{Switch: sw}).Check(json.RawMessage(`{"type":"apply-config","config":"thing: t\n"}`))
	x, _, _ := testExec(clk, true)
	done := make(chan error, 1)
	go func() { _, err := job.(Resumer).Resume(context.Background(), x, nil); done <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	sw.finish(SwitchResult{Applied: true})
	if err := <-done; err != nil || len(sw.applied) != 1 {
		t.Fatalf("Resume: %v, applied %v", err, sw.applied)
	}
}

func TestApplyConfigApplyFails(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	sw := newFakeSwitch()
	sw.applyErr = errors.New("writing /etc/pinshadow/agent.yaml: read-only file system")
	job, _ := ApplyConfig(ApplyConfigOptions{Switch: sw}).Check(json.RawMessage(`{"type":"apply-config","config":"thing: t\n"}`))
	x, _, _ := testExec(clk, false)
	_, err := job.Run(context.Background(), x)
	if err == nil || !strings.Contains(err.Error(), "read-only file system; the configuration in force is unchanged") {
		t.Fatalf("Run: %v", err)
	}
}

// A verification longer than half the step timeout refreshes the step
// deadline instead of letting the runner time the job out.
func TestApplyConfigRefreshesStepDeadline(t *testing.T) {
	clk := fake.NewFakeClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	sw := newFakeSwitch()
	job, _ := ApplyConfig(ApplyConfigOptions{Switch: sw}).Check(json.RawMessage(`{"type":"apply-config","config":"thing: t\n"}`))
	x, progress, sig := testExec(clk, false)
	done := make(chan error, 1)
	go func() { _, err := job.Run(context.Background(), x); done <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if d := <-sig; d["phase"] != "applying" {
		t.Fatalf("first progress %v", d)
	}
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := x.Deadline()
	clk.Advance(5 * time.Minute) // half the 10m step timeout
	select {
	case d := <-sig:
		if d["phase"] != "verifying" || !x.Deadline().After(before) {
			t.Fatalf("refresh %v, deadline %s (was %s)", d, x.Deadline(), before)
		}
	case <-ctx.Done():
		t.Fatal("the step deadline was not refreshed")
	}
	sw.finish(SwitchResult{Applied: true})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(*progress); n < 2 || (*progress)[n-1]["phase"] != "verifying" {
		t.Fatalf("progress %v, want a verifying refresh", *progress)
	}
}
