package localcloud

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestUpdateGetDeleteClassic(t *testing.T) {
	s := startServer(t, testOptions(t))
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	p := "$aws/things/lamp-1/shadow"
	c.subscribe(p+"/update/+", p+"/get/+", p+"/delete/+")

	c.publish(p+"/update", `{"state":{"desired":{"color":"red","level":3}},"clientToken":"tok-1"}`)
	acc := c.expect(p + "/update/accepted")
	if num(acc["version"]) != 1 || acc["clientToken"] != "tok-1" || path(acc, "state", "desired", "color") != "red" {
		t.Errorf("update/accepted = %v", acc)
	}
	if _, ok := path(acc, "metadata", "desired", "color", "timestamp").(float64); !ok {
		t.Errorf("update/accepted has no metadata timestamp for color: %v", acc)
	}
	delta := c.expect(p + "/update/delta")
	if num(delta["version"]) != 1 || delta["clientToken"] != "tok-1" || path(delta, "state", "color") != "red" || num(path(delta, "state", "level")) != 3 {
		t.Errorf("update/delta = %v", delta)
	}
	docs := c.expect(p + "/update/documents")
	if docs["clientToken"] != "tok-1" || num(path(docs, "current", "version")) != 1 || path(docs, "current", "state", "desired", "color") != "red" {
		t.Errorf("update/documents = %v", docs)
	}

	c.publish(p+"/get", `{"clientToken":"g1"}`)
	get := c.expect(p + "/get/accepted")
	if get["clientToken"] != "g1" || num(get["version"]) != 1 || path(get, "state", "delta", "color") != "red" {
		t.Errorf("get/accepted = %v", get)
	}

	// Reporting what is desired empties the delta: no delta message.
	c.publish(p+"/update", `{"state":{"reported":{"color":"red","level":3}},"clientToken":"tok-2"}`)
	if acc := c.expect(p + "/update/accepted"); num(acc["version"]) != 2 {
		t.Errorf("second update/accepted = %v", acc)
	}
	docs = c.expect(p + "/update/documents")
	if num(path(docs, "previous", "version")) != 1 || num(path(docs, "current", "version")) != 2 {
		t.Errorf("second update/documents = %v", docs)
	}

	c.publish(p+"/delete", `{"clientToken":"d1"}`)
	del := c.expect(p + "/delete/accepted")
	if num(del["version"]) != 2 || del["clientToken"] != "d1" {
		t.Errorf("delete/accepted = %v", del)
	}
	c.publish(p+"/get", `{"clientToken":"g2"}`)
	rej := c.expect(p + "/get/rejected")
	if num(rej["code"]) != 404 || rej["message"] != "No shadow exists with name: 'lamp-1'" || rej["clientToken"] != "g2" {
		t.Errorf("get after delete = %v", rej)
	}
}

func TestNamedShadowIsIndependent(t *testing.T) {
	s := startServer(t, testOptions(t))
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	named := "$aws/things/pump/shadow/name/config"
	classic := "$aws/things/pump/shadow"
	c.subscribe(named+"/update/accepted", named+"/get/+", classic+"/get/+")

	c.publish(named+"/update", `{"state":{"reported":{"rpm":1200}},"clientToken":"n1"}`)
	if acc := c.expect(named + "/update/accepted"); num(acc["version"]) != 1 || num(path(acc, "state", "reported", "rpm")) != 1200 {
		t.Errorf("named update/accepted = %v", acc)
	}
	c.publish(named+"/get", ``)
	if get := c.expect(named + "/get/accepted"); num(path(get, "state", "reported", "rpm")) != 1200 {
		t.Errorf("named get/accepted = %v", get)
	}
	c.publish(classic+"/get", `{"clientToken":"c1"}`)
	if rej := c.expect(classic + "/get/rejected"); num(rej["code"]) != 404 || rej["message"] != "No shadow exists with name: 'pump'" {
		t.Errorf("classic get = %v", rej)
	}
}

func TestRejectedRequests(t *testing.T) {
	s := startServer(t, testOptions(t))
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	p := "$aws/things/bad/shadow"
	c.subscribe(p+"/update/+", p+"/delete/+")

	c.publish(p+"/update", `{"state":`)
	if rej := c.expect(p + "/update/rejected"); num(rej["code"]) != 400 {
		t.Errorf("invalid JSON: %v", rej)
	}
	c.publish(p+"/update", `{"clientToken":"x"}`)
	if rej := c.expect(p + "/update/rejected"); num(rej["code"]) != 400 || rej["message"] != "Missing required node: state" || rej["clientToken"] != "x" {
		t.Errorf("missing state: %v", rej)
	}
	c.publish(p+"/update", `{"state":{"reported":{"a":1}}}`)
	c.expect(p + "/update/accepted")
	c.expect(p + "/update/documents")
	c.publish(p+"/update", `{"state":{"reported":{"a":2}},"version":7,"clientToken":"v"}`)
	if rej := c.expect(p + "/update/rejected"); num(rej["code"]) != 409 || rej["message"] != "Version conflict" || rej["clientToken"] != "v" {
		t.Errorf("version conflict: %v", rej)
	}
	c.publish("$aws/things/nobody/shadow/delete", `{"clientToken":"d"}`)
	// Topics that are not shadow requests get no answer; the next answer
	// is for the delete below.
	c.publish("$aws/things/bad/shadow/frobnicate", `{}`)
	c.publish(p+"/delete", `{"clientToken":"d2"}`)
	if acc := c.expect(p + "/delete/accepted"); acc["clientToken"] != "d2" {
		t.Errorf("delete: %v", acc)
	}
}

// Request topics are ordinary topics too: other subscribers see requests.
func TestRequestReachesOrdinarySubscribers(t *testing.T) {
	s := startServer(t, testOptions(t))
	addr := "tcp://" + endpoint(t, s, "mqtt")
	watcher := connect(t, addr, nil)
	watcher.subscribe("$aws/things/+/shadow/update", "$aws/things/spy/shadow/update/accepted")
	dev := connect(t, addr, nil)
	body := `{"state":{"reported":{"on":true}},"clientToken":"w"}`
	dev.publish("$aws/things/spy/shadow/update", body)
	// The raw request and the service's answer are publishes on different
	// topics, so they may reach the watcher in either order.
	var sawRequest, sawAccepted bool
	for !sawRequest || !sawAccepted {
		m := watcher.next()
		switch m.topic {
		case "$aws/things/spy/shadow/update":
			if string(m.body) != body {
				t.Fatalf("watcher got request %s, want it as sent: %s", m.body, body)
			}
			sawRequest = true
		case "$aws/things/spy/shadow/update/accepted":
			if acc := m.doc(t); acc["clientToken"] != "w" {
				t.Errorf("accepted = %v", acc)
			}
			sawAccepted = true
		default:
			t.Fatalf("watcher got %s %s", m.topic, m.body)
		}
	}
}

// Concurrent clients updating one shadow: versions are assigned in one
// order, every accepted update is published once, in version order, and
// each client's own requests are handled in the order it sent them.
func TestPerShadowOrderingUnderConcurrency(t *testing.T) {
	o := testOptions(t)
	o.Shards = 4
	s := startServer(t, o)
	addr := "tcp://" + endpoint(t, s, "mqtt")
	obs := connect(t, addr, nil)
	obs.subscribe("$aws/things/hot/shadow/update/accepted", "$aws/things/cold/shadow/update/accepted")

	const clients, each = 6, 40
	var wg sync.WaitGroup
	for i := range clients {
		c := connect(t, addr, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				thing := "hot"
				if j%4 == 3 {
					thing = "cold"
				}
				tok := c.c.Publish("$aws/things/"+thing+"/shadow/update", 0, false,
					fmt.Sprintf(`{"state":{"reported":{"c%d":%d}},"clientToken":"%d-%d"}`, i, j, i, j))
				tok.WaitTimeout(waitFor)
			}
		}()
	}
	wg.Wait()
	lastVersion := map[string]int64{}
	lastSeq := map[string]int{}
	for range clients * each {
		m := obs.next()
		d := m.doc(t)
		thing := strings.Split(m.topic, "/")[2]
		v := num(d["version"])
		if v != lastVersion[thing]+1 {
			t.Fatalf("%s: version %d after %d", thing, v, lastVersion[thing])
		}
		lastVersion[thing] = v
		var ci, seq int
		fmt.Sscanf(d["clientToken"].(string), "%d-%d", &ci, &seq)
		key := fmt.Sprint(thing, ci)
		if prev, ok := lastSeq[key]; ok && seq <= prev {
			t.Fatalf("client %d: request %d answered after %d", ci, seq, prev)
		}
		lastSeq[key] = seq
	}
	if lastVersion["hot"]+lastVersion["cold"] != clients*each {
		t.Errorf("versions %v, want %d updates in all", lastVersion, clients*each)
	}
}

func TestRateLimitPerThing(t *testing.T) {
	o := testOptions(t)
	o.RatePerThing = 0.001 // no refill during the test
	o.RateBurst = 3
	s := startServer(t, o)
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	c.subscribe("$aws/things/fast/shadow/update/+", "$aws/things/fast/shadow/name/n/update/+", "$aws/things/slow/shadow/update/+")
	for i := range 3 {
		c.publish("$aws/things/fast/shadow/update", fmt.Sprintf(`{"state":{"reported":{"i":%d}},"clientToken":"ok%d"}`, i, i))
		c.expect("$aws/things/fast/shadow/update/accepted")
		c.expect("$aws/things/fast/shadow/update/documents")
	}
	// The bucket is per thing: named shadows share it.
	c.publish("$aws/things/fast/shadow/name/n/update", `{"state":{"reported":{"i":9}},"clientToken":"over"}`)
	rej := c.expect("$aws/things/fast/shadow/name/n/update/rejected")
	if num(rej["code"]) != 429 || rej["clientToken"] != "over" {
		t.Errorf("over the rate: %v", rej)
	}
	c.publish("$aws/things/slow/shadow/update", `{"state":{"reported":{"i":1}},"clientToken":"other"}`)
	if acc := c.expect("$aws/things/slow/shadow/update/accepted"); acc["clientToken"] != "other" {
		t.Errorf("another thing: %v", acc)
	}
}

func TestInFlightLimitPerConnection(t *testing.T) {
	o := testOptions(t)
	o.MaxInFlight = 10
	arrived := make(chan struct{}, 100)
	release := make(chan struct{})
	var once sync.Once
	o.hooks.submitted = func(k shadowKey, _ shadowOp) { arrived <- struct{}{} }
	o.hooks.beforeHandle = func(shadowKey, shadowOp) { once.Do(func() { <-release }) }
	s := startServer(t, o)
	addr := "tcp://" + endpoint(t, s, "mqtt")
	c := connect(t, addr, nil)
	p := "$aws/things/busy/shadow"
	c.subscribe(p+"/update/accepted", p+"/update/rejected")
	for i := range 11 {
		c.publish(p+"/update", fmt.Sprintf(`{"state":{"reported":{"i":%d}},"clientToken":"r%d"}`, i, i))
	}
	for range 11 {
		waitChan(t, arrived)
	}
	// Another connection is not affected by c's backlog.
	other := connect(t, addr, nil)
	other.publish(p+"/update", `{"state":{"reported":{"i":99}},"clientToken":"other"}`)
	waitChan(t, arrived)
	close(release)
	got := map[string]float64{}
	for range 12 {
		m := c.next()
		d := m.doc(t)
		code, _ := d["code"].(float64)
		got[d["clientToken"].(string)] = code
	}
	for i := range 10 {
		if code := got[fmt.Sprintf("r%d", i)]; code != 0 {
			t.Errorf("request r%d: code %v, want accepted", i, code)
		}
	}
	if got["r10"] != 429 {
		t.Errorf("11th request: code %v, want 429 (all: %v)", got["r10"], got)
	}
	if code, ok := got["other"]; !ok || code != 0 {
		t.Errorf("other connection: %v (present %v), want accepted", code, ok)
	}
}

// The AWS IoT v1 SDKs' non-persistent mode subscribes right before each
// request and unsubscribes after the answer: a subscription whose SUBACK
// arrived before the request must get the response, every time.
func TestResponseReachesJustMadeSubscription(t *testing.T) {
	s := startServer(t, testOptions(t))
	c := connect(t, "tcp://"+endpoint(t, s, "mqtt"), nil)
	p := "$aws/things/sdk1/shadow"
	for i := range 25 {
		c.subscribe(p+"/update/accepted", p+"/update/rejected")
		c.publish(p+"/update", fmt.Sprintf(`{"state":{"reported":{"i":%d}},"clientToken":"np-%d"}`, i, i))
		if acc := c.expect(p + "/update/accepted"); acc["clientToken"] != fmt.Sprintf("np-%d", i) || num(acc["version"]) != int64(i+1) {
			t.Fatalf("round %d: accepted = %v", i, acc)
		}
		for _, f := range []string{p + "/update/accepted", p + "/update/rejected"} {
			if tok := c.c.Unsubscribe(f); !tok.WaitTimeout(waitFor) || tok.Error() != nil {
				t.Fatalf("unsubscribe: %v", tok.Error())
			}
		}
	}
}
