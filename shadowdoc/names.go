package shadowdoc

// Names and topics of shadows, as AWS IoT spells them: the device's clients
// (shadowsync, jobs) and the local cloud check and build them with these,
// so the device never needs the emulator's packages to speak the protocol.

const (
	topicRoot     = "$aws/things/"
	maxThingName  = 128
	maxShadowName = 64
)

// ValidThingName reports whether s is a valid AWS IoT thing name:
// 1–128 bytes of [a-zA-Z0-9:_-].
func ValidThingName(s string) bool { return validName(s, maxThingName) }

// ValidShadowName reports whether s is a valid named-shadow name:
// 1–64 bytes of [a-zA-Z0-9:_-].
func ValidShadowName(s string) bool { return validName(s, maxShadowName) }

func validName(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TopicPrefix returns a shadow's topic prefix: "$aws/things/T/shadow" for
// the classic shadow (name ""), "$aws/things/T/shadow/name/N" for a named one.
func TopicPrefix(thing, name string) string {
	if name == "" {
		return topicRoot + thing + "/shadow"
	}
	return topicRoot + thing + "/shadow/name/" + name
}
