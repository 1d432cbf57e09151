package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lcjobs "github.com/pinshadow/pinshadow/localcloud/jobs"
)

// Manager is the cloud side of jobs on the local cloud (package
// localcloud): it creates, lists, describes and cancels jobs through the
// local cloud's management API (MQTT request/response on
// $pinshadow/jobs/<op>), so it works with the embedded broker and in
// attach mode alike. AWS's own control plane is HTTPS and not covered.
// Rejections are *RejectedError with Op "create", "list", "describe",
// "cancel" or "remove" and Thing "" (errors.Is: ErrResourceNotFound,
// ErrAlreadyExists, ErrInvalidRequest, ErrInvalidStateTransition, …).
type Manager struct {
	conn      Conn
	timeout   time.Duration
	tokenBase string
	seq       atomic.Uint64
	filter    string

	mu      sync.Mutex
	closed  bool
	pending map[string]chan managerReply
}

type managerReply struct {
	rejected bool
	raw      []byte
}

// Types of the management API, from the local cloud's Jobs service.
type (
	// CreateRequest creates a job for one or more things.
	CreateRequest = lcjobs.CreateRequest
	// TimeoutConfig is a job's in-progress timeout.
	TimeoutConfig = lcjobs.TimeoutConfig
	// ListRequest lists jobs, or a thing's executions.
	ListRequest = lcjobs.ListRequest
	// DescribeRequest describes a job or one execution.
	DescribeRequest = lcjobs.DescribeRequest
	// CancelRequest cancels (or removes) a job or one execution.
	CancelRequest = lcjobs.CancelRequest
	// JobInfo describes a job.
	JobInfo = lcjobs.JobInfo
	// ExecutionInfo describes one execution.
	ExecutionInfo = lcjobs.ExecutionInfo
	// ManagementReply is a management API reply.
	ManagementReply = lcjobs.Reply
)

// NewManager subscribes to the management replies on conn (bounded by
// ctx). timeout bounds each request (0 = 10 s).
func NewManager(ctx context.Context, conn Conn, timeout time.Duration) (*Manager, error) {
	if conn == nil {
		return nil, errors.New("jobs: nil connection")
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("jobs: client token seed: %w", err)
	}
	m := &Manager{conn: conn, timeout: timeout, tokenBase: hex.EncodeToString(rnd[:]),
		filter: lcjobs.ManagementPrefix + "+/+", pending: map[string]chan managerReply{}}
	if err := conn.Subscribe(ctx, []string{m.filter}, 1, m.onMessage); err != nil {
		return nil, fmt.Errorf("jobs: subscribe %s: %w", m.filter, err)
	}
	return m, nil
}

// Close fails waiting requests with ErrClosed and unsubscribes.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for tok, ch := range m.pending {
		close(ch)
		delete(m.pending, tok)
	}
	m.mu.Unlock()
	return m.conn.Unsubscribe(ctx, m.filter)
}

func (m *Manager) onMessage(topic string, payload []byte) {
	rest, ok := strings.CutPrefix(topic, lcjobs.ManagementPrefix)
	if !ok {
		return
	}
	_, kind, ok := strings.Cut(rest, "/")
	if !ok || (kind != kindAccepted && kind != kindRejected) {
		return
	}
	var r struct {
		ClientToken string `json:"clientToken"`
	}
	if json.Unmarshal(payload, &r) != nil || r.ClientToken == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch := m.pending[r.ClientToken]; ch != nil {
		delete(m.pending, r.ClientToken)
		ch <- managerReply{rejected: kind == kindRejected, raw: payload}
	}
}

// Create creates a job (CreateJob); r.ClientToken is set by the Manager.
func (m *Manager) Create(ctx context.Context, r CreateRequest) (*JobInfo, error) {
	rep, err := m.do(ctx, lcjobs.OpCreate, r.JobID, func(tok string) any { r.ClientToken = tok; return r })
	if err != nil {
		return nil, err
	}
	return rep.Job, nil
}

// List lists jobs (r.ThingName empty) or a thing's executions.
func (m *Manager) List(ctx context.Context, r ListRequest) (*ManagementReply, error) {
	return m.do(ctx, lcjobs.OpList, "", func(tok string) any { r.ClientToken = tok; return r })
}

// Describe describes a job, or its execution on r.ThingName.
func (m *Manager) Describe(ctx context.Context, r DescribeRequest) (*ManagementReply, error) {
	return m.do(ctx, lcjobs.OpDescribe, r.JobID, func(tok string) any { r.ClientToken = tok; return r })
}

// Cancel cancels a job (CancelJob) or, with r.ThingName, one execution
// (CancelJobExecution); r.Force also stops IN_PROGRESS executions.
func (m *Manager) Cancel(ctx context.Context, r CancelRequest) (*ManagementReply, error) {
	return m.do(ctx, lcjobs.OpCancel, r.JobID, func(tok string) any { r.ClientToken = tok; return r })
}

// Remove makes the job's execution on r.ThingName REMOVED (as when a
// thing leaves a job's target group); r.Force also for IN_PROGRESS.
func (m *Manager) Remove(ctx context.Context, r CancelRequest) (*ManagementReply, error) {
	return m.do(ctx, lcjobs.OpRemove, r.JobID, func(tok string) any { r.ClientToken = tok; return r })
}

func (m *Manager) do(ctx context.Context, op, jobID string, body func(token string) any) (*ManagementReply, error) {
	token := "pm-" + m.tokenBase + "-" + strconv.FormatUint(m.seq.Add(1), 36)
	payload, err := json.Marshal(body(token))
	if err != nil {
		return nil, fmt.Errorf("jobs: %s: encode request: %w", op, err)
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	ch := make(chan managerReply, 1)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.pending[token] = ch
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, token)
		m.mu.Unlock()
	}()
	if err := m.conn.Publish(ctx, lcjobs.ManagementPrefix+op, 1, payload); err != nil {
		return nil, fmt.Errorf("jobs: %s: publish: %w", op, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		var rep ManagementReply
		if err := json.Unmarshal(r.raw, &rep); err != nil {
			return nil, fmt.Errorf("jobs: %s: malformed reply %q: %w", op, r.raw, err)
		}
		if r.rejected {
			return nil, &RejectedError{Op: op, JobID: jobID, Code: rep.Code, Message: rep.Message, ClientToken: token, Timestamp: time.Unix(rep.Timestamp, 0)}
		}
		return &rep, nil
	case <-ctx.Done():
		return nil, &TimeoutError{Op: op, JobID: jobID, ClientToken: token, After: time.Since(start), Cause: parent.Err()}
	}
}
