package discovery

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pinshadow/pinshadow/iot"
)

// DefaultEntryTimeout is the connect timeout the agent gives one attempt on
// one core address (connection.discovery.connect_timeout): the next address
// may be the one that answers.
const DefaultEntryTimeout = 10 * time.Second

// DefaultRediscoverInterval is the least time between two discovery
// requests a Router makes (AWS throttles the discovery API per account).
const DefaultRediscoverInterval = time.Minute

// RouterOptions configure NewRouter.
type RouterOptions struct {
	// Rediscover asks the discovery API again; nil never does. It is called
	// when a whole round of destinations failed, at most once per Interval.
	Rediscover func(ctx context.Context) (*Response, error)
	// Interval is the least time between two Rediscover calls, and since
	// DiscoveredAt before the first; 0 means DefaultRediscoverInterval.
	Interval time.Duration
	// DiscoveredAt is when the initial answer came from the API; zero (an
	// answer from the cache) lets the first failed round re-discover at once.
	DiscoveredAt time.Time
	// Fallback, if set, is tried after the core entries in every round: the
	// IoT Core endpoint.
	Fallback *iot.Route
	// Logger receives re-discoveries and their outcome (nil: discard).
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Router is an iot.Router over Greengrass cores: it sends each connection
// attempt to one connectivity entry of the last discovery answer, in
// order, staying on the one that connected; after a whole round failed it
// tries the fallback endpoint (if any) and asks the discovery API again, so
// a core that moved (a new address, another core of the group) is found
// without a restart.
type Router struct {
	o RouterOptions

	mu         sync.Mutex
	routes     []iot.Route // the answer's usable entries, then the fallback
	pos        int         // index of the route of the latest attempt
	started    bool
	discovered bool // routes hold an answer
	lastAsked  time.Time
	lastErr    error // of the last discovery that failed
}

// NewRouter returns a router over resp's candidates. Entries that cannot
// be used (no address, no usable group CA) are left out and logged; a
// router with no entry and no fallback still re-discovers. With resp nil
// the first Route asks Rediscover before anything else (the fallback only
// if that fails): a client built on it never blocks its owner's start-up
// on the discovery API.
func NewRouter(resp *Response, o RouterOptions) *Router {
	if o.Interval <= 0 {
		o.Interval = DefaultRediscoverInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{o: o, lastAsked: o.DiscoveredAt, discovered: resp != nil}
	r.routes = r.build(resp)
	return r
}

// build turns an answer into routes.
func (r *Router) build(resp *Response) []iot.Route {
	var out []iot.Route
	if resp != nil {
		pools := map[string]*x509.CertPool{}
		for _, c := range resp.Candidates() {
			rt, err := candidateRoute(c, pools)
			if err != nil {
				r.o.Logger.Warn("Greengrass connectivity entry unusable", "core", c.CoreArn, "entry", c.Entry.ID, "err", err)
				continue
			}
			out = append(out, rt)
		}
	}
	if r.o.Fallback != nil {
		out = append(out, *r.o.Fallback)
	}
	return out
}

// candidateRoute is the route to one entry: the group's CAs only, the
// certificate checked against the entry's HostAddress, ALPN on 443.
func candidateRoute(c Candidate, pools map[string]*x509.CertPool) (iot.Route, error) {
	ep, err := c.Entry.Endpoint()
	if err != nil {
		return iot.Route{}, err
	}
	pool, ok := pools[c.GroupID]
	if !ok {
		if pool, err = c.CertPool(); err != nil {
			return iot.Route{}, err
		}
		pools[c.GroupID] = pool
	}
	host, port, _ := net.SplitHostPort(ep)
	return iot.Route{Endpoint: ep, Roots: pool, ServerName: host, ALPN: port == strconv.Itoa(443),
		Name: fmt.Sprintf("mqtts://%s (Greengrass core %s, entry %q)", ep, c.CoreArn, c.Entry.ID)}, nil
}

// Route implements iot.Router.
func (r *Router) Route(ctx context.Context, failed int) (iot.Route, error) {
	r.mu.Lock()
	if r.started && failed > 0 {
		r.pos++
	}
	r.started = true
	roundOver := r.pos >= len(r.routes) // a whole round failed (or there was none)
	if roundOver {
		r.pos = 0
	}
	now := r.o.Now()
	if r.o.Rediscover != nil && (!r.discovered || roundOver) &&
		(r.lastAsked.IsZero() || now.Sub(r.lastAsked) >= r.o.Interval) {
		r.lastAsked = now
		r.mu.Unlock()
		r.rediscover(ctx)
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	if len(r.routes) == 0 {
		if r.lastErr != nil {
			return iot.Route{}, fmt.Errorf("%w: Greengrass discovery failed: %w (asking again at most every %s)", ErrNoCore, r.lastErr, r.o.Interval)
		}
		return iot.Route{}, fmt.Errorf("%w: the discovery answer lists no usable connectivity entry (asking again at most every %s)", ErrNoCore, r.o.Interval)
	}
	return r.routes[r.pos], nil
}

// rediscover asks the API and, when it answers, routes by the new answer.
func (r *Router) rediscover(ctx context.Context) {
	r.mu.Lock()
	first := !r.discovered
	r.mu.Unlock()
	if !first {
		r.o.Logger.Info("no Greengrass core answered; asking discovery again")
	}
	resp, err := r.o.Rediscover(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
		if ctx.Err() == nil {
			r.o.Logger.Warn("Greengrass discovery failed", "err", err, "routes", len(r.routes), "next_try_in", r.o.Interval)
		}
		return
	}
	r.routes, r.pos, r.discovered, r.lastErr = r.build(resp), 0, true, nil
	r.o.Logger.Info("Greengrass discovery answered", "destinations", len(r.routes))
}
