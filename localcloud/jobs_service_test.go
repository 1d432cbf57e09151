package localcloud

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/jobs"
)

// fakeNow is a settable clock for Options.Now.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

const mgmt = jobs.ManagementPrefix

// exerciseJobs creates a job over the management API, starts it from the
// device side, and checks the replies and notifications; it returns after
// j1 is IN_PROGRESS and j2 QUEUED on thing "pi".
func exerciseJobs(t *testing.T, c *client) {
	t.Helper()
	d := "$aws/things/pi/jobs/"
	c.subscribe(mgmt+"+/+", d+"notify", d+"notify-next", d+"start-next/+", d+"+/get/+", d+"+/update/+")
	c.publish(mgmt+"create", `{"clientToken":"c1","jobId":"j1","targets":["pi"],"document":{"op":"reboot"}}`)
	if r := c.expect(mgmt + "create/accepted"); r["clientToken"] != "c1" || path(r, "job", "status") != "IN_PROGRESS" {
		t.Fatalf("create = %v", r)
	}
	if n := c.expect(d + "notify"); len(path(n, "jobs", "QUEUED").([]any)) != 1 {
		t.Errorf("notify = %v", n)
	}
	if n := c.expect(d + "notify-next"); path(n, "execution", "jobDocument", "op") != "reboot" {
		t.Errorf("notify-next = %v", n)
	}
	c.publish(mgmt+"create", `{"clientToken":"c2","jobId":"j2","targets":["pi"],"document":{"op":"second"}}`)
	c.expect(mgmt + "create/accepted")
	c.expect(d + "notify")
	c.publish(d+"start-next", `{"clientToken":"s1","stepTimeoutInMinutes":1}`)
	if r := c.expect(d + "start-next/accepted"); r["clientToken"] != "s1" || path(r, "execution", "status") != "IN_PROGRESS" {
		t.Fatalf("start-next = %v", r)
	}
	c.expect(d + "notify")
	c.publish(mgmt+"create", `{"clientToken":"c3","jobId":"j1","targets":["pi"],"document":{}}`)
	if r := c.expect(mgmt + "create/rejected"); r["code"] != jobs.CodeResourceAlreadyExists || r["clientToken"] != "c3" {
		t.Errorf("duplicate create = %v", r)
	}
}

func TestJobsServiceEmbeddedWithTimeout(t *testing.T) {
	clock := &fakeNow{t: time.Unix(1_800_000_000, 0)}
	o := testOptions(t)
	o.Now = clock.now
	o.JobsTick = 5 * time.Millisecond
	s := startServer(t, o)
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	exerciseJobs(t, c)
	// The step timer (1 minute) runs on the injected clock: advancing it
	// times j1 out on the next tick, and j2 becomes next.
	clock.add(time.Minute)
	d := "$aws/things/pi/jobs/"
	c.expect(d + "notify")
	if n := c.expect(d + "notify-next"); path(n, "execution", "jobId") != "j2" {
		t.Errorf("notify-next after the timeout = %v", n)
	}
	c.publish(d+"j1/update", `{"status":"SUCCEEDED","clientToken":"late"}`)
	if r := c.expect(d + "j1/update/rejected"); r["code"] != jobs.CodeTerminalStateReached || path(r, "executionState", "status") != "TIMED_OUT" {
		t.Errorf("update after the timeout = %v", r)
	}
}

func TestJobsSurviveRestart(t *testing.T) {
	o := testOptions(t)
	o.DataDir = t.TempDir()
	s := startServer(t, o)
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	exerciseJobs(t, c)
	c.c.Disconnect(50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, o)
	if s2.LoadedJobs() != 2 {
		t.Errorf("loaded %d jobs, want 2", s2.LoadedJobs())
	}
	c2 := connect(t, "tcp://"+endpoint(t, s2, "mqtt"), nil)
	d := "$aws/things/pi/jobs/"
	c2.subscribe(d+"get/accepted", d+"j1/update/accepted", d+"notify-next", mgmt+"describe/accepted")
	c2.publish(d+"get", `{}`)
	g := c2.expect(d + "get/accepted")
	ip, q := g["inProgressJobs"].([]any), g["queuedJobs"].([]any)
	if len(ip) != 1 || len(q) != 1 || path(ip[0], "jobId") != "j1" || num(path(ip[0], "versionNumber")) != 2 {
		t.Fatalf("pending after restart = %v", g)
	}
	c2.publish(d+"j1/update", `{"status":"SUCCEEDED","expectedVersion":2}`)
	c2.expect(d + "j1/update/accepted")
	if n := c2.expect(d + "notify-next"); path(n, "execution", "jobId") != "j2" {
		t.Errorf("notify-next = %v", n)
	}
	c2.publish(mgmt+"describe", `{"jobId":"j1"}`)
	if r := c2.expect(mgmt + "describe/accepted"); path(r, "job", "status") != "COMPLETED" {
		t.Errorf("describe j1 = %v", r)
	}
}

func TestJobsAttachedToMosquitto(t *testing.T) {
	addr := startMosquitto(t)
	o := testOptions(t)
	o.Listen = ""
	o.Broker = "tcp://" + addr
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
	exerciseJobs(t, connect(t, "tcp://"+addr, nil))
}
