package discovery

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pinshadow/pinshadow/iot"
	"github.com/pinshadow/pinshadow/localcloud/devcerts"
)

// answer is a discovery answer with one group (a real CA) and the given
// core entries ("host:port" each, one core per entry).
func answer(t *testing.T, entries ...string) *Response {
	t.Helper()
	ca, err := devcerts.NewCA("group CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g := Group{ID: "g1", CAs: []string{string(ca.CertPEM)}}
	for i, e := range entries {
		host, port, _ := strings.Cut(e, ":")
		n, _ := strconv.Atoi(port)
		g.Cores = append(g.Cores, Core{ThingArn: "core-" + string(rune('a'+i)),
			Connectivity: []Connectivity{{ID: "e" + string(rune('1'+i)), HostAddress: host, PortNumber: n}}})
	}
	return &Response{Groups: []Group{g}}
}

// The router stays on what connected, moves on what failed, tries the
// fallback after the cores, and re-discovers after a failed round at most
// once per interval.
func TestRouterOrder(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	asked := 0
	next := answer(t, "10.0.0.9:8883")
	r := NewRouter(answer(t, "10.0.0.1:8883", "10.0.0.2:443"), RouterOptions{
		Rediscover: func(context.Context) (*Response, error) {
			asked++
			if asked == 1 {
				return nil, ErrThrottled
			}
			return next, nil
		},
		Interval:     time.Minute,
		DiscoveredAt: now,
		Fallback:     &iot.Route{Endpoint: "iot.example.com:8883", Name: "fallback"},
		Now:          func() time.Time { return now },
	})
	route := func(failed int) iot.Route {
		t.Helper()
		rt, err := r.Route(context.Background(), failed)
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	steps := []struct {
		failed  int
		advance time.Duration
		want    string
		asked   int
	}{
		{failed: 0, want: "10.0.0.1:8883"},                                 // first attempt
		{failed: 0, want: "10.0.0.1:8883"},                                 // reconnect after a drop: the same core
		{failed: 1, want: "10.0.0.2:443"},                                  // it failed: the next entry
		{failed: 2, want: "iot.example.com:8883"},                          // then the fallback
		{failed: 3, want: "10.0.0.1:8883"},                                 // round over, too soon to ask again
		{failed: 4, want: "10.0.0.2:443"},                                  //
		{failed: 5, want: "iot.example.com:8883"},                          //
		{failed: 6, advance: time.Minute, want: "10.0.0.1:8883", asked: 1}, // asked: throttled, same answer
		{failed: 7, want: "10.0.0.2:443", asked: 1},                        //
		{failed: 8, want: "iot.example.com:8883", asked: 1},                //
		{failed: 9, advance: time.Minute, want: "10.0.0.9:8883", asked: 2}, // the core moved
		{failed: 0, want: "10.0.0.9:8883", asked: 2},                       // and stays there
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		rt := route(s.failed)
		if rt.Endpoint != s.want || asked != s.asked {
			t.Fatalf("step %d (failed %d): %s, asked %d times; want %s, asked %d", i, s.failed, rt.Endpoint, asked, s.want, s.asked)
		}
	}
	core := route(0)
	if core.Roots == nil || core.ServerName != "10.0.0.9" || core.ALPN || !strings.Contains(core.Name, `Greengrass core core-a, entry "e1"`) {
		t.Fatalf("core route %+v: want the group CA, the entry's host as server name, no ALPN off 443", core)
	}
}

func TestRouterALPNOn443(t *testing.T) {
	r := NewRouter(answer(t, "10.0.0.2:443"), RouterOptions{})
	rt, err := r.Route(context.Background(), 0)
	if err != nil || !rt.ALPN {
		t.Fatalf("route to a core on 443: %+v %v, want ALPN", rt, err)
	}
}

// An answer with nothing usable is an error per attempt (the client keeps
// trying), and a cached answer (no DiscoveredAt) re-discovers at once.
func TestRouterEmptyAnswerRediscovers(t *testing.T) {
	bad := answer(t, "10.0.0.1:8883")
	bad.Groups[0].CAs = []string{"not a certificate"}
	asked := 0
	r := NewRouter(bad, RouterOptions{Rediscover: func(context.Context) (*Response, error) {
		asked++
		return answer(t, "10.0.0.3:8883"), nil
	}})
	rt, err := r.Route(context.Background(), 0)
	if err != nil || rt.Endpoint != "10.0.0.3:8883" || asked != 1 {
		t.Fatalf("first route %+v %v after %d re-discoveries, want the new answer's core", rt, err, asked)
	}
	none := NewRouter(bad, RouterOptions{})
	if _, err := none.Route(context.Background(), 0); !errors.Is(err, ErrNoCore) {
		t.Fatalf("no usable entry, no fallback: %v, want ErrNoCore", err)
	}
}

// Without an answer yet, the first route asks discovery first; while it
// fails, attempts go to the fallback (or fail with discovery's error), and
// discovery is asked again at most once per interval, not per attempt.
func TestRouterDiscoversLazily(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	var answers []*Response
	var errs []error
	asked := 0
	rediscover := func(context.Context) (*Response, error) {
		asked++
		i := asked - 1
		if i < len(errs) && errs[i] != nil {
			return nil, errs[i]
		}
		return answers[i], nil
	}
	answers = []*Response{answer(t, "10.0.0.1:8883")}
	r := NewRouter(nil, RouterOptions{Rediscover: rediscover, Now: func() time.Time { return now },
		Fallback: &iot.Route{Name: "fallback"}})
	if rt, err := r.Route(context.Background(), 0); err != nil || rt.Endpoint != "10.0.0.1:8883" || asked != 1 {
		t.Fatalf("first route %+v %v after %d discoveries, want the core of the first answer", rt, err, asked)
	}

	// Discovery refused (a thing in no group): the fallback, asked again a
	// minute later, not at every attempt.
	asked, errs, answers = 0, []error{ErrNotFound, nil}, []*Response{nil, answer(t, "10.0.0.5:8883")}
	r = NewRouter(nil, RouterOptions{Rediscover: rediscover, Now: func() time.Time { return now },
		Fallback: &iot.Route{Name: "fallback"}})
	for i := range 3 {
		rt, err := r.Route(context.Background(), i)
		if err != nil || rt.Name != "fallback" || asked != 1 {
			t.Fatalf("attempt %d while discovery refuses: %+v %v, asked %d times; want the fallback, asked once", i, rt, err, asked)
		}
	}
	now = now.Add(DefaultRediscoverInterval)
	if rt, err := r.Route(context.Background(), 3); err != nil || rt.Endpoint != "10.0.0.5:8883" || asked != 2 {
		t.Fatalf("a minute later: %+v %v, asked %d times; want the new answer's core", rt, err, asked)
	}

	// No fallback: the attempt fails with discovery's own error.
	asked, errs = 0, []error{ErrUnauthorized}
	r = NewRouter(nil, RouterOptions{Rediscover: rediscover, Now: func() time.Time { return now }})
	if _, err := r.Route(context.Background(), 0); !errors.Is(err, ErrNoCore) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("discovery refused, no fallback: %v, want ErrNoCore wrapping ErrUnauthorized", err)
	}
}
