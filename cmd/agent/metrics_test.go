package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/hal/fake"
	"github.com/pinshadow/pinshadow/localcloud"
	"github.com/pinshadow/pinshadow/metrics"
)

// scrapeURL gets and strictly parses a /metrics page.
func scrapeURL(t *testing.T, url string) metrics.Samples {
	t.Helper()
	cl := &http.Client{Timeout: cloudWait}
	defer cl.CloseIdleConnections()
	res, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != metrics.ContentType {
		t.Fatalf("GET %s: %s, Content-Type %q", url, res.Status, res.Header.Get("Content-Type"))
	}
	s, err := metrics.Parse(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return s
}

var metricsLine = regexp.MustCompile(`^metrics on (http://\S+/metrics)$`)

// agent cloud --metrics-listen: a rejected request shows up by op and code.
func TestCloudMetricsListen(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lineWriter{lines: make(chan string, 16)}
	var errOut lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &env{stdout: out, stderr: &errOut}, []string{"cloud", "--listen", "127.0.0.1:0",
			"--metrics-listen", "127.0.0.1:0", "--log-level", "warn"})
	}()
	var mqttAddr, url string
	for mqttAddr == "" || url == "" {
		select {
		case l := <-out.lines:
			if m := listenLine.FindStringSubmatch(l); m != nil {
				mqttAddr = m[2]
			} else if m := metricsLine.FindStringSubmatch(l); m != nil {
				url = m[1]
			} else {
				t.Fatalf("unexpected stdout line %q", l)
			}
		case code := <-done:
			t.Fatalf("exited %d early: %s", code, errOut.String())
		case <-time.After(cloudWait):
			t.Fatal("no listening lines")
		}
	}
	c := mqttConnect(t, "tcp://"+mqttAddr)
	ans := make(chan paho.Message, 1)
	sub := c.Subscribe("$aws/things/gw/shadow/get/+", 1, func(_ paho.Client, m paho.Message) { ans <- m })
	if !sub.WaitTimeout(cloudWait) || sub.Error() != nil {
		t.Fatal(sub.Error())
	}
	c.Publish("$aws/things/gw/shadow/get", 1, false, `{}`).WaitTimeout(cloudWait)
	select {
	case <-ans:
	case <-time.After(cloudWait):
		t.Fatal("no answer")
	}
	c.Disconnect(50)
	// The service counts a request just after publishing its answer, so
	// the answer can arrive first: scrape until the count shows (bounded).
	deadline := time.Now().Add(cloudWait)
	for {
		s := scrapeURL(t, url)
		if v, _ := s.Get(`localcloud_shadow_requests_total{op="get",result="rejected",code="404"}`); v == 1 {
			if _, ok := s.Get("process_cpu_seconds_total"); !ok {
				t.Error("no process metrics")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 404 was never counted: %v", s)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel, stderr %s", code, errOut.String())
		}
	case <-time.After(cloudWait):
		t.Fatal("did not stop after cancel")
	}
}

// agent run --metrics-listen: the page parses, shows the connection online
// and counts a desired change as applied with its latency.
func TestRunMetricsListen(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	o := localcloud.DefaultOptions()
	o.Listen, o.RatePerThing, o.MaxInFlight = "127.0.0.1:0", 0, 0
	cloud, err := localcloud.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := cloud.Start(t.Context()); err != nil {
		cloud.Close()
		t.Fatal(err)
	}
	defer cloud.Close()
	_, port, _ := net.SplitHostPort(cloud.Endpoints()[0].Addr.String())
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(daemonConfig, filepath.Join(dir, "state"), port)), 0o600); err != nil {
		t.Fatal(err)
	}
	h := fake.New()
	newBME(h)
	logs := newDaemonLog()
	started := make(chan *agent.Agent, 1)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runAgent(runCtx, &env{stdout: &strings.Builder{}, stderr: logs}, runOptions{
			configPath: cfgPath, logFormat: "text", logLevel: "info", statusAddr: "127.0.0.1:0",
			metricsAddr: "127.0.0.1:0",
			deps:        agent.Deps{HAL: h, StopTimeout: time.Second},
			started:     func(a *agent.Agent) { started <- a },
		})
	}()
	a := <-started
	select {
	case <-a.Ready():
	case <-time.After(runWait):
		t.Fatal("agent never converged")
	}
	logs.waitFor(t, "metrics endpoint")
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics url in the log:\n%s", logs)
	}
	s := scrapeURL(t, m[1])
	if v, _ := s.Get(`pinshadow_connection_state{state="online"}`); v != 1 {
		t.Errorf(`pinshadow_connection_state{state="online"} = %v`, v)
	}
	app := cloudApp(t, cloud.Endpoints()[0].Addr.String(), "d1")
	app.update(t, map[string]any{"heater": true})
	deadline := time.Now().Add(runWait)
	for {
		s = scrapeURL(t, m[1])
		if v, _ := s.Get(`pinshadow_apply_seconds_count{key="heater"}`); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the heater's apply was never counted")
		}
	}
	if v, _ := s.Get(`pinshadow_desired_results_total{key="heater",result="applied"}`); v < 1 {
		t.Errorf("applied results = %v", v)
	}
	if v, _ := s.Get("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	cloud.Close()
	stop()
	if err := <-done; err != nil {
		t.Errorf("runAgent: %v", err)
	}
}
