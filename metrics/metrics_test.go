package metrics

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func expose(t *testing.T, r *Registry) (string, Samples) {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	s, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("own output does not parse: %v\n%s", err, b.String())
	}
	return b.String(), s
}

func TestExpositionExact(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("pinshadow_apply_total", "Desired values applied, by key and result.", "key", "result")
	c.With("fan", "applied").Add(2)
	c.With("fan", "rejected").Inc()
	c.With("fan", "rejected").Add(-5) // ignored: counters never go down
	g := r.Gauge("pinshadow_queue_depth", "Offline queue depth.")
	g.With().Set(3)
	g.With().Add(-1)
	h := r.Histogram("pinshadow_apply_seconds", "Delta to write.", []float64{0.01, 0.001, 0.1}, "key")
	for _, x := range []float64{0.0005, 0.001, 0.05, 3} {
		h.With(`a"b\c` + "\n").Observe(x)
	}
	r.GaugeFunc("pinshadow_up", "Always one.\nSecond line with \\.", func() float64 { return 1 })
	got, _ := expose(t, r)
	want := `# HELP pinshadow_apply_seconds Delta to write.
# TYPE pinshadow_apply_seconds histogram
pinshadow_apply_seconds_bucket{key="a\"b\\c\n",le="0.001"} 2
pinshadow_apply_seconds_bucket{key="a\"b\\c\n",le="0.01"} 2
pinshadow_apply_seconds_bucket{key="a\"b\\c\n",le="0.1"} 3
pinshadow_apply_seconds_bucket{key="a\"b\\c\n",le="+Inf"} 4
pinshadow_apply_seconds_sum{key="a\"b\\c\n"} 3.0515
pinshadow_apply_seconds_count{key="a\"b\\c\n"} 4
# HELP pinshadow_apply_total Desired values applied, by key and result.
# TYPE pinshadow_apply_total counter
pinshadow_apply_total{key="fan",result="applied"} 2
pinshadow_apply_total{key="fan",result="rejected"} 1
# HELP pinshadow_queue_depth Offline queue depth.
# TYPE pinshadow_queue_depth gauge
pinshadow_queue_depth 2
# HELP pinshadow_up Always one.\nSecond line with \\.
# TYPE pinshadow_up gauge
pinshadow_up 1
`
	if got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	head := "# HELP x_total h\n# TYPE x_total counter\n"
	hist := "# HELP h h\n# TYPE h histogram\n"
	for name, text := range map[string]string{
		"no help":            "x_total 1\n",
		"type before help":   "# TYPE x_total counter\n# HELP x_total h\nx_total 1\n",
		"bad value":          head + "x_total one\n",
		"two spaces":         head + "x_total  1\n",
		"negative counter":   head + "x_total -1\n",
		"duplicate series":   head + "x_total 1\nx_total 2\n",
		"foreign sample":     head + "y_total 1\n",
		"bad label name":     head + "x_total{1a=\"b\"} 1\n",
		"unterminated":       head + "x_total{a=\"b} 1\n",
		"bad escape":         head + "x_total{a=\"\\t\"} 1\n",
		"duplicate label":    head + "x_total{a=\"1\",a=\"2\"} 1\n",
		"unknown type":       "# HELP x h\n# TYPE x summary2\nx 1\n",
		"buckets decrease":   hist + "h_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
		"count mismatch":     hist + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
		"count without +Inf": hist + "h_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
		"bucket without le":  hist + "h_bucket 2\n",
		"empty line":         head + "\nx_total 1\n",
		"other comment":      "# hello\n",
	} {
		if _, err := Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%s: Parse accepted\n%s", name, text)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"bad name":      func(r *Registry) { r.Counter("1x", "h") },
		"bad label":     func(r *Registry) { r.Counter("x", "h", "a-b") },
		"reserved":      func(r *Registry) { r.Counter("x", "h", "__a") },
		"le":            func(r *Registry) { r.Histogram("x", "h", []float64{1}, "le") },
		"twice":         func(r *Registry) { r.Counter("x", "h"); r.Gauge("x", "h") },
		"dup bucket":    func(r *Registry) { r.Histogram("x", "h", []float64{1, 1}) },
		"label count":   func(r *Registry) { r.Counter("x", "h", "a").With() },
		"inf bucket":    func(r *Registry) { r.Histogram("x", "h", []float64{math.Inf(1)}) },
		"dup labelname": func(r *Registry) { r.Gauge("x", "h", "a", "a") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(NewRegistry())
		}()
	}
}

// Concurrent updates and scrapes: every scrape parses, and the totals come
// out exact.
func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("c_total", "h", "k")
	h := r.Histogram("h_seconds", "h", LatencyBuckets(), "k")
	RegisterProcess(r)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := string(rune('a' + i%2))
			for range 1000 {
				c.With(k).Inc()
				h.With(k).Observe(0.002)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for scraping := true; scraping; {
		select {
		case <-done:
			scraping = false
		default:
		}
		expose(t, r)
	}
	_, s := expose(t, r)
	if v, _ := s.Get(`c_total{k="a"}`); v != 2000 {
		t.Errorf("c_total{k=a} = %v, want 2000", v)
	}
	if v, _ := s.Get(`h_seconds_count{k="b"}`); v != 2000 {
		t.Errorf("h_seconds_count{k=b} = %v, want 2000", v)
	}
	if v, _ := s.Get(`h_seconds_bucket{k="b",le="0.001"}`); v != 0 {
		t.Errorf("bucket 0.001 = %v, want 0", v)
	}
	if v, _ := s.Get(`h_seconds_bucket{k="b",le="0.0025"}`); v != 2000 {
		t.Errorf("bucket 0.0025 = %v, want 2000", v)
	}
	if v, _ := s.Get("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	if v, _ := s.Get("process_resident_memory_bytes"); v <= 0 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}
	if v, ok := s.Get("process_cpu_seconds_total"); !ok || v < 0 {
		t.Errorf("process_cpu_seconds_total = %v", v)
	}
}

func TestServe(t *testing.T) {
	r := NewRegistry()
	r.Counter("served_total", "h").With().Inc()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Serve(ctx, ln) }()
	cl := &http.Client{Timeout: 5 * time.Second}
	res, err := cl.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	s, err := Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("served_total"); v != 1 {
		t.Errorf("served_total = %v", v)
	}
	res, err = cl.Post("http://"+ln.Addr().String()+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	cl.CloseIdleConnections()
}
