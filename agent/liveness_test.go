package agent

import (
	"strings"
	"testing"
)

// The loop's beat keeps the clock's monotonic reading, so Alive (the
// systemd watchdog's signal) measures the loop's silence on monotonic time
// and a stepped wall clock cannot make a stuck loop look alive. (The
// fault suite's TestFaultClockJumps checks the behaviour end to end.)
func TestBeatKeepsMonotonicReading(t *testing.T) {
	a := &Agent{clock: realClock{}}
	r := &runner{a: a}
	r.beat()
	if s := a.LastBeat().String(); !strings.Contains(s, " m=") {
		t.Fatalf("LastBeat %s has no monotonic reading: liveness would follow wall-clock steps", s)
	}
}
