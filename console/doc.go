// Package console is the agent's local web console: one page, served by
// the agent itself (`agent run --http`, `agent sim`), that shows live what
// the agent sees and does and, when allowed, lets a person change a desired
// value or (in simulation) inject a fault.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary
// (static/), with no framework, no CDN and no build step, so it works
// offline. It reads two endpoints: GET /api/status (a snapshot: connection,
// each shadow's desired/reported/delta, each key's result and latency,
// each sensor's value and recent history, recent events) and GET
// /api/events, a Server-Sent Events stream ("status" snapshots, throttled,
// and one "agent" event per agent.Event of any kind, so kinds added later
// show up without a change here). Writes are POST /api/desired (a desired
// update published through the shadow service, as a cloud application
// does: never a direct hardware write) and POST /api/fault.
//
// Security rules, enforced here and tested:
//   - read-only unless Options.Write (writes answer 403);
//   - a listener on a non-loopback address needs a token (Serve refuses to
//     start without one); the token is accepted as a Bearer header, an
//     X-Pinshadow-Token header or a cookie set by visiting any page with
//     ?token=, and compared in constant time;
//   - without a token, the Host header must be a loopback name (no DNS
//     rebinding of a page on 127.0.0.1);
//   - writes also pass a same-origin check (http.CrossOriginProtection) and
//     must be JSON;
//   - nothing secret reaches a response: the console builds its own views
//     from the status and never serialises the configuration.
package console
