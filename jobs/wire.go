package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// The wire forms of the Jobs messages. Numbers and timestamps stay raw so
// that both JSON numbers (AWS) and strings (the v1 Python SDK) parse.

type wireExecution struct {
	JobID                            string            `json:"jobId"`
	ThingName                        string            `json:"thingName"`
	Status                           Status            `json:"status"`
	StatusDetails                    map[string]string `json:"statusDetails"`
	QueuedAt                         json.RawMessage   `json:"queuedAt"`
	StartedAt                        json.RawMessage   `json:"startedAt"`
	LastUpdatedAt                    json.RawMessage   `json:"lastUpdatedAt"`
	VersionNumber                    json.RawMessage   `json:"versionNumber"`
	ExecutionNumber                  json.RawMessage   `json:"executionNumber"`
	ApproximateSecondsBeforeTimedOut json.RawMessage   `json:"approximateSecondsBeforeTimedOut"`
	JobDocument                      json.RawMessage   `json:"jobDocument"`
}

type wireState struct {
	Status        Status            `json:"status"`
	StatusDetails map[string]string `json:"statusDetails"`
	VersionNumber json.RawMessage   `json:"versionNumber"`
}

type wireSummary struct {
	JobID           string          `json:"jobId"`
	QueuedAt        json.RawMessage `json:"queuedAt"`
	StartedAt       json.RawMessage `json:"startedAt"`
	LastUpdatedAt   json.RawMessage `json:"lastUpdatedAt"`
	VersionNumber   json.RawMessage `json:"versionNumber"`
	ExecutionNumber json.RawMessage `json:"executionNumber"`
}

// wireReply is every reply and notification: the fields present depend on
// the topic.
type wireReply struct {
	ClientToken    string          `json:"clientToken"`
	Timestamp      json.RawMessage `json:"timestamp"`
	Execution      *wireExecution  `json:"execution"`
	ExecutionState *wireState      `json:"executionState"`
	JobDocument    json.RawMessage `json:"jobDocument"`
	InProgressJobs []wireSummary   `json:"inProgressJobs"`
	QueuedJobs     []wireSummary   `json:"queuedJobs"`
	Jobs           struct {
		InProgress []wireSummary `json:"IN_PROGRESS"`
		Queued     []wireSummary `json:"QUEUED"`
	} `json:"jobs"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fieldErr collects the first conversion error with the field's name.
type fieldErr struct{ err error }

func (f *fieldErr) num(name string, raw json.RawMessage) int64 {
	n, err := number(raw)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s: %w", name, err)
	}
	return n
}

func (f *fieldErr) time(name string, raw json.RawMessage) time.Time {
	t, err := epoch(raw)
	if err != nil && f.err == nil {
		f.err = fmt.Errorf("%s: %w", name, err)
	}
	return t
}

func (w *wireExecution) convert(f *fieldErr) *JobExecution {
	if w == nil {
		return nil
	}
	e := &JobExecution{
		JobID: w.JobID, ThingName: w.ThingName, Status: w.Status, StatusDetails: w.StatusDetails,
		QueuedAt:                         f.time("queuedAt", w.QueuedAt),
		StartedAt:                        f.time("startedAt", w.StartedAt),
		LastUpdatedAt:                    f.time("lastUpdatedAt", w.LastUpdatedAt),
		VersionNumber:                    f.num("versionNumber", w.VersionNumber),
		ExecutionNumber:                  f.num("executionNumber", w.ExecutionNumber),
		ApproximateSecondsBeforeTimedOut: f.num("approximateSecondsBeforeTimedOut", w.ApproximateSecondsBeforeTimedOut),
	}
	if len(w.JobDocument) > 0 && string(w.JobDocument) != "null" {
		e.JobDocument = w.JobDocument
	}
	return e
}

func (w *wireState) convert(f *fieldErr) *JobExecutionState {
	if w == nil {
		return nil
	}
	return &JobExecutionState{Status: w.Status, StatusDetails: w.StatusDetails, VersionNumber: f.num("versionNumber", w.VersionNumber)}
}

func convertSummaries(ws []wireSummary, f *fieldErr) []JobExecutionSummary {
	out := make([]JobExecutionSummary, 0, len(ws))
	for _, w := range ws {
		out = append(out, JobExecutionSummary{
			JobID:           w.JobID,
			QueuedAt:        f.time("queuedAt", w.QueuedAt),
			StartedAt:       f.time("startedAt", w.StartedAt),
			LastUpdatedAt:   f.time("lastUpdatedAt", w.LastUpdatedAt),
			VersionNumber:   f.num("versionNumber", w.VersionNumber),
			ExecutionNumber: f.num("executionNumber", w.ExecutionNumber),
		})
	}
	return out
}

// decodeReply parses one message of the Jobs service.
func decodeReply(payload []byte) (*wireReply, error) {
	var r wireReply
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
