package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/agent"
	"github.com/pinshadow/pinshadow/agent/jobrun"
)

func TestStatusShowsJobs(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	st := agent.Status{Thing: "pi", Now: now, Running: true, Jobs: &jobrun.Snapshot{
		Running: &jobrun.JobStatus{JobID: "fw-2", Type: "download-file", Since: now.Add(-3 * time.Second), Details: jobrun.Details{"phase": "downloading"}},
		Last:    &jobrun.JobStatus{JobID: "fw-1", Type: "download-file", Status: jobrun.Failed, Since: now.Add(-time.Minute), Details: jobrun.Details{"reason": "sha256 mismatch"}},
		Unsent:  1,
	}}
	var b bytes.Buffer
	printStatus(&b, st)
	want := "jobs           running fw-2 (download-file) since 3s ago, downloading; last fw-1 (download-file) FAILED 1m0s ago: sha256 mismatch; 1 status(es) not yet accepted"
	if !strings.Contains(b.String(), want) {
		t.Errorf("status output:\n%s\nwant a line\n%s", b.String(), want)
	}
	st.Jobs = nil
	b.Reset()
	printStatus(&b, st)
	if strings.Contains(b.String(), "jobs") {
		t.Errorf("jobs line without a jobs: section:\n%s", b.String())
	}
}
