package localcloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/pinshadow/pinshadow/localcloud/jobs"
)

// DefaultJobsTick is how often the Jobs service checks step and
// in-progress timeouts (Options.JobsTick).
const DefaultJobsTick = time.Second

// jobsQueueDepth bounds the requests waiting for the Jobs worker.
const jobsQueueDepth = 256

// jobsBucket holds one record per job (with its executions) in the shadow
// database.
var jobsBucket = []byte("jobs")

// jobsService runs the Jobs engine on one goroutine: requests, timer
// ticks, storage (before any reply) and publishing, in that order. Jobs
// traffic is small next to shadow traffic, and a job spans things, so one
// worker keeps it simple.
type jobsService struct {
	engine *jobs.Engine
	opts   *Options
	store  *store // nil = memory only
	pub    publisher
	fail   func(error)

	ingress sync.RWMutex
	closed  bool
	in      chan jobsRequest
	done    chan struct{}
	started bool
}

type jobsRequest struct {
	topic   string
	payload []byte
}

func newJobsService(opts *Options, st *store, fail func(error)) *jobsService {
	return &jobsService{
		engine: jobs.New(opts.Jobs), opts: opts, store: st, fail: fail,
		in: make(chan jobsRequest, jobsQueueDepth), done: make(chan struct{}),
	}
}

// isJobsTopic reports whether topic belongs to the Jobs service.
func isJobsTopic(topic string) bool {
	return strings.HasPrefix(topic, jobs.ManagementPrefix) ||
		strings.HasPrefix(topic, "$aws/things/") && strings.Contains(topic, "/jobs/")
}

// load reads the stored jobs before start.
func (j *jobsService) load() (int, error) {
	if j.store == nil {
		return 0, nil
	}
	n := 0
	err := j.store.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(jobsBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if err := j.engine.Load(v); err != nil {
				return fmt.Errorf("read %s: job %q: %w: %w; move the file away to start empty", j.store.path, k, ErrDatabaseCorrupt, err)
			}
			n++
			return nil
		})
	})
	return n, err
}

func (j *jobsService) start() {
	j.started = true
	go j.run()
}

// submit queues a request; it is called on the broker's goroutines.
func (j *jobsService) submit(topic string, payload []byte) {
	j.ingress.RLock()
	defer j.ingress.RUnlock()
	if j.closed {
		return
	}
	j.in <- jobsRequest{topic: topic, payload: payload}
}

// stop refuses new requests, finishes the queued ones and waits.
func (j *jobsService) stop() {
	j.ingress.Lock()
	wasClosed := j.closed
	j.closed = true
	j.ingress.Unlock()
	if wasClosed {
		return
	}
	close(j.in)
	if j.started {
		<-j.done
	}
}

func (j *jobsService) run() {
	defer close(j.done)
	tick := time.NewTicker(j.opts.JobsTick)
	defer tick.Stop()
	for {
		var res jobs.Result
		select {
		case r, ok := <-j.in:
			if !ok {
				return
			}
			var handled bool
			res, handled = j.handle(r)
			if !handled {
				continue
			}
		case <-tick.C:
			res = j.engine.Tick(j.opts.Now())
		}
		j.commit(res)
	}
}

// handle runs one request; a panic in the engine is logged and the
// request dropped (the client times out) rather than stopping the cloud.
func (j *jobsService) handle(r jobsRequest) (res jobs.Result, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			j.opts.Logger.Error("jobs engine panicked; request dropped", "topic", r.topic, "panic", p, "payload", string(r.payload))
			res, ok = jobs.Result{}, false
		}
	}()
	res, ok = j.engine.Handle(r.topic, r.payload, j.opts.Now())
	if ok {
		j.opts.Logger.Debug("jobs request", "topic", r.topic)
	}
	return res, ok
}

// commit stores the changed jobs, then publishes. A storage failure stops
// the server, as for shadows: replies are not sent for state not on disk.
func (j *jobsService) commit(res jobs.Result) {
	if j.store != nil && len(res.Changed) > 0 {
		err := j.store.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(jobsBucket)
			if err != nil {
				return err
			}
			for _, id := range res.Changed {
				rec, ok := j.engine.MarshalJob(id)
				if !ok {
					err = b.Delete([]byte(id))
				} else {
					err = b.Put([]byte(id), rec)
				}
				if err != nil {
					return fmt.Errorf("job %s: %w", id, err)
				}
			}
			return nil
		})
		if err != nil {
			j.opts.Logger.Error("storing jobs failed; stopping", "error", err)
			j.fail(fmt.Errorf("store jobs in %s: %w", j.store.path, err))
			return
		}
	}
	for _, m := range res.Messages {
		if err := j.pub.publish(context.Background(), m.Topic, m.Payload); err != nil && !errors.Is(err, context.Canceled) {
			j.opts.Logger.Warn("publish jobs message", "topic", m.Topic, "error", err)
		}
	}
}
