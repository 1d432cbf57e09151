package localcloud

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/localcloud/shadow"
)

// Messages for requests refused before the engine sees them. AWS documents
// only the code for throttling; these texts are the emulator's.
const (
	msgRateExceeded     = "Rate exceeded: more than %g requests per second for thing '%s'"
	msgTooManyInFlight  = "Too many in-flight requests: more than %d on a single connection"
	msgInternalFailure  = "Internal service failure"
	shardQueueDepth     = 256
	maxCommitBatch      = 8192
	publishBatchBacklog = 4
	commitInterval      = 2 * time.Millisecond
	slowCommit          = 100 * time.Millisecond
	slowCommitReport    = 10 * time.Second
)

// publisher sends one response message to the broker at QoS 1.
type publisher interface {
	publish(ctx context.Context, topic string, payload []byte) error
}

// request is one shadow request on its way to a shard worker.
type request struct {
	key     shadow.Key
	op      shadow.Op
	payload []byte
	conn    string // in-flight accounting key; "" = not counted
	reject  int    // 429 when refused at ingress
	msg     string
	at      time.Time // arrival (metrics)
}

// outcome is a handled request on its way to storage and the broker.
type outcome struct {
	key   shadow.Key
	req   request
	write bool   // persist data (nil data = delete the key)
	data  []byte // MarshalBinary of the next shadow
	msgs  []shadow.Message
	code  int // 0 accepted, else the code on the rejected topic
}

// service is the shadow service between a broker and the engine: ingress
// with limits, shard workers that own the shadows, and — with a store — a
// committer that group-commits and a publisher that sends responses in
// commit order.
type service struct {
	engine   *shadow.Engine
	log      *slog.Logger
	opts     *Options
	rate     *rateLimiter // nil = off
	inflight *inFlight    // nil = off
	store    *store       // nil = memory only
	pub      publisher    // set before start
	jobs     *jobsService // takes the Jobs topics; nil = none

	shards []*shard

	// ingress: closed is set (under the write lock) once the service
	// stops taking requests; submitters hold the read lock while queueing.
	ingress sync.RWMutex
	closed  bool

	commitCh  chan *outcome
	publishCh chan []*outcome

	ctx     context.Context // cancelled when the service must stop publishing
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
}

type shard struct {
	in    chan request
	state map[shadow.Key]*shadow.Shadow
}

func newService(opts *Options, st *store) *service {
	s := &service{
		engine: shadow.New(opts.Engine),
		log:    opts.Logger,
		opts:   opts,
		store:  st,
		failed: make(chan struct{}),
	}
	if opts.RatePerThing > 0 {
		s.rate = newRateLimiter(opts.RatePerThing, opts.RateBurst)
	}
	if opts.MaxInFlight > 0 {
		s.inflight = newInFlight(opts.MaxInFlight)
	}
	s.shards = make([]*shard, opts.Shards)
	for i := range s.shards {
		s.shards[i] = &shard{in: make(chan request, shardQueueDepth), state: map[shadow.Key]*shadow.Shadow{}}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func (s *service) shardOf(k shadow.Key) *shard {
	// FNV-1a over thing, a separator and name, without allocating.
	h := uint32(2166136261)
	for i := 0; i < len(k.Thing); i++ {
		h = (h ^ uint32(k.Thing[i])) * 16777619
	}
	h = (h ^ '/') * 16777619
	for i := 0; i < len(k.Name); i++ {
		h = (h ^ uint32(k.Name[i])) * 16777619
	}
	return s.shards[h%uint32(len(s.shards))]
}

// load fills the shards from the store before start.
func (s *service) load() (int, error) {
	if s.store == nil {
		return 0, nil
	}
	n := 0
	err := s.store.load(func(k shadow.Key, sh *shadow.Shadow) {
		s.shardOf(k).state[k] = sh
		n++
	})
	return n, err
}

// start runs the workers (and committer and publisher with a store).
func (s *service) start() {
	s.started = true
	if s.store != nil {
		s.commitCh = make(chan *outcome, len(s.shards)*shardQueueDepth)
		s.publishCh = make(chan []*outcome, publishBatchBacklog)
		s.wg.Add(2)
		go s.committer()
		go s.publisher()
	}
	var workers sync.WaitGroup
	for _, sh := range s.shards {
		workers.Add(1)
		go func() {
			defer workers.Done()
			s.worker(sh)
		}()
	}
	// Close the commit queue once every worker has drained its shard.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		workers.Wait()
		if s.commitCh != nil {
			close(s.commitCh)
		}
	}()
}

// stop refuses new requests, lets queued ones finish (stored and answered)
// and waits for every goroutine of the service.
func (s *service) stop() {
	s.ingress.Lock()
	wasClosed := s.closed
	s.closed = true
	s.ingress.Unlock()
	if wasClosed {
		return
	}
	for _, sh := range s.shards {
		close(sh.in)
	}
	if !s.started {
		s.start() // drain nothing, but keep one shutdown path
	}
	s.wg.Wait()
	s.cancel()
}

// fail records a fatal error (storage) once; the server stops.
func (s *service) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// submit takes one publish on a request topic. It is called on the
// publishing client's goroutine (embedded) or the MQTT client's router
// (attach), in the order the requests arrived; conn identifies the
// connection ("" when unknown). Requests for topics that are not shadow
// requests are ignored, as AWS does.
func (s *service) submit(topic string, payload []byte, conn string) {
	if s.jobs != nil && isJobsTopic(topic) {
		s.jobs.submit(topic, payload)
		return
	}
	k, op, ok := shadow.ParseTopic(topic)
	if !ok {
		return
	}
	if conn == "" {
		conn = "thing:" + k.Thing
	}
	req := request{key: k, op: op, payload: payload}
	m := s.opts.Metrics
	if m != nil {
		req.at = time.Now()
	}
	switch {
	case s.inflight != nil && !s.inflight.acquire(conn):
		req.reject, req.msg = 429, fmt.Sprintf(msgTooManyInFlight, s.opts.MaxInFlight)
		m.throttle("in_flight")
	default:
		if s.inflight != nil {
			req.conn = conn
		}
		if s.rate != nil && !s.rate.allow(k.Thing, s.opts.Now()) {
			req.reject, req.msg = 429, fmt.Sprintf(msgRateExceeded, s.opts.RatePerThing, k.Thing)
			m.throttle("rate")
		}
	}
	s.ingress.RLock()
	if s.closed {
		s.ingress.RUnlock()
		if req.conn != "" {
			s.inflight.release(req.conn)
		}
		return
	}
	m.received()
	s.shardOf(k).in <- req
	s.ingress.RUnlock()
	if h := s.opts.hooks.submitted; h != nil {
		h(k, op)
	}
}

func (s *service) worker(sh *shard) {
	for req := range sh.in {
		o := s.handle(sh, req)
		if s.store != nil {
			s.commitCh <- o
			continue
		}
		s.publishOutcome(o)
	}
}

// handle runs one request through the engine and updates the shard's
// state. A panic in the engine answers 500 and keeps the service running.
func (s *service) handle(sh *shard, req request) (o *outcome) {
	o = &outcome{key: req.key, req: req}
	if req.reject != 0 {
		o.msgs, o.code = s.engine.Reject(req.key, req.op, req.payload, req.reject, req.msg).Messages, req.reject
		return o
	}
	if h := s.opts.hooks.beforeHandle; h != nil {
		h(req.key, req.op)
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("shadow engine panicked; answered 500", "shadow", req.key.String(), "op", req.op, "panic", r, "payload", string(req.payload))
			o = &outcome{key: req.key, req: req, code: 500, msgs: s.engine.Reject(req.key, req.op, req.payload, 500, msgInternalFailure).Messages}
		}
	}()
	cur := sh.state[req.key]
	res := s.engine.Handle(req.key, req.op, cur, req.payload, s.opts.Now())
	if res.Changed {
		if res.Next != nil && s.store != nil {
			data, err := res.Next.MarshalBinary()
			if err != nil {
				s.log.Error("encode shadow; answered 500", "shadow", req.key.String(), "error", err)
				o.msgs, o.code = s.engine.Reject(req.key, req.op, req.payload, 500, msgInternalFailure).Messages, 500
				return o
			}
			o.data = data
		}
		o.write = true
		if res.Next == nil {
			delete(sh.state, req.key)
		} else {
			sh.state[req.key] = res.Next
		}
	}
	o.msgs, o.code = res.Messages, res.Code
	s.log.Debug("shadow request", "shadow", req.key.String(), "op", req.op, "code", res.Code)
	return o
}

// publishOutcome sends o's messages in order and ends its in-flight count.
func (s *service) publishOutcome(o *outcome) {
	for _, m := range o.msgs {
		if err := s.pub.publish(s.ctx, m.Topic, m.Payload); err != nil {
			s.log.Warn("publish response", "topic", m.Topic, "error", err)
		}
	}
	if o.req.conn != "" {
		s.inflight.release(o.req.conn)
	}
	s.opts.Metrics.answered(o.req.op, o.code, o.req.at)
}

// committer group-commits: it takes everything queued, writes all changed
// shadows in one transaction, and passes the batch on to be published only
// after the commit, so an /accepted is never sent for an update that is not
// on disk.
func (s *service) committer() {
	defer s.wg.Done()
	defer close(s.publishCh)
	var last, lastSlowReport time.Time
	var slow int
	var slowest time.Duration
	pace := time.NewTimer(0)
	defer pace.Stop()
	for first := range s.commitCh {
		// Pace commits: at most one per commitInterval, so that under load
		// each fsync carries a batch instead of one or two updates (every
		// commit rewrites at least three pages).
		if wait := commitInterval - time.Since(last); wait > 0 {
			pace.Reset(wait)
			<-pace.C
		}
		last = time.Now()
		batch := []*outcome{first}
	drain:
		for len(batch) < maxCommitBatch {
			select {
			case o, ok := <-s.commitCh:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		t0 := time.Now()
		err := s.store.write(batch)
		if d := time.Since(t0); d > slowCommit {
			// At most one warning per slowCommitReport, with a count.
			slow++
			slowest = max(slowest, d)
			if time.Since(lastSlowReport) > slowCommitReport {
				s.log.Warn("slow shadow database commits (is the disk busy?)", "count", slow, "slowest", slowest.Round(time.Millisecond), "file", s.store.path)
				slow, slowest, lastSlowReport = 0, 0, time.Now()
			}
		}
		if err != nil {
			// The in-memory state is now ahead of the disk: answer 500 and
			// stop the server rather than serve state that may be lost.
			s.log.Error("storing shadows failed; stopping", "error", err)
			s.fail(fmt.Errorf("store shadows in %s: %w", s.store.path, err))
			for _, o := range batch {
				if o.write {
					o.msgs, o.code = s.engine.Reject(o.key, o.req.op, o.req.payload, 500, msgInternalFailure).Messages, 500
				}
			}
		}
		s.publishCh <- batch
	}
}

func (s *service) publisher() {
	defer s.wg.Done()
	for batch := range s.publishCh {
		for _, o := range batch {
			s.publishOutcome(o)
		}
	}
}
