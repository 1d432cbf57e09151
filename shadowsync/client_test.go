package shadowsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 5 * time.Second // deadline for anything the tests wait on

// newTestClient returns a client on a new connection to cloud, closed at
// the end of the test.
func newTestClient(t *testing.T, cloud *fakeCloud, opts Options) (*Client, *fakeConn) {
	t.Helper()
	conn := cloud.connect()
	if opts.Timeout == 0 {
		opts.Timeout = wait
	}
	c, err := New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c, conn
}

func open(t *testing.T, c *Client, k Key, so ShadowOptions) *Shadow {
	t.Helper()
	s, err := c.Open(context.Background(), k, so)
	if err != nil {
		t.Fatalf("open %s: %v", k, err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// nextDelta waits for the next delta on s.
func nextDelta(t *testing.T, s *Shadow) Delta {
	t.Helper()
	select {
	case d, ok := <-s.Deltas():
		if !ok {
			t.Fatal("delta channel closed")
		}
		return d
	case <-time.After(wait):
		t.Fatalf("no delta on %s within %v", s.Key(), wait)
		return Delta{}
	}
}

// section returns state.<name> of a get document as compact JSON.
func section(doc map[string]any, name string) string {
	st, _ := doc["state"].(map[string]any)
	return js(st[name])
}

func TestGetUpdateDeleteClassicAndNamedOnOneConnection(t *testing.T) {
	cloud := newFakeCloud(t)
	c, conn := newTestClient(t, cloud, Options{})
	ctx := ctxT(t)
	keys := []Key{{Thing: "pi1"}, {Thing: "pi1", Name: "config"}, {Thing: "pi2", Name: "config"}}
	shadows := map[Key]*Shadow{}
	for _, k := range keys {
		shadows[k] = open(t, c, k, ShadowOptions{NoAutoSync: true})
	}
	// One batched subscribe per persistent shadow, seven response topics.
	for i, line := range conn.subLog() {
		if n := strings.Count(line, ",") + 1; !strings.HasPrefix(line, "+") || n != 7 {
			t.Errorf("subscribe call %d = %q, want one call with 7 filters", i, line)
		}
	}
	for i, k := range keys {
		s := shadows[k]
		acc, err := s.Update(ctx, UpdateRequest{Desired: map[string]any{"n": i}, Reported: map[string]any{"n": 0}})
		if err != nil {
			t.Fatalf("%s update: %v", k, err)
		}
		if acc.Version != 1 || js(acc.State) != fmt.Sprintf(`{"desired":{"n":%d},"reported":{"n":0}}`, i) {
			t.Errorf("%s update accepted = v%d %s", k, acc.Version, js(acc.State))
		}
		doc, err := s.Get(ctx)
		if err != nil {
			t.Fatalf("%s get: %v", k, err)
		}
		if js(doc.Desired) != fmt.Sprintf(`{"n":%d}`, i) || doc.Version != 1 {
			t.Errorf("%s get = v%d desired %s", k, doc.Version, js(doc.Desired))
		}
		if (i == 0) != (doc.Delta == nil) {
			t.Errorf("%s get delta = %s", k, js(doc.Delta))
		}
	}
	del, err := shadows[keys[1]].Delete(ctx)
	if err != nil || del.Version != 1 {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	if _, err := shadows[keys[1]].Get(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v, want ErrNotFound", err)
	}
	if _, err := shadows[keys[2]].Get(ctx); err != nil {
		t.Errorf("the other thing's named shadow was affected: %v", err)
	}
	// Every request carried its own token of at most 64 bytes.
	seen := map[string]bool{}
	for _, r := range cloud.requestLog() {
		var body struct{ ClientToken string }
		if err := json.Unmarshal([]byte(r.Payload), &body); err != nil || body.ClientToken == "" || len(body.ClientToken) > 64 {
			t.Errorf("request %s %s: bad clientToken", r.Topic, r.Payload)
		}
		if seen[body.ClientToken] {
			t.Errorf("clientToken %q reused", body.ClientToken)
		}
		seen[body.ClientToken] = true
	}
}

func TestRejectedIsTypedWithCodeAndMessage(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	ctx := ctxT(t)
	s := open(t, c, Key{Thing: "thing1"}, ShadowOptions{NoAutoSync: true})

	_, err := s.Get(ctx)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Code != 404 || rej.Message != "No shadow exists with name: 'thing1'" || rej.Op != "get" {
		t.Fatalf("get of a missing shadow: %v (%#v)", err, rej)
	}
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		t.Errorf("errors.Is(ErrNotFound) = %v, (ErrConflict) = %v", errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict))
	}
	if _, err := s.Update(ctx, UpdateRequest{Desired: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(ctx, UpdateRequest{Desired: map[string]any{"a": 2}, Version: 7})
	if !errors.Is(err, ErrConflict) || !errors.As(err, &rej) || rej.Message != "Version conflict" {
		t.Errorf("update with a wrong version: %v, want 409 Version conflict", err)
	}
	_, err = s.UpdateJSON(ctx, []byte(`{"state":{"delta":{"a":1}}}`))
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "State contains an invalid node: 'delta'") {
		t.Errorf("update with state.delta: %v, want 400", err)
	}
	if _, err := s.UpdateJSON(ctx, []byte(`[1]`)); err == nil || errors.As(err, &rej) {
		t.Errorf("a non-object document was sent: %v", err)
	}
}

func TestTimeoutIsTypedAndOtherTokensAreIgnored(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{Timeout: 300 * time.Millisecond})
	other, _ := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true})
	so := open(t, other, k, ShadowOptions{NoAutoSync: true})

	// Hold back responses to the device's requests only; the other client's
	// responses reach the device too (AWS broadcasts) and must not be taken
	// for its own.
	cloud.mu.Lock()
	cloud.hold = func(topic string, payload []byte) bool { return strings.Contains(string(payload), c.tokenBase) }
	cloud.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		_, err := s.Get(context.Background())
		done <- err
	}()
	for i := 0; i < 3; i++ {
		if _, err := so.Update(ctxT(t), UpdateRequest{Reported: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
		if _, err := so.Get(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	var te *TimeoutError
	select {
	case err := <-done:
		if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) || te.Op != "get" || te.Cause != nil {
			t.Fatalf("get with its response withheld: %v, want a TimeoutError", err)
		}
	case <-time.After(wait):
		t.Fatal("get did not time out")
	}
	// Its answer (404 or the document, depending on when the get ran) was
	// the only message withheld.
	if held := cloud.heldTopics(); len(held) != 1 || !strings.HasPrefix(held[0], "$aws/things/pi/shadow/get/") {
		t.Fatalf("held %v", held)
	}
	cloud.release() // a late response is ignored without harm

	// The caller's context ends the wait too, and says so.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, err := s.Delete(ctx)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTimeout) {
		t.Errorf("cancelled delete: %v, want ErrTimeout wrapping context.Canceled", err)
	}
}

func TestDeltaSharingVersionWithUpdateReplyIsDelivered(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	app, _ := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi", Name: "led"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true})
	cloudSide := open(t, app, k, ShadowOptions{NoAutoSync: true, OnDemand: true})
	ctx := ctxT(t)

	if _, err := cloudSide.Update(ctx, UpdateRequest{Desired: map[string]any{"led": "on"}}); err != nil {
		t.Fatal(err)
	}
	if d := nextDelta(t, s); d.Version != 1 || js(d.State) != `{"led":"on"}` {
		t.Fatalf("first delta = %+v", d)
	}
	// The device reports something else; the service answers accepted v2
	// and a delta v2 (desired still differs). The delta is held back so the
	// update reply with the same version arrives first (the order is not
	// guaranteed; the v1 SDK drops the delta in this order).
	cloud.mu.Lock()
	cloud.hold = func(topic string, _ []byte) bool { return strings.HasSuffix(topic, "/update/delta") }
	cloud.mu.Unlock()
	acc, err := s.Update(ctx, UpdateRequest{Reported: map[string]any{"led": "off"}})
	if err != nil || acc.Version != 2 {
		t.Fatalf("report = %+v, %v", acc, err)
	}
	if m := s.Mirror(); m.Version != 2 && m.Version != 0 {
		t.Fatalf("mirror version %d", m.Version)
	}
	cloud.release()
	d := nextDelta(t, s)
	if d.Version != 2 || js(d.State) != `{"led":"on"}` {
		t.Fatalf("delta after the same-version reply = %+v, want v2 {led:on}", d)
	}

	// An older delta, then a duplicate of v2, are dropped: the marker that
	// follows them is the next delta delivered.
	p := k.Prefix() + "/update/delta"
	cloud.inject(p, `{"state":{"led":"blink"},"version":1,"timestamp":1}`)
	cloud.inject(p, `{"state":{"led":"on"},"version":2,"timestamp":1}`)
	cloud.inject(p, `{"state":{"led":"marker"},"version":3,"timestamp":1}`)
	if d := nextDelta(t, s); d.Version != 3 || js(d.State) != `{"led":"marker"}` {
		t.Fatalf("after a stale and a duplicate delta the next delta was %+v, want the v3 marker", d)
	}
}

func TestDeltasNeverBlockTheReceivePathAndKeepTheNewest(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	app, _ := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true})
	cs := open(t, app, k, ShadowOptions{NoAutoSync: true})
	// Nobody reads Deltas while 20 desired changes arrive; requests keep
	// being answered (the receive path is not blocked).
	for i := 1; i <= 20; i++ {
		if _, err := cs.Update(ctxT(t), UpdateRequest{Desired: map[string]any{fmt.Sprint("k", i%3): i}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctxT(t)); err != nil {
		t.Fatalf("device request while its deltas were unread: %v", err)
	}
	d := nextDelta(t, s)
	if d.Version != 20 || js(d.State) != `{"k0":18,"k1":19,"k2":20}` {
		t.Errorf("kept delta = v%d %s, want the newest (v20) with every out-of-sync key", d.Version, js(d.State))
	}
}

func TestOnDemandSubscribesPerRequest(t *testing.T) {
	cloud := newFakeCloud(t)
	c, conn := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{OnDemand: true, NoAutoSync: true})
	if _, err := s.Update(ctxT(t), UpdateRequest{Reported: map[string]any{"a": 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	p := k.Prefix()
	want := []string{
		"+" + p + "/update/delta",
		"+" + p + "/update/accepted," + p + "/update/rejected",
		"-" + p + "/update/accepted," + p + "/update/rejected",
		"+" + p + "/get/accepted," + p + "/get/rejected",
		"-" + p + "/get/accepted," + p + "/get/rejected",
	}
	if got := conn.subLog(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("subscriptions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Concurrent requests share the subscription; it goes when the last ends.
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Get(ctxT(t)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	subs, unsubs := 0, 0
	for _, l := range conn.subLog()[len(want):] {
		if strings.HasPrefix(l, "+") {
			subs++
		} else {
			unsubs++
		}
	}
	if subs != unsubs || subs < 1 {
		t.Errorf("after concurrent gets: %d subscribes, %d unsubscribes", subs, unsubs)
	}
	cloud.mu.Lock()
	left := len(conn.subs)
	cloud.mu.Unlock()
	if left != 1 {
		t.Errorf("%d subscriptions left, want only update/delta", left)
	}
}

func TestMirrorTracksDocumentAndIsSafeToReadConcurrently(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	app, _ := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true})
	cs := open(t, app, k, ShadowOptions{NoAutoSync: true})
	if m := s.Mirror(); m.Known || m.InSync {
		t.Fatalf("mirror before anything: %+v", m)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				m := s.Mirror()
				if m.Desired != nil {
					m.Desired["scribble"] = true // a copy: must not leak into the mirror
				}
			}
		}
	}()
	if _, err := s.Get(ctxT(t)); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := cs.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"fan": 2, "led": "on"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctxT(t), UpdateRequest{Reported: map[string]any{"fan": 2, "led": "off"}}); err != nil {
		t.Fatal(err)
	}
	m := s.Mirror()
	if m.Version != 2 || js(m.Desired) != `{"fan":2,"led":"on"}` || js(m.Reported) != `{"fan":2,"led":"off"}` || js(m.Delta) != `{"led":"on"}` || m.InSync {
		t.Errorf("mirror = %+v", m)
	}
	if _, err := s.Update(ctxT(t), UpdateRequest{Reported: map[string]any{"led": "on"}}); err != nil {
		t.Fatal(err)
	}
	if m := s.Mirror(); !m.InSync || m.Version != 3 {
		t.Errorf("mirror after reporting led=on: %+v, want in sync at v3", m)
	}
	close(stop)
	wg.Wait()
}

func TestReportsAreCoalescedAndRateLimited(t *testing.T) {
	cloud := newFakeCloud(t)
	clock := newFakeClock()
	c, _ := newTestClient(t, cloud, Options{Clock: clock, RatePerThing: 2, Burst: 1})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true})
	named := open(t, c, Key{Thing: "pi", Name: "env"}, ShadowOptions{NoAutoSync: true})

	if err := s.Report(map[string]any{"temp": 20, "led": map[string]any{"r": 1, "g": 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctxT(t)); err != nil { // the burst token
		t.Fatal(err)
	}
	// The bucket is empty now: the next changes wait, and coalesce.
	for i := 21; i <= 25; i++ {
		if err := s.Report(map[string]any{"temp": i}); err != nil {
			t.Fatal(err)
		}
	}
	s.Report(map[string]any{"led": map[string]any{"g": 0}})
	named.Report(map[string]any{"hum": 40}) // same thing: shares the budget
	if d := clock.waitTimer(t); d != 500*time.Millisecond {
		t.Errorf("rate-limit wait %v, want 500ms at 2 requests/s", d)
	}
	clock.waitTimer(t) // the second shadow is waiting too
	if n := len(cloud.requestLog()); n != 1 {
		t.Fatalf("%d requests before the clock moved, want 1", n)
	}
	clock.Advance(500 * time.Millisecond)
	// One of the two waiting shadows goes; the other waits for the next token.
	clock.waitTimer(t)
	clock.Advance(500 * time.Millisecond)
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := named.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	log := cloud.requestLog()
	if len(log) != 3 {
		t.Fatalf("requests: %v, want 3", log)
	}
	var sent []string
	for _, r := range log[1:] {
		var body struct {
			State json.RawMessage `json:"state"`
		}
		json.Unmarshal([]byte(r.Payload), &body)
		sent = append(sent, r.Topic+" "+string(body.State))
	}
	want := "$aws/things/pi/shadow/update " + `{"reported":{"led":{"g":0},"temp":25}}`
	if sent[0] != want && sent[1] != want {
		t.Errorf("coalesced report not sent; sent %q, want %q", sent, want)
	}
	if got := section(cloud.document(k), "reported"); got != `{"led":{"g":0,"r":1},"temp":25}` {
		t.Errorf("cloud reported = %s", got)
	}
}

func TestReconnectGetsOfflineDesiredChangesAndRepublishesReported(t *testing.T) {
	cloud := newFakeCloud(t)
	clock := newFakeClock()
	c, conn := newTestClient(t, cloud, Options{Clock: clock, Timeout: time.Second})
	app, _ := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{})
	cs := open(t, app, k, ShadowOptions{NoAutoSync: true})

	// Open's sync: the shadow does not exist yet; nothing to deliver.
	if err := s.Report(map[string]any{"led": "off", "temp": 20}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	conn.setOnline(false)
	if _, err := cs.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"led": "on"}}); err != nil {
		t.Fatal(err)
	}
	// The device keeps reporting while offline: sends fail and wait to retry.
	s.Report(map[string]any{"temp": 21})
	if d := clock.waitTimer(t); d != time.Second {
		t.Errorf("retry wait %v, want the 1s base", d)
	}
	s.Report(map[string]any{"temp": 22, "fan": nil})
	// Someone deletes reported keys in the cloud while the device is away;
	// the full re-publish restores what the device has.
	if _, err := cs.Update(ctxT(t), UpdateRequest{ClearReported: true}); err != nil {
		t.Fatal(err)
	}

	conn.setOnline(true)
	c.Reconnected()
	d := nextDelta(t, s)
	if !d.Resync || js(d.State) != `{"led":"on"}` {
		t.Errorf("delta after reconnect = %+v, want a resync delta {led:on}", d)
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := section(cloud.document(k), "reported"); got != `{"led":"off","temp":22}` {
		t.Errorf("cloud reported after reconnect = %s, want the device's full state", got)
	}
}

func TestVersionConflictGetsThenRetries(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	app, _ := newTestClient(t, cloud, Options{Timeout: 200 * time.Millisecond})
	k := Key{Thing: "pi"}
	cs := open(t, app, k, ShadowOptions{NoAutoSync: true})
	if _, err := cs.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"led": "on"}}); err != nil {
		t.Fatal(err)
	}
	s := open(t, c, k, ShadowOptions{VersionedReports: true})
	if d := nextDelta(t, s); !d.Resync || d.Version != 1 {
		t.Fatalf("open's delta = %+v", d)
	}
	// A change the device's persistent subscription never sees (its
	// update/accepted is withheld from it) makes its version stale.
	cloud.mu.Lock()
	cloud.hold = func(topic string, _ []byte) bool { return true }
	cloud.mu.Unlock()
	if _, err := cs.Update(ctxT(t), UpdateRequest{Desired: map[string]any{"fan": 3}}); err == nil {
		t.Fatal("the app got a response although all responses are held")
	}
	cloud.mu.Lock()
	cloud.hold, cloud.held = nil, nil
	cloud.mu.Unlock()

	s.Report(map[string]any{"led": "on"})
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	d := nextDelta(t, s)
	// The get after the 409 delivers {fan:3, led:on} (v2); the retried
	// report's own delta {fan:3} (v3) may already have replaced it.
	if fan, _ := d.State["fan"].(json.Number); fan != "3" || d.Version < 2 {
		t.Errorf("delta after the 409 = %+v, want one with the unseen desired fan=3", d)
	}
	var versions []string
	for _, r := range cloud.requestLog() {
		if strings.HasSuffix(r.Topic, "/update") && strings.Contains(r.Payload, `"reported"`) {
			var body struct{ Version int64 }
			json.Unmarshal([]byte(r.Payload), &body)
			versions = append(versions, fmt.Sprint(body.Version))
		}
	}
	if strings.Join(versions, ",") != "1,2" {
		t.Errorf("reported updates sent with versions %v, want 1 (conflict) then 2", versions)
	}
	if got := section(cloud.document(k), "reported"); got != `{"led":"on"}` {
		t.Errorf("cloud reported = %s", got)
	}
}

func TestRejectedReportIsDroppedAndSaid(t *testing.T) {
	cloud := newFakeCloud(t)
	c, _ := newTestClient(t, cloud, Options{})
	errs := make(chan error, 1)
	s := open(t, c, Key{Thing: "pi"}, ShadowOptions{NoAutoSync: true, OnReportError: func(err error) { errs <- err }})
	deep := map[string]any{"1": map[string]any{"2": map[string]any{"3": map[string]any{"4": map[string]any{"5": map[string]any{"6": map[string]any{"7": 1}}}}}}}
	s.Report(deep)
	select {
	case err := <-errs:
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("report error %v, want 400", err)
		}
	case <-time.After(wait):
		t.Fatal("no report error")
	}
	if err := s.Flush(ctxT(t)); err != nil {
		t.Errorf("flush after a dropped report: %v", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	cloud := newFakeCloud(t)
	conn := cloud.connect()
	c, err := New(conn, Options{Timeout: wait})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, c, Key{Thing: "pi"}, ShadowOptions{NoAutoSync: true})
	published := make(chan struct{})
	var once sync.Once
	cloud.mu.Lock()
	cloud.hold = func(string, []byte) bool { once.Do(func() { close(published) }); return true }
	cloud.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := s.Get(context.Background())
		done <- err
	}()
	<-published // the get is out and its answer withheld
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("pending get after Close: %v, want ErrClosed", err)
	}
	if _, ok := <-s.Deltas(); ok {
		t.Error("Deltas not closed")
	}
	if _, err := s.Get(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("get after Close: %v", err)
	}
	if _, err := c.Open(ctxT(t), Key{Thing: "x"}, ShadowOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("open after Close: %v", err)
	}
	cloud.mu.Lock()
	left := len(conn.subs)
	cloud.mu.Unlock()
	if left != 0 {
		t.Errorf("%d subscriptions left after Close", left)
	}
}

func TestShadowCloseLeavesTheOthersRunning(t *testing.T) {
	cloud := newFakeCloud(t)
	c, conn := newTestClient(t, cloud, Options{})
	a := open(t, c, Key{Thing: "pi", Name: "a"}, ShadowOptions{})
	b := open(t, c, Key{Thing: "pi", Name: "b"}, ShadowOptions{})
	if err := a.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-a.Deltas(); ok {
		t.Error("closed shadow's Deltas still open")
	}
	if _, err := a.Get(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("get on a closed shadow: %v, want ErrClosed", err)
	}
	if err := a.Report(map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("flush on a closed shadow: %v, want ErrClosed", err)
	}
	cloud.mu.Lock()
	_, aSub := conn.subs[a.Key().Prefix()+"/get/accepted"]
	_, bSub := conn.subs[b.Key().Prefix()+"/get/accepted"]
	cloud.mu.Unlock()
	if aSub || !bSub {
		t.Errorf("after closing a: a subscribed %v, b subscribed %v; want false, true", aSub, bSub)
	}
	b.Report(map[string]any{"y": 2})
	if err := b.Flush(ctxT(t)); err != nil {
		t.Fatalf("the other shadow stopped working: %v", err)
	}
	again := open(t, c, a.Key(), ShadowOptions{NoAutoSync: true})
	if _, err := again.Get(ctxT(t)); !errors.Is(err, ErrNotFound) {
		t.Errorf("reopened shadow get: %v, want 404", err)
	}
}

func TestReconnectWithNothingChangedSendsOnlyAGet(t *testing.T) {
	cloud := newFakeCloud(t)
	c, conn := newTestClient(t, cloud, Options{})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{})
	s.Report(map[string]any{"temp": 20, "led": map[string]any{"r": 1}})
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitResyncs(t, s, 1) // Open's
	before := len(cloud.requestLog())
	conn.setOnline(false)
	conn.setOnline(true)
	c.Reconnected()
	waitResyncs(t, s, 2)
	s.Report(map[string]any{"temp": 21})
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, r := range cloud.requestLog()[before:] {
		ops = append(ops, r.Topic[strings.LastIndex(r.Topic, "/")+1:])
	}
	if strings.Join(ops, ",") != "get,update" {
		t.Errorf("requests after an uneventful reconnect: %v, want get then the one new report", ops)
	}
	if got := section(cloud.document(k), "reported"); got != `{"led":{"r":1},"temp":21}` {
		t.Errorf("cloud reported = %s", got)
	}
}

// waitResyncs waits until s has completed n resyncs.
func waitResyncs(t *testing.T, s *Shadow, n int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		s.mu.Lock()
		done, ch := s.resyncs >= n, s.changed
		s.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("resync %d did not complete", n)
		}
	}
}

func TestThrottledAndFailedReportsAreRetried(t *testing.T) {
	cloud := newFakeCloud(t)
	clock := newFakeClock()
	errs := make(chan error, 4)
	c, _ := newTestClient(t, cloud, Options{Clock: clock, RetryBase: time.Second, RetryMax: 4 * time.Second})
	k := Key{Thing: "pi"}
	s := open(t, c, k, ShadowOptions{NoAutoSync: true, OnReportError: func(err error) { errs <- err }})

	cloud.mu.Lock()
	cloud.rejectNext = []fakeReject{{429, "Too Many Requests"}, {500, "Internal service failure"}}
	cloud.mu.Unlock()
	s.Report(map[string]any{"temp": 20})
	if d := clock.waitTimer(t); d != time.Second {
		t.Errorf("wait after 429: %v, want 1s", d)
	}
	s.Report(map[string]any{"temp": 21}) // coalesces with the one waiting
	clock.Advance(time.Second)
	clock.waitTimerOf(t, 2*time.Second) // the wait after the 500 doubled
	if st := s.Status(); st.Failures != 2 || !errors.Is(st.LastError, ErrServiceFailure) || st.Pending != 1 || !st.RetryAt.Equal(clock.Now().Add(2*time.Second)) {
		t.Errorf("status while waiting to retry: %+v", st)
	}
	clock.Advance(2 * time.Second)
	if err := s.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := section(cloud.document(k), "reported"); got != `{"temp":21}` {
		t.Errorf("cloud reported = %s", got)
	}
	select {
	case err := <-errs:
		t.Errorf("a temporary rejection was reported as final: %v", err)
	default:
	}
	if n := len(cloud.requestLog()); n != 3 {
		t.Errorf("%d requests, want 3 (429, 500, accepted)", n)
	}
	if st := s.Status(); st != (ReportStatus{}) {
		t.Errorf("status after the report went through: %+v", st)
	}
}
