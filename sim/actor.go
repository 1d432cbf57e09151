package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/jobs"
)

// Actor is the cloud side of a simulation: an application that changes
// desired state and watches every shadow document the service publishes
// (update/documents), as a fleet backend would. It publishes its requests
// itself, with its own clientTokens, so it knows exactly when each desired
// change left and which document it produced.
type Actor struct {
	ic     *iot.Client
	thing  string
	prefix string // clientToken prefix: "sim-<random>-"
	seq    atomic.Int64
	// onDocument and onRejected receive what the service publishes, on the
	// connection's dispatcher goroutine.
	onDocument func(shadow string, d Documents, mine bool)
	onRejected func(shadow string, code int, msg string)
	onJob      func(JobUpdate)

	// ctx ends at Close; wg holds the job poller.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	poll   chan struct{}

	mgr   *jobs.Manager
	jobMu sync.Mutex
	jobs  map[string]string // jobs created → last status seen ("" none yet)
}

// Documents is an update/documents message: the shadow before and after
// one accepted update.
type Documents struct {
	Previous, Current DocState
	ClientToken       string
	// Received is when the message arrived.
	Received time.Time
}

// DocState is one side of Documents.
type DocState struct {
	State struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"state"`
	Version int64 `json:"version"`
}

// ActorOptions configure NewActor.
type ActorOptions struct {
	// Endpoint is the broker's host:port (plain MQTT).
	Endpoint string
	// Thing is the thing whose shadows the actor drives; Shadows the
	// shadow names it watches ("" = classic).
	Thing   string
	Shadows []string
	// OnDocument is called for every update/documents message; mine says
	// whether the update was the actor's own. OnRejected for every rejected
	// update the actor made. Both run on the connection's goroutine and
	// must not block.
	OnDocument func(shadow string, d Documents, mine bool)
	OnRejected func(shadow string, code int, msg string)
	// OnJob is called when a job the actor created changes status (seen by
	// describing it when the thing's pending list changes). It is called
	// from the actor's goroutines and must not block.
	OnJob func(JobUpdate)
}

// NewActor connects to the broker and subscribes to the shadows' update
// documents and rejections. Close it when done.
func NewActor(ctx context.Context, o ActorOptions) (*Actor, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("sim: random client id: %w", err)
	}
	id := "sim-cloud-" + hex.EncodeToString(r[:])
	ic, err := iot.New(iot.Config{
		Endpoint:  o.Endpoint,
		Transport: iot.TransportTCP,
		ClientID:  id,
		KeepAlive: 30 * time.Second,
		Backoff:   iot.BackoffConfig{Base: 50 * time.Millisecond, Max: time.Second, Stable: 5 * time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("sim: cloud-side client for %s: %w", o.Endpoint, err)
	}
	a := &Actor{ic: ic, thing: o.Thing, prefix: id + "-", onDocument: o.OnDocument, onRejected: o.OnRejected, onJob: o.OnJob,
		jobs: map[string]string{}, poll: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	subs := []iot.Subscription{a.notifySubscription()}
	for _, name := range o.Shadows {
		name := name
		p := a.topicPrefix(name)
		subs = append(subs,
			iot.Subscription{Filter: p + "/update/documents", QoS: iot.QoS1, Handler: func(m iot.Message) { a.document(name, m) }},
			iot.Subscription{Filter: p + "/update/rejected", QoS: iot.QoS1, Handler: func(m iot.Message) { a.rejected(name, m) }},
		)
	}
	if err := ic.SubscribeMany(ctx, subs); err != nil {
		a.cancel()
		a.wg.Wait()
		ic.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sim: cloud-side subscriptions: %w", err)
	}
	if a.mgr, err = jobs.NewManager(ctx, jobs.IOT(ic), 10*time.Second); err != nil {
		a.cancel()
		a.wg.Wait()
		ic.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sim: cloud-side jobs management: %w", err)
	}
	a.wg.Add(1)
	go a.poller()
	if err := ic.Connect(ctx); err != nil {
		a.cancel()
		a.wg.Wait()
		ic.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("sim: cloud side connecting to %s: %w", o.Endpoint, err)
	}
	return a, nil
}

func (a *Actor) topicPrefix(shadow string) string {
	if shadow == "" {
		return "$aws/things/" + a.thing + "/shadow"
	}
	return "$aws/things/" + a.thing + "/shadow/name/" + shadow
}

func (a *Actor) document(shadow string, m iot.Message) {
	var d Documents
	var wire struct {
		Previous    DocState `json:"previous"`
		Current     DocState `json:"current"`
		ClientToken string   `json:"clientToken"`
	}
	if err := json.Unmarshal(m.Payload, &wire); err != nil || a.onDocument == nil {
		return
	}
	d.Previous, d.Current, d.ClientToken, d.Received = wire.Previous, wire.Current, wire.ClientToken, time.Now()
	a.onDocument(shadow, d, strings.HasPrefix(d.ClientToken, a.prefix))
}

func (a *Actor) rejected(shadow string, m iot.Message) {
	var wire struct {
		Code        int    `json:"code"`
		Message     string `json:"message"`
		ClientToken string `json:"clientToken"`
	}
	if json.Unmarshal(m.Payload, &wire) != nil || !strings.HasPrefix(wire.ClientToken, a.prefix) || a.onRejected == nil {
		return
	}
	a.onRejected(shadow, wire.Code, wire.Message)
}

// Desired publishes an update of desired state to shadow ("" = classic)
// and returns when the broker has it (PUBACK). The service's answer
// arrives as a document (OnDocument) or a rejection (OnRejected), possibly
// before Desired returns.
func (a *Actor) Desired(ctx context.Context, shadow string, patch map[string]any) error {
	tok := fmt.Sprintf("%s%d", a.prefix, a.seq.Add(1))
	body, err := json.Marshal(map[string]any{"state": map[string]any{"desired": patch}, "clientToken": tok})
	if err != nil {
		return fmt.Errorf("sim: desired %v does not marshal to JSON: %w", patch, err)
	}
	if _, err := a.ic.Publish(ctx, a.topicPrefix(shadow)+"/update", body, iot.QoS1, iot.WithoutQueue()); err != nil {
		return fmt.Errorf("sim: publishing desired %s: %w", formatPatch(patch), err)
	}
	return nil
}

// Close stops the job polling and disconnects.
func (a *Actor) Close(ctx context.Context) error {
	a.cancel()
	a.wg.Wait()
	_ = a.mgr.Close(ctx)
	return a.ic.Close(ctx)
}
