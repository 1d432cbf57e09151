// Package metrics is a small Prometheus registry: counters, gauges and
// histograms with fixed label names, written in the Prometheus text
// exposition format 0.0.4. It exists instead of the prometheus client
// library because the agent needs a handful of series, no dependencies and
// no package-level registry.
//
// Label values must come from a bounded set (configuration keys, result
// kinds, operation names): never label by a value, a client id or a time.
package metrics

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Kind is a metric family's Prometheus type.
type Kind string

// Family kinds.
const (
	KindCounter   Kind = "counter"
	KindGauge     Kind = "gauge"
	KindHistogram Kind = "histogram"
)

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Registry holds metric families and writes them out. The zero value is not
// usable; create one with NewRegistry. All methods are safe for concurrent
// use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*family
	before   []func()
}

// BeforeWrite adds f to what runs at the start of every WriteText, to set
// gauges from a snapshot taken once per scrape (a status with several
// fields, a state label). f must be fast and safe for concurrent use.
func (r *Registry) BeforeWrite(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.before = append(r.before, f)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{families: map[string]*family{}} }

// family is one metric name with its help, type and series.
type family struct {
	name    string
	help    string
	kind    Kind
	labels  []string
	buckets []float64 // histograms: upper bounds, ascending, without +Inf

	mu     sync.Mutex
	series map[string]*series // by joined label values
	fn     func() float64     // *Func families: the value, read at write time
}

// series is one set of label values: a value (counter, gauge) or buckets.
type series struct {
	values []string
	bits   atomic.Uint64   // float64 bits of a counter or gauge, or a histogram's sum
	count  atomic.Uint64   // histograms: observations
	counts []atomic.Uint64 // histograms: per bucket (not cumulative)
}

func (s *series) add(d float64) {
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (s *series) value() float64 { return math.Float64frombits(s.bits.Load()) }

// register adds a family or panics: names are fixed at build time, so a bad
// or duplicate one is a programming error.
func (r *Registry) register(f *family) *family {
	if !nameRE.MatchString(f.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", f.name))
	}
	seen := map[string]bool{}
	for _, l := range f.labels {
		if !labelRE.MatchString(l) || strings.HasPrefix(l, "__") || seen[l] || (f.kind == KindHistogram && l == "le") {
			panic(fmt.Sprintf("metrics: %s: invalid or duplicate label name %q", f.name, l))
		}
		seen[l] = true
	}
	f.series = map[string]*series{}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.families[f.name]; dup {
		panic(fmt.Sprintf("metrics: %s registered twice", f.name))
	}
	r.families[f.name] = f
	return f
}

func (f *family) with(values []string) *series {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%v), got %d", f.name, len(f.labels), f.labels, len(values)))
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[key]
	if !ok {
		s = &series{values: append([]string(nil), values...)}
		if f.kind == KindHistogram {
			s.counts = make([]atomic.Uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// CounterVec is a counter family; With picks one series.
type CounterVec struct{ f *family }

// Counter is a value that only goes up.
type Counter struct{ s *series }

// Counter registers a counter family. By convention its name ends in
// _total.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.register(&family{name: name, help: help, kind: KindCounter, labels: labels})}
}

// With returns the series for these label values (in the order the labels
// were registered), creating it at zero.
func (v *CounterVec) With(values ...string) Counter { return Counter{v.f.with(values)} }

// Inc adds one.
func (c Counter) Inc() { c.s.add(1) }

// Add adds d; a negative d is ignored (a counter never goes down).
func (c Counter) Add(d float64) {
	if d > 0 {
		c.s.add(d)
	}
}

// Value is the counter's current value.
func (c Counter) Value() float64 { return c.s.value() }

// GaugeVec is a gauge family; With picks one series.
type GaugeVec struct{ f *family }

// Gauge is a value that goes up and down.
type Gauge struct{ s *series }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.register(&family{name: name, help: help, kind: KindGauge, labels: labels})}
}

// With returns the series for these label values, creating it at zero.
func (v *GaugeVec) With(values ...string) Gauge { return Gauge{v.f.with(values)} }

// Set sets the gauge.
func (g Gauge) Set(x float64) { g.s.bits.Store(math.Float64bits(x)) }

// Add adds d (negative to subtract).
func (g Gauge) Add(d float64) { g.s.add(d) }

// Value is the gauge's current value.
func (g Gauge) Value() float64 { return g.s.value() }

// GaugeFunc registers an unlabelled gauge whose value f returns when the
// registry is written (f must be fast and safe for concurrent use).
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.register(&family{name: name, help: help, kind: KindGauge, fn: f})
}

// CounterFunc registers an unlabelled counter read from f when the registry
// is written (for counters kept elsewhere, such as a connection's).
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	r.register(&family{name: name, help: help, kind: KindCounter, fn: f})
}

// HistogramVec is a histogram family; With picks one series.
type HistogramVec struct{ f *family }

// Histogram counts observations into buckets.
type Histogram struct {
	s       *series
	buckets []float64
}

// Histogram registers a histogram family with these bucket upper bounds
// (sorted here; +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	b := append([]float64(nil), buckets...)
	sort.Float64s(b)
	for i, x := range b {
		if math.IsNaN(x) || math.IsInf(x, 0) || (i > 0 && x == b[i-1]) {
			panic(fmt.Sprintf("metrics: %s: invalid or duplicate bucket %v", name, x))
		}
	}
	return &HistogramVec{r.register(&family{name: name, help: help, kind: KindHistogram, labels: labels, buckets: b})}
}

// With returns the series for these label values, creating it empty.
func (v *HistogramVec) With(values ...string) Histogram {
	return Histogram{s: v.f.with(values), buckets: v.f.buckets}
}

// Observe records one value.
func (h Histogram) Observe(x float64) {
	i := sort.SearchFloat64s(h.buckets, x) // first bound ≥ x; len = +Inf
	h.s.counts[i].Add(1)
	h.s.add(x)
	h.s.count.Add(1)
}

// Count is how many values were observed.
func (h Histogram) Count() uint64 { return h.s.count.Load() }

// LatencyBuckets returns bucket bounds in seconds from 0.5 ms to 10 s, for
// request and apply latencies.
func LatencyBuckets() []float64 {
	return []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
}
