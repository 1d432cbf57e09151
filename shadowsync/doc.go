// Package shadowsync is the device side of the AWS IoT Device Shadow
// service: a client that talks to classic and named shadows over one MQTT
// connection, keeps a local mirror of each, delivers delta notifications,
// and reports the device's state reliably.
//
// # Requests
//
// Get, Update and Delete publish a request carrying a fresh clientToken
// (unique per request, at most 64 bytes) and wait for the response with
// that token on the operation's /accepted or /rejected topic. Responses to
// other clients' tokens arrive on the same topics (AWS broadcasts them) and
// are used only to keep the mirror current. A rejection is a
// *RejectedError carrying AWS's code and message; errors.Is matches it
// against ErrNotFound, ErrConflict, ErrBadRequest and the other sentinels.
// No answer within the request timeout (or before ctx ends) is a
// *TimeoutError (errors.Is(err, ErrTimeout)).
//
// # Subscriptions
//
// A persistent shadow (the default) subscribes once, in one batch, to its
// seven response topics — get, update and delete /accepted and /rejected,
// and update/delta — for the life of the connection. An on-demand shadow
// (ShadowOptions.OnDemand, the v1 SDK's isPersistentSubscribe=false)
// subscribes only to update/delta up front and to an operation's
// /accepted and /rejected for the duration of one request, unsubscribing
// after the token-matched response or the timeout. Subscriptions are
// reference-counted, so concurrent requests share them.
//
// # Deltas and versions
//
// Deltas go to Shadow.Deltas, a channel that never blocks the MQTT receive
// path: it holds the newest undelivered delta, and because every AWS delta
// carries the whole current difference between desired and reported, a
// newer delta replaces an older one without losing anything. A delta older
// than the newest version seen is stale and dropped; one whose version and
// content equal the last delta delivered is a duplicate and dropped. A delta
// that shares its version with an update reply is delivered: the update
// that produced that version is the one that made desired and reported
// differ (the AWS IoT Python SDK v1 drops it; see python SDK issue #94 and
// embedded-C issues #32 and #90).
//
// # Reporting and reconnects
//
// Shadow.Report queues a change of the device's reported state. Changes are
// coalesced to the latest value per key (a nested merge where null deletes a
// key, exactly as AWS applies them) and sent at most RatePerThing requests
// per second per thing, shared by all of the thing's shadows (AWS allows 20).
// A rejected update with 409 Version conflict makes the shadow get the
// current document and retry. After every (re)connect — the owner calls
// Client.Reconnected from its connection's online event — each shadow gets
// its document, delivers a delta event (Delta.Resync) for desired changes
// made while it was offline, and re-publishes its full reported state
// unless the fetched document already holds all of it.
//
// # Mirror
//
// Shadow.Mirror returns a copy of the last known document: desired,
// reported, delta, version and whether it is in sync. It follows get
// replies, every update/accepted (the device's own and, with persistent
// subscriptions, everyone else's: AWS broadcasts them), deltas and deletes.
// When an update reply skips versions, or a get is overtaken by a newer
// message, the shadow gets the document again.
//
// # Connections
//
// The client needs only the small Conn interface: publish, batched
// subscribe and unsubscribe with a context. Conn must keep subscriptions
// across reconnects and must call handlers from its own goroutines; the
// handlers this package installs never block. IOT adapts package iot's
// connection; NewIOT also follows its online events.
package shadowsync
