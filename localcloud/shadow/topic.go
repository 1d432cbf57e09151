package shadow

import (
	"strings"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

const topicRoot = "$aws/things/"

// ParseTopic splits a request topic into shadow key and operation. ok is
// false for anything that is not a get/update/delete request topic of a
// valid thing and shadow name: such publishes get no response.
func ParseTopic(topic string) (k Key, op Op, ok bool) {
	rest, found := strings.CutPrefix(topic, topicRoot)
	if !found {
		return Key{}, "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 3 && parts[1] == "shadow":
		k = Key{Thing: parts[0]}
		op = Op(parts[2])
	case len(parts) == 5 && parts[1] == "shadow" && parts[2] == "name":
		k = Key{Thing: parts[0], Name: parts[3]}
		op = Op(parts[4])
		if !shadowdoc.ValidShadowName(k.Name) {
			return Key{}, "", false
		}
	default:
		return Key{}, "", false
	}
	if !shadowdoc.ValidThingName(k.Thing) {
		return Key{}, "", false
	}
	switch op {
	case OpGet, OpUpdate, OpDelete:
		return k, op, true
	}
	return Key{}, "", false
}

// Prefix returns the shadow's topic prefix, e.g. "$aws/things/T/shadow" or
// "$aws/things/T/shadow/name/N".
func (k Key) Prefix() string { return shadowdoc.TopicPrefix(k.Thing, k.Name) }

// RequestTopic returns the topic a client publishes op requests to.
func (k Key) RequestTopic(op Op) string { return k.Prefix() + "/" + string(op) }

// displayName is the name AWS puts in "No shadow exists" messages: the
// thing name for the classic shadow, else the shadow name.
func (k Key) displayName() string {
	if k.Name == "" {
		return k.Thing
	}
	return k.Name
}

// String renders the key for logs.
func (k Key) String() string {
	if k.Name == "" {
		return k.Thing
	}
	return k.Thing + "/" + k.Name
}

// RequestFilters are the MQTT subscription filters that match every shadow
// request topic, classic and named.
func RequestFilters() []string {
	return []string{
		"$aws/things/+/shadow/get", "$aws/things/+/shadow/update", "$aws/things/+/shadow/delete",
		"$aws/things/+/shadow/name/+/get", "$aws/things/+/shadow/name/+/update", "$aws/things/+/shadow/name/+/delete",
	}
}
