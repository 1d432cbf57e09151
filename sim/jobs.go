package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
	lcjobs "github.com/pinshadow/pinshadow/localcloud/jobs"
)

// JobUpdate is a job execution's status as the cloud side sees it.
type JobUpdate struct {
	JobID   string
	Status  string
	Details map[string]string
}

// notifySubscription follows the thing's jobs notify topic: the pending
// list changed, so an execution started or ended.
func (a *Actor) notifySubscription() iot.Subscription {
	return iot.Subscription{Filter: "$aws/things/" + a.thing + "/jobs/notify", QoS: iot.QoS1,
		Handler: func(iot.Message) { a.pollJobs() }}
}

// CreateJob creates job id for the actor's thing with document doc in the
// local cloud's Jobs service and returns once the service accepted it. The
// execution's status changes are reported to ActorOptions.OnJob.
func (a *Actor) CreateJob(ctx context.Context, id string, doc map[string]any) error {
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("sim: job %s: the document does not convert to JSON: %w", id, err)
	}
	a.jobMu.Lock()
	a.jobs[id] = ""
	a.jobMu.Unlock()
	if _, err := a.mgr.Create(ctx, jobs.CreateRequest{JobID: id, Targets: []string{a.thing}, Document: body}); err != nil {
		a.jobMu.Lock()
		delete(a.jobs, id)
		a.jobMu.Unlock()
		return fmt.Errorf("sim: creating job %s: %w", id, err)
	}
	a.pollJobs()
	return nil
}

// pollJobs asks the poller to describe the jobs again. It does not block.
func (a *Actor) pollJobs() {
	select {
	case a.poll <- struct{}{}:
	default:
	}
}

// poller describes, off the receive path and one round at a time, every
// job the actor created whose execution has not ended, and reports the
// statuses that changed. It runs until Close.
func (a *Actor) poller() {
	defer a.wg.Done()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-a.poll:
		}
		a.jobMu.Lock()
		var ids []string
		for id, st := range a.jobs {
			if !lcjobs.Status(st).Terminal() {
				ids = append(ids, id)
			}
		}
		a.jobMu.Unlock()
		sort.Strings(ids)
		for _, id := range ids {
			r, err := a.mgr.Describe(a.ctx, jobs.DescribeRequest{JobID: id, ThingName: a.thing})
			if err != nil || r.Execution == nil {
				continue
			}
			st := string(r.Execution.Status)
			a.jobMu.Lock()
			changed := a.jobs[id] != st
			a.jobs[id] = st
			a.jobMu.Unlock()
			if changed && a.onJob != nil {
				a.onJob(JobUpdate{JobID: id, Status: st, Details: r.Execution.StatusDetails})
			}
		}
	}
}
