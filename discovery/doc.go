// Package discovery is the device side of AWS IoT Greengrass discovery: it
// asks the discovery service (GET /greengrass/discover/thing/<thing> over
// mutual TLS, port 8443, or 443 with ALPN "x-amzn-http-ca") which
// Greengrass cores the thing may connect to, and connects to the first
// connectivity entry that answers.
//
// The pieces are separate so each is tested on its own:
//
//   - Parse and the Response model: groups, cores, connectivity entries and
//     group CAs, with the helpers the v1 SDK offers (all cores, all CAs by
//     group, every candidate in order). Pure; fuzzed.
//   - Client.Discover: one request, net/http with the device certificate.
//     Statuses become errors callers test with errors.Is: ErrBadRequest
//     (400), ErrUnauthorized (401), ErrNotFound (404), ErrThrottled (429);
//     every status error is a *StatusError (status and a bounded body);
//     ErrTimeout when the configured timeout or the caller's deadline ends
//     it; ErrResponseTooLarge when the body exceeds the bound.
//   - Retry.Do: the v1 sample's policy (up to 10 tries, waiting 1, 2, 4 … s
//     capped at 32 s), stopping at once on 400, 401 and 404 (see
//     Permanent), on an injectable sleeper.
//   - Router: an iot.Router that sends each attempt of one long-lived
//     client to a connectivity entry of the answer, in order, trusting only
//     the entry's group CAs and verifying the core's certificate against
//     the entry's HostAddress (Greengrass issues the core's MQTT server
//     certificate for its connectivity addresses); it stays on the entry
//     that worked, tries the fallback (the IoT Core endpoint) after the
//     cores, and asks the API again after a whole round failed,
//     rate-limited: how the agent follows a core that moved.
//
// The local cloud (package localcloud, `agent cloud --discovery-listen`)
// serves the same endpoint and describes itself as a core, so the whole
// path runs locally.
package discovery
