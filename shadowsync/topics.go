package shadowsync

import (
	"fmt"
	"strings"

	"github.com/pinshadow/pinshadow/shadowdoc"
)

// Key identifies one shadow: a thing's classic shadow (Name == "") or one
// of its named shadows.
type Key struct {
	// Thing is the thing name.
	Thing string
	// Name is the named shadow's name; "" for the classic shadow.
	Name string
}

// String renders the key as thing or thing/name.
func (k Key) String() string {
	if k.Name == "" {
		return k.Thing
	}
	return k.Thing + "/" + k.Name
}

// Prefix returns the shadow's topic prefix, e.g. "$aws/things/T/shadow" or
// "$aws/things/T/shadow/name/N".
func (k Key) Prefix() string { return shadowdoc.TopicPrefix(k.Thing, k.Name) }

// Validate checks the names against AWS's rules.
func (k Key) Validate() error {
	if !shadowdoc.ValidThingName(k.Thing) {
		return fmt.Errorf("thing name %q: want 1–128 characters of a-z A-Z 0-9 : _ -", k.Thing)
	}
	if k.Name != "" && !shadowdoc.ValidShadowName(k.Name) {
		return fmt.Errorf("shadow name %q: want 1–64 characters of a-z A-Z 0-9 : _ -", k.Name)
	}
	return nil
}

// Response kinds, the last topic level of a response.
const (
	kindAccepted = "accepted"
	kindRejected = "rejected"
	kindDelta    = "delta"
)

// Operations.
const (
	opGet    = "get"
	opUpdate = "update"
	opDelete = "delete"
)

// responseFilters are the seven response topics a persistent shadow
// subscribes to (update/documents is left out: it repeats the whole
// document twice per update and the mirror does not need it).
func responseFilters(k Key) []string {
	p := k.Prefix()
	return []string{
		p + "/get/accepted", p + "/get/rejected",
		p + "/update/accepted", p + "/update/rejected", p + "/update/delta",
		p + "/delete/accepted", p + "/delete/rejected",
	}
}

// opFilters are one operation's /accepted and /rejected topics.
func opFilters(k Key, op string) []string {
	p := k.Prefix() + "/" + op
	return []string{p + "/accepted", p + "/rejected"}
}

// parseResponseTopic splits a shadow response topic; ok is false for
// anything else.
func parseResponseTopic(topic string) (k Key, op, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, "$aws/things/")
	if !found {
		return Key{}, "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 4 && parts[1] == "shadow":
		k, op, kind = Key{Thing: parts[0]}, parts[2], parts[3]
	case len(parts) == 6 && parts[1] == "shadow" && parts[2] == "name":
		k, op, kind = Key{Thing: parts[0], Name: parts[3]}, parts[4], parts[5]
	default:
		return Key{}, "", "", false
	}
	switch {
	case (op == opGet || op == opUpdate || op == opDelete) && (kind == kindAccepted || kind == kindRejected):
	case op == opUpdate && kind == kindDelta:
	default:
		return Key{}, "", "", false
	}
	return k, op, kind, true
}
