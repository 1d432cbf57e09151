package metrics

import (
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Runtime samples read for the process metrics (runtime/metrics names).
const (
	rmGoroutines = "/sched/goroutines:goroutines"
	rmHeapObj    = "/memory/classes/heap/objects:bytes"
	rmTotal      = "/memory/classes/total:bytes"
	rmGCCycles   = "/gc/cycles/total:gc-cycles"
)

// ReadRuntime returns the Go runtime's goroutine count, live heap bytes
// (objects) and the memory mapped by the runtime in total.
func ReadRuntime() (goroutines, heapBytes, totalBytes, gcCycles uint64) {
	s := []metrics.Sample{{Name: rmGoroutines}, {Name: rmHeapObj}, {Name: rmTotal}, {Name: rmGCCycles}}
	metrics.Read(s)
	u := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return u(0), u(1), u(2), u(3)
}

// RSS is the process's resident set size in bytes from /proc/self/statm
// (0 where there is no /proc).
func RSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// RegisterProcess adds the process basics: go_goroutines,
// go_memstats_heap_alloc_bytes (live heap objects), go_memory_total_bytes
// (all memory the runtime mapped), go_gc_cycles_total,
// process_resident_memory_bytes, process_cpu_seconds_total (user+system,
// getrusage) and process_start_time_seconds.
func RegisterProcess(r *Registry) {
	start := float64(time.Now().UnixNano()) / 1e9
	r.GaugeFunc("go_goroutines", "Number of goroutines that currently exist.", func() float64 {
		g, _, _, _ := ReadRuntime()
		return float64(g)
	})
	r.GaugeFunc("go_memstats_heap_alloc_bytes", "Bytes of live and not yet swept heap objects.", func() float64 {
		_, h, _, _ := ReadRuntime()
		return float64(h)
	})
	r.GaugeFunc("go_memory_total_bytes", "All memory mapped by the Go runtime.", func() float64 {
		_, _, t, _ := ReadRuntime()
		return float64(t)
	})
	r.CounterFunc("go_gc_cycles_total", "Completed garbage collection cycles.", func() float64 {
		_, _, _, c := ReadRuntime()
		return float64(c)
	})
	r.GaugeFunc("process_resident_memory_bytes", "Resident memory size in bytes.", func() float64 { return float64(RSS()) })
	r.CounterFunc("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", func() float64 {
		return CPUTime().Seconds()
	})
	r.GaugeFunc("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", func() float64 { return start })
}
