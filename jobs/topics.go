package jobs

import (
	"regexp"
	"strings"
)

// NextJobID is the job ID that makes Describe return the thing's next
// pending execution (IN_PROGRESS first, then the oldest QUEUED).
const NextJobID = "$next"

// Operation names, as used in RejectedError.Op and TimeoutError.Op.
const (
	OpGetPending = "get"
	OpStartNext  = "start-next"
	OpDescribe   = "describe"
	OpUpdate     = "update"
)

var jobIDPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ValidJobID reports whether id is a valid AWS job ID (1–64 characters of
// a-z A-Z 0-9 _ -).
func ValidJobID(id string) bool { return jobIDPattern.MatchString(id) }

// TopicPrefix returns "$aws/things/<thing>/jobs/", the prefix of every Jobs
// topic of the thing.
func TopicPrefix(thing string) string { return "$aws/things/" + thing + "/jobs/" }

// requestTopic is the topic a request for op (and jobID) is published to.
func requestTopic(thing, op, jobID string) string {
	switch op {
	case OpDescribe:
		return TopicPrefix(thing) + jobID + "/get"
	case OpUpdate:
		return TopicPrefix(thing) + jobID + "/update"
	}
	return TopicPrefix(thing) + op
}

// replyFilters are the subscriptions a client holds for its thing: the
// /accepted and /rejected replies of every request, notify and
// notify-next.
func replyFilters(thing string) []string {
	p := TopicPrefix(thing)
	return []string{
		p + "get/+", p + "start-next/+", p + "+/get/+", p + "+/update/+",
		p + "notify", p + "notify-next",
	}
}

// Kinds of a parsed reply topic.
const (
	kindAccepted   = "accepted"
	kindRejected   = "rejected"
	kindNotify     = "notify"
	kindNotifyNext = "notify-next"
)

// parseReplyTopic splits a reply topic of thing into its operation, job ID
// and kind (accepted, rejected, notify, notify-next).
func parseReplyTopic(thing, topic string) (op, jobID, kind string, ok bool) {
	rest, found := strings.CutPrefix(topic, TopicPrefix(thing))
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && (parts[0] == kindNotify || parts[0] == kindNotifyNext):
		return "", "", parts[0], true
	case len(parts) == 2 && (parts[0] == OpGetPending || parts[0] == OpStartNext):
		op, kind = parts[0], parts[1]
	case len(parts) == 3 && (parts[1] == "get" || parts[1] == "update"):
		op, jobID, kind = OpDescribe, parts[0], parts[2]
		if parts[1] == "update" {
			op = OpUpdate
		}
	default:
		return "", "", "", false
	}
	if kind != kindAccepted && kind != kindRejected {
		return "", "", "", false
	}
	return op, jobID, kind, true
}
