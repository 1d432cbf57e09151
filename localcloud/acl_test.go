package localcloud

import (
	"testing"
)

func TestIsResponseTopic(t *testing.T) {
	for topic, want := range map[string]bool{
		"$aws/things/t/shadow/update/delta":              true,
		"$aws/things/t/shadow/update/documents":          true,
		"$aws/things/t/shadow/update/accepted":           true,
		"$aws/things/t/shadow/get/rejected":              true,
		"$aws/things/t/shadow/delete/accepted":           true,
		"$aws/things/t/shadow/name/n/update/delta":       true,
		"$aws/things/t/shadow/name/n/get/accepted":       true,
		"$aws/things/t/shadow/update":                    false, // requests are the clients'
		"$aws/things/t/shadow/get":                       false,
		"$aws/things/t/shadow/name/n/delete":             false,
		"$aws/things/t/shadow/get/delta":                 false, // no such topic
		"$aws/things/t/shadow/update/accepted/more":      false,
		"telemetry/t/update/delta":                       false,
		"$aws/things/t/jobs/notify":                      false,
		"$aws/things/bad name/shadow/update/delta":       false,
		"$aws/things/t/shadow/name/n/update/documents/x": false,
	} {
		if got := isResponseTopic(topic); got != want {
			t.Errorf("isResponseTopic(%q) = %v, want %v", topic, got, want)
		}
	}
}

// A client cannot forge the shadow service's messages: its publish on a
// response topic disconnects it and reaches no subscriber, while the
// service's own answers still flow (and OpenResponseTopics lifts the rule).
func TestClientsCannotPublishResponses(t *testing.T) {
	s := startServer(t, testOptions(t))
	addr := "tcp://" + endpoint(t, s, "mqtt")
	dev := connect(t, addr, nil)
	p := "$aws/things/acl/shadow"
	dev.subscribe(p+"/update/delta", p+"/update/accepted")

	forger, err := dial(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer forger.c.Disconnect(0)
	tok := forger.c.Publish(p+"/update/delta", 1, false, `{"state":{"on":true},"version":999999999}`)
	tok.WaitTimeout(waitFor)
	if forger.c.IsConnectionOpen() && tok.Error() == nil {
		t.Fatal("a client's publish on update/delta was accepted")
	}

	dev.publish(p+"/update", `{"state":{"desired":{"on":true}},"clientToken":"real"}`)
	if m := dev.next(); m.topic != p+"/update/delta" && m.topic != p+"/update/accepted" {
		t.Fatalf("first message on %s: %s", m.topic, m.body)
	} else if v := num(m.doc(t)["version"]); v != 1 {
		t.Fatalf("first message after the forgery is %s at version %d, want the service's version 1 (the forged one reached the device)", m.topic, v)
	}

	o := testOptions(t)
	o.OpenResponseTopics = true
	open := startServer(t, o)
	openAddr := "tcp://" + endpoint(t, open, "mqtt")
	sub := connect(t, openAddr, nil)
	sub.subscribe(p + "/update/delta")
	pub := connect(t, openAddr, nil)
	pub.publish(p+"/update/delta", `{"state":{"on":true},"version":7}`)
	if got := sub.expect(p + "/update/delta"); num(got["version"]) != 7 {
		t.Errorf("with OpenResponseTopics the published delta arrived as %v", got)
	}
}
