package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/board"
	"github.com/pinshadow/pinshadow/config"
	"github.com/pinshadow/pinshadow/configs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Markers that must never reach a response.
const (
	secretCert  = "/etc/SECRET-cert-path/device.pem.crt"
	secretKey   = "/etc/SECRET-key-path/private.pem.key"
	secretCA    = "/etc/SECRET-ca-path/AmazonRootCA1.pem"
	secretCreds = "/home/SECRET-creds/.aws/credentials"
	secretToken = "tok-SECRET-4f1d2c"
)

// fakeAgent is what the console reads, with a configuration that names
// certificate, key and credential files.
type fakeAgent struct {
	cfg *config.Config
	mu  sync.Mutex
	st  agent.Status
}

func (f *fakeAgent) Status() agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}
func (f *fakeAgent) Config() *config.Config { return f.cfg }
func (f *fakeAgent) ShadowDocuments() []agent.ShadowDocument {
	return []agent.ShadowDocument{{Name: "", Known: true, Exists: true, Version: 7,
		Desired: map[string]any{"fan": json.Number("150")}, Reported: map[string]any{"fan": json.Number("0")},
		Delta: map[string]any{"fan": json.Number("150")}}}
}

func newFakeAgent(t *testing.T) *fakeAgent {
	t.Helper()
	cfg, err := config.Parse(configs.SimName, config.Options{
		ReadFile: func(string) ([]byte, error) { return configs.Sim(), nil },
		Detect: func() board.Detection {
			p, _ := board.ByName("pi4b")
			return board.Detection{Profile: p, Source: "override"}
		},
	})
	if err != nil {
		t.Fatalf("parsing the sim configuration: %v", err)
	}
	cfg.Connection.CertFile, cfg.Connection.KeyFile, cfg.Connection.CAFile = secretCert, secretKey, secretCA
	cfg.Connection.Credentials.File = secretCreds
	st := agent.Status{Thing: cfg.Thing, Running: true, Ready: true, StateFile: "/var/lib/SECRET-state/state.json",
		Config: []string{"/etc/SECRET-config/agent.yaml"}}
	st.Connection = agent.ConnectionStatus{Endpoint: "wss://AKIASECRET:SECRETKEY@example.iot.amazonaws.com:443/mqtt?X-Amz-Signature=SECRETSIG", State: "online", Connects: 1}
	st.Keys = []agent.KeyStatus{
		{Key: "fan", Device: "fan", Property: "speed", Hardware: 0.0, Status: "rejected", Message: "fan: 150 % is outside 0…100 %"},
		{Key: "heater", Device: "heater", Property: "on", Value: true, Hardware: true, Status: "applied", Latency: 1500 * time.Microsecond},
	}
	st.Sensors = []agent.SensorStatus{{Key: "temperature", Device: "climate", Property: "temperature", Value: 21.5}}
	return &fakeAgent{cfg: cfg, st: st}
}

type desiredCall struct {
	shadow string
	patch  map[string]any
}

type fakeFaults struct {
	mu   sync.Mutex
	done []Fault
}

func (f *fakeFaults) List() []Fault {
	return []Fault{{Kind: "i2c_nack", Device: "climate"}, {Kind: "restart_broker"}}
}
func (f *fakeFaults) Inject(_ context.Context, kind, device string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = append(f.done, Fault{Kind: kind, Device: device})
	return nil
}

type rig struct {
	srv     *Server
	ts      *httptest.Server
	desired chan desiredCall
	faults  *fakeFaults
}

func newRig(t *testing.T, o Options) *rig {
	t.Helper()
	r := &rig{desired: make(chan desiredCall, 4), faults: &fakeFaults{}}
	r.srv = New(o)
	r.srv.Attach(Source{Mode: "sim", Agent: newFakeAgent(t), Faults: r.faults,
		Desired: func(_ context.Context, shadow string, patch map[string]any) error {
			r.desired <- desiredCall{shadow, patch}
			return nil
		}})
	r.ts = httptest.NewServer(r.srv.Handler())
	t.Cleanup(r.ts.Close)
	return r
}

func (r *rig) do(t *testing.T, method, path, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := r.ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestStatusShowsShadowsKeysSensorsAndHistory(t *testing.T) {
	r := newRig(t, Options{})
	now := time.Now()
	for i, v := range []float64{20.5, 20.9, 21.4} {
		r.srv.Publish(agent.Event{Time: now.Add(time.Duration(i) * time.Second), Kind: agent.EventSensor, Key: "temperature", Value: v})
	}
	r.srv.Publish(agent.Event{Time: now, Kind: agent.EventReject, Key: "fan", Value: 150.0, Status: "rejected", Message: "fan: 150 % is outside 0…100 %"})
	res, body := r.do(t, "GET", "/api/status", "", nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var s Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if s.Thing != "sim-greenhouse" || s.Connection.State != "online" || s.Write || s.CanSetDesired || len(s.Faults) != 0 {
		t.Errorf("head of the snapshot wrong (a read-only console offers no writes): %+v", s)
	}
	if len(s.Shadows) != 1 || s.Shadows[0].Delta["fan"] == nil {
		t.Errorf("shadows = %+v, want the classic shadow with its delta", s.Shadows)
	}
	keys := map[string]Key{}
	for _, k := range s.Keys {
		keys[k.Key] = k
	}
	fan := keys["fan"]
	if fan.Status != "rejected" || !strings.Contains(fan.Message, "outside") || fan.Min == nil || *fan.Max != 100 || fan.Type != "number" {
		t.Errorf("fan key = %+v, want rejected with its reason and the 0–100 range", fan)
	}
	if h := keys["heater"]; h.Status != "applied" || h.LatencyMS != 1.5 || h.Hardware != true {
		t.Errorf("heater key = %+v, want applied, hardware true, 1.5 ms", h)
	}
	if len(s.Sensors) != 1 || len(s.Sensors[0].History) != 3 || s.Sensors[0].History[2][1] != 21.4 {
		t.Errorf("sensors = %+v, want temperature with its three readings", s.Sensors)
	}
	if len(s.Events) != 1 || s.Events[0].Kind != "reject" || !s.Full {
		t.Errorf("events = %+v, want the rejection alone (readings are in the history)", s.Events)
	}
}

func TestPageAndStaticFilesAreServed(t *testing.T) {
	r := newRig(t, Options{})
	res, body := r.do(t, "GET", "/", "", nil)
	if res.StatusCode != 200 || !strings.Contains(body, `<script src="/static/app.js"`) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET / = %d %q", res.StatusCode, body)
	}
	for _, p := range []string{"/static/app.js", "/static/style.css"} {
		if res, _ := r.do(t, "GET", p, "", nil); res.StatusCode != 200 {
			t.Errorf("GET %s = %d", p, res.StatusCode)
		}
	}
}

// sseReader reads Server-Sent Events frames.
type sseReader struct{ br *bufio.Reader }

type frame struct{ id, event, data string }

func (s sseReader) next() (frame, error) {
	var f frame
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return f, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if f.event != "" || f.data != "" {
				return f, nil
			}
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "id":
			f.id = v
		case "event":
			f.event = v
		case "data":
			f.data += v
		}
	}
}

// nextOf returns the next frame of the given event type.
func (s sseReader) nextOf(t *testing.T, event string) frame {
	t.Helper()
	for {
		f, err := s.next()
		if err != nil {
			t.Fatalf("reading the stream for a %q event: %v", event, err)
		}
		if f.event == event {
			return f
		}
	}
}

func TestEventStreamSendsSnapshotThenAgentEventsAndEndsWithTheClient(t *testing.T) {
	srv := New(Options{StatusEvery: 10 * time.Millisecond})
	srv.Attach(Source{Mode: "run", Agent: newFakeAgent(t)})
	handlerDone := make(chan struct{}, 1)
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/api/events" {
			handlerDone <- struct{}{}
		}
	}))
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cctx, disconnect := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(cctx, "GET", ts.URL+"/api/events", nil)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	br := bufio.NewReader(res.Body)
	first, _ := br.ReadString('\n')
	if first != "retry: 1000\n" {
		t.Errorf("first line %q, want the reconnect delay", first)
	}
	sse := sseReader{br}
	f := sse.nextOf(t, "status")
	var s Snapshot
	if err := json.Unmarshal([]byte(f.data), &s); err != nil || !s.Full || s.Thing != "sim-greenhouse" {
		t.Fatalf("first status frame %q (%v), want a full snapshot", f.data, err)
	}

	// A kind the console has never heard of (jobs are added elsewhere)
	// arrives like any other.
	srv.Publish(agent.Event{Time: time.Now(), Kind: "job_started", Message: "job 42: update firmware"})
	f = sse.nextOf(t, "agent")
	var e EventView
	if err := json.Unmarshal([]byte(f.data), &e); err != nil || e.Kind != "job_started" || e.Message != "job 42: update firmware" || f.id != "1" {
		t.Fatalf("agent frame id %q data %q (%v)", f.id, f.data, err)
	}
	// The change is followed by a (throttled) status snapshot.
	f = sse.nextOf(t, "status")
	if err := json.Unmarshal([]byte(f.data), &s); err != nil || s.Full {
		t.Errorf("follow-up status frame %q (%v), want a partial snapshot", f.data, err)
	}

	disconnect()
	select {
	case <-handlerDone:
	case <-ctx.Done():
		t.Fatal("the event handler did not end after the client went away")
	}
}

func TestEventStreamEndsWhenTheServerStops(t *testing.T) {
	srv := New(Options{})
	srv.Attach(Source{Mode: "run", Agent: newFakeAgent(t)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sseReader{bufio.NewReader(res.Body)}.nextOf(t, "status")
	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return with a stream open")
	}
	if _, err := io.ReadAll(res.Body); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("stream ended with %v", err)
	}
}

func TestWritesAreRefusedWhenReadOnly(t *testing.T) {
	r := newRig(t, Options{})
	for _, p := range []string{"/api/desired", "/api/fault"} {
		res, body := r.do(t, "POST", p, `{"key":"fan","value":50}`, nil)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "--http-write") {
			t.Errorf("POST %s read-only = %d %s, want 403 naming --http-write", p, res.StatusCode, body)
		}
	}
	select {
	case c := <-r.desired:
		t.Fatalf("a read-only console published %v", c)
	default:
	}
}

func TestDesiredIsPublishedOnlyForSameOriginJSON(t *testing.T) {
	r := newRig(t, Options{Write: true})
	res, body := r.do(t, "POST", "/api/desired", `{"key":"fan","value":42}`, map[string]string{"Origin": r.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("same-origin POST = %d %s", res.StatusCode, body)
	}
	c := <-r.desired
	if c.shadow != "" || c.patch["fan"] != json.Number("42") {
		t.Errorf("published %+v, want {fan: 42} to the classic shadow", c)
	}
	for name, tc := range map[string]struct {
		body string
		hdr  map[string]string
		code int
	}{
		"cross-site fetch": {`{"key":"fan","value":1}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		"foreign origin":   {`{"key":"fan","value":1}`, map[string]string{"Origin": "http://evil.example"}, 403},
		"form post":        {`key=fan`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415},
		"unknown key":      {`{"key":"door","value":1}`, nil, 400},
		"missing value":    {`{"key":"fan"}`, nil, 400},
		"not json":         {`{"key":`, nil, 400},
		"unknown fault":    {`{"kind":"melt","device":"fan"}`, nil, 400},
	} {
		path := "/api/desired"
		if strings.Contains(name, "fault") {
			path = "/api/fault"
		}
		res, body := r.do(t, "POST", path, tc.body, tc.hdr)
		if res.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", name, res.StatusCode, body, tc.code)
		}
	}
	select {
	case c := <-r.desired:
		t.Fatalf("a refused request published %v", c)
	default:
	}
	if res, body := r.do(t, "POST", "/api/fault", `{"kind":"i2c_nack","device":"climate"}`, nil); res.StatusCode != 200 {
		t.Fatalf("fault = %d %s", res.StatusCode, body)
	}
	if len(r.faults.done) != 1 || r.faults.done[0].Device != "climate" {
		t.Errorf("faults injected = %v", r.faults.done)
	}
	// Nested keys become nested objects, as AWS expects.
	if got := nest("lights.kitchen", true); got["lights"].(map[string]any)["kitchen"] != true {
		t.Errorf("nest = %v", got)
	}
}

// fakeListener claims a non-loopback address; Serve must refuse it before
// accepting anything.
type fakeListener struct{ addr net.Addr }

func (l fakeListener) Accept() (net.Conn, error) { return nil, errors.New("no connections here") }
func (l fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr            { return l.addr }

func TestNonLoopbackNeedsAToken(t *testing.T) {
	lan := fakeListener{&net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8750}}
	all := fakeListener{&net.TCPAddr{IP: net.IPv4zero, Port: 8750}}
	for _, ln := range []net.Listener{lan, all} {
		err := New(Options{}).Serve(context.Background(), ln)
		if !errors.Is(err, ErrTokenRequired) {
			t.Errorf("Serve on %s without a token = %v, want ErrTokenRequired", ln.Addr(), err)
		}
	}
	if err := CheckExposure(lan.Addr(), "t"); err != nil {
		t.Errorf("with a token: %v", err)
	}
	if err := CheckExposure(&net.TCPAddr{IP: net.IPv6loopback}, ""); err != nil {
		t.Errorf("[::1] without a token: %v", err)
	}
}

func TestTokenIsRequiredAndSetsACookie(t *testing.T) {
	r := newRig(t, Options{Token: secretToken})
	if res, _ := r.do(t, "GET", "/api/status", "", nil); res.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", res.StatusCode)
	}
	if res, _ := r.do(t, "GET", "/api/status", "", map[string]string{"Authorization": "Bearer wrong"}); res.StatusCode != 401 {
		t.Errorf("wrong token: %d, want 401", res.StatusCode)
	}
	if res, _ := r.do(t, "GET", "/?token=wrong", "", nil); res.StatusCode != 401 {
		t.Errorf("wrong ?token=: %d, want 401", res.StatusCode)
	}
	for _, h := range []map[string]string{{"Authorization": "Bearer " + secretToken}, {"X-Pinshadow-Token": secretToken}} {
		if res, _ := r.do(t, "GET", "/api/status", "", h); res.StatusCode != 200 {
			t.Errorf("token header %v: %d, want 200", h, res.StatusCode)
		}
	}
	// ?token= sets the cookie and redirects to the page without it.
	client := r.ts.Client()
	jar := &memJar{}
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Get(r.ts.URL + "/?token=" + secretToken)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if c := res.Cookies(); len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v, want one HttpOnly SameSite=Strict cookie", c)
	}
	res, err = client.Get(r.ts.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("with the cookie: %d, want 200", res.StatusCode)
	}
}

type memJar struct {
	mu sync.Mutex
	c  []*http.Cookie
}

func (j *memJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.c = append(j.c, cs...)
}
func (j *memJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.c
}

func TestWithoutTokenOnlyLoopbackHostNamesAreServed(t *testing.T) {
	r := newRig(t, Options{})
	for host, want := range map[string]int{"localhost:8750": 200, "127.0.0.1:8750": 200, "[::1]:8750": 200, "rebind.example:8750": 403} {
		req, _ := http.NewRequest("GET", r.ts.URL+"/api/status", nil)
		req.Host = host
		res, err := r.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, res.StatusCode, want)
		}
	}
}

func TestNoSecretInAnyResponse(t *testing.T) {
	for _, write := range []bool{false, true} {
		r := newRig(t, Options{Token: secretToken, Write: write})
		r.srv.Publish(agent.Event{Kind: agent.EventSensor, Key: "temperature", Value: 20.0, Time: time.Now()})
		auth := map[string]string{"Authorization": "Bearer " + secretToken, "Origin": r.ts.URL}
		var bodies []string
		for _, p := range []string{"/", "/static/app.js", "/static/style.css", "/api/status", "/nope"} {
			_, b := r.do(t, "GET", p, "", auth)
			bodies = append(bodies, b)
		}
		for _, p := range []string{"/api/desired", "/api/fault"} {
			_, b := r.do(t, "POST", p, `{"key":"fan","value":1,"kind":"x"}`, auth)
			bodies = append(bodies, b)
		}
		_, b := r.do(t, "GET", "/api/status", "", map[string]string{"Authorization": "Bearer wrong"})
		bodies = append(bodies, b)
		// The first frames of the stream.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", r.ts.URL+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+secretToken)
		res, err := r.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		f := sseReader{bufio.NewReader(res.Body)}.nextOf(t, "status")
		bodies = append(bodies, f.data)
		cancel()
		res.Body.Close()
		for _, b := range bodies {
			for _, s := range []string{"SECRET", secretToken} {
				if strings.Contains(b, s) {
					t.Errorf("a response contains %q:\n%s", s, b)
				}
			}
		}
	}
}

func TestListenFallsBackToAFreePortOnlyWhenAllowed(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, _, err := Listen(busy.Addr().String(), false); err == nil {
		t.Fatal("an explicit busy address was accepted")
	}
	ln, moved, err := Listen(busy.Addr().String(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if !moved || ln.Addr().String() == busy.Addr().String() {
		t.Errorf("moved=%v addr %s", moved, ln.Addr())
	}
	if u := URL(ln, ""); !strings.HasPrefix(u, "http://127.0.0.1:") {
		t.Errorf("URL = %s", u)
	}
}

func TestNotAttachedSaysStarting(t *testing.T) {
	ts := httptest.NewServer(New(Options{}).Handler())
	defer ts.Close()
	res, err := http.Get(ts.URL + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s Snapshot
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil || s.Attached || s.Connection.State != "starting" {
		t.Errorf("before Attach: %+v (%v)", s, err)
	}
}

// The recent list is a ring: the newest events, oldest first.
func TestRecentEventsKeepTheNewest(t *testing.T) {
	h := newHub(3, 2)
	for i := range 5 {
		h.publish(agent.Event{Kind: agent.EventDelta, Message: fmt.Sprint(i)})
		h.publish(agent.Event{Kind: agent.EventIteration})
		h.publish(agent.Event{Kind: agent.EventSensor, Key: "t", Value: float64(i), Time: time.UnixMilli(int64(i))})
	}
	var got []string
	for _, e := range h.events() {
		got = append(got, e.Message)
	}
	if strings.Join(got, ",") != "2,3,4" {
		t.Errorf("recent = %v, want 2,3,4", got)
	}
	if p := h.historyOf("t"); len(p) != 2 || p[0][1] != 3 || p[1][1] != 4 {
		t.Errorf("history = %v, want the last two readings", p)
	}
}
