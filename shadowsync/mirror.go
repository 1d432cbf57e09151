package shadowsync

import "time"

// mirror is the last known state of one shadow and the version gate for
// its deltas. It is pure: the Shadow feeds it decoded messages under its
// lock.
type mirror struct {
	known  bool // a document, or its absence, has been seen
	exists bool

	desired, reported, delta map[string]any
	// docVersion is the version desired and reported correspond to.
	docVersion int64
	// version is the newest version seen in any message.
	version int64

	// deltaVersion and lastDelta are the last delta delivered to the owner.
	deltaVersion int64
	lastDelta    map[string]any

	// needGet is set when an update reply skipped versions: the mirror
	// may have missed changes and should be refreshed with a get.
	needGet bool
}

// gateDelta decides whether a delta (from update/delta or a get's
// state.delta) at version v is delivered, and records it when it is. A
// delta older than the newest version seen is stale; one equal in version
// and content to the last one delivered is a duplicate. A delta sharing its
// version with an update reply is new: that update produced it.
func (m *mirror) gateDelta(v int64, d map[string]any) bool {
	if len(d) == 0 || v < m.version {
		return false
	}
	if v == m.deltaVersion && equal(d, m.lastDelta) {
		return false
	}
	m.deltaVersion, m.lastDelta = v, cloneMap(d)
	return true
}

// onDelta records an update/delta message and reports whether to deliver it.
func (m *mirror) onDelta(v int64, d map[string]any) bool {
	deliver := m.gateDelta(v, d)
	if v >= m.docVersion && v >= m.version {
		// Delta values are desired values at their paths: the mirror's
		// desired is at least this new there even without update/accepted
		// (on-demand shadows never see others' update replies).
		m.desired = applyPatch(m.desired, d)
		m.delta = cloneMap(d)
		m.exists = true
	}
	m.version = max(m.version, v)
	return deliver
}

// onDocument records a full document (get/accepted) at version v.
func (m *mirror) onDocument(v int64, desired, reported, delta map[string]any) {
	if m.known && v < m.docVersion {
		return
	}
	if v < m.version {
		// A newer delta or update reply overtook this get: the document is
		// already out of date, get it again.
		m.needGet = true
		if m.known {
			return
		}
	} else {
		m.needGet = false
	}
	m.known, m.exists = true, true
	m.desired, m.reported = cloneMap(desired), cloneMap(reported)
	m.delta = cloneMap(delta)
	if m.delta == nil {
		m.delta = deltaOf(m.desired, m.reported)
	}
	m.docVersion = v
	m.version = max(m.version, v)
}

// update is the state part of an update/accepted message.
type update struct {
	stateNull               bool // {"state": null}: everything cleared
	hasDesired, hasReported bool
	desired, reported       map[string]any // nil with has* = section cleared
}

// onAccepted applies an update/accepted at version v: the request's state
// as sent, merged like the service merged it.
func (m *mirror) onAccepted(v int64, u update) {
	defer func() { m.version = max(m.version, v) }()
	if !m.known || v <= m.docVersion {
		// Nothing to merge into yet (the get at Open brings the document),
		// or already included.
		return
	}
	if v > m.docVersion+1 {
		m.needGet = true // missed an update in between
	}
	m.exists = true
	if u.stateNull {
		m.desired, m.reported = nil, nil
	}
	if u.hasDesired {
		if u.desired == nil {
			m.desired = nil
		} else {
			m.desired = applyPatch(m.desired, u.desired)
		}
	}
	if u.hasReported {
		if u.reported == nil {
			m.reported = nil
		} else {
			m.reported = applyPatch(m.reported, u.reported)
		}
	}
	m.delta = deltaOf(m.desired, m.reported)
	m.docVersion = v
}

// onGone records that the shadow does not exist (delete/accepted, or a
// 404). Versions restart: a re-created shadow may start lower.
func (m *mirror) onGone() {
	*m = mirror{known: true}
}

// snapshot copies the mirror for a reader.
func (m *mirror) snapshot() Snapshot {
	return Snapshot{
		Known:    m.known,
		Exists:   m.exists,
		Version:  m.docVersion,
		Desired:  cloneMap(m.desired),
		Reported: cloneMap(m.reported),
		Delta:    cloneMap(m.delta),
		InSync:   m.known && len(m.delta) == 0,
	}
}

// Snapshot is a copy of a shadow's mirror: the last known document.
type Snapshot struct {
	// Known is true once a document (or the shadow's absence) was seen.
	Known bool
	// Exists is false when the shadow is known not to exist.
	Exists bool
	// Version is the version Desired and Reported correspond to.
	Version int64
	// Desired, Reported and Delta are nil when empty. Numbers are
	// json.Number.
	Desired, Reported, Delta map[string]any
	// InSync is true when the document is known and no desired value
	// differs from reported (the delta is empty).
	InSync bool
	// DesiredAge is how long ago the last message that can change desired
	// arrived (a delta, a get's document, an update reply with desired);
	// 0 before any. It times a desired change from its arrival, whichever
	// message brought it first.
	DesiredAge time.Duration
}
