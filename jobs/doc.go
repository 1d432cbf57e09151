// Package jobs is the device side of AWS IoT Jobs over MQTT: a client for
// one thing that lists, describes, starts and updates the thing's job
// executions and delivers the service's notify and notify-next messages.
//
// # Topics
//
// Every topic starts with $aws/things/<thing>/jobs/. Requests go to
//
//	get                 GetPendingJobExecutions  (Client.GetPending)
//	start-next          StartNextPendingJobExecution (Client.StartNext)
//	<jobId>/get         DescribeJobExecution (Client.Describe; jobId may be $next)
//	<jobId>/update      UpdateJobExecution (Client.Update)
//
// and are answered on the same topic plus /accepted or /rejected. The
// service publishes notify (the pending list changed) and notify-next (the
// next execution changed). New subscribes once, in one batch, to
// get/+, start-next/+, +/get/+, +/update/+, notify and notify-next; the
// connection (package iot) restores them on every reconnect.
//
// # Requests and errors
//
// Each request carries a fresh clientToken (unique per request and
// client) and waits for the reply with that token; replies to other
// clients' tokens are ignored. Numbers are sent as JSON numbers, as AWS
// types them; replies may carry numbers or strings (the v1 Python SDK sent
// strings) and timestamps as epoch seconds. A rejection is a
// *RejectedError with AWS's code, message and, when sent, the execution's
// state; errors.Is matches it against ErrVersionMismatch,
// ErrInvalidStateTransition, ErrTerminalStateReached, ErrResourceNotFound
// and the other sentinels. No reply within Options.Timeout (or before ctx
// ends) is a *TimeoutError (errors.Is(err, ErrTimeout)).
//
// # Notifications
//
// Options.OnNotify and Options.OnNotifyNext are called on one goroutine
// the client owns, never on the MQTT receive path. Notifications sent
// while the device is offline are lost, so on New and on every
// Reconnected the client fetches the pending list and $next itself and
// delivers them too (NextJob.Resync); Options.NoResync turns that off.
//
// # The v1 Python SDK
//
// AWSIoTMQTTThingJobsClient (AWSIoTPythonSDK 1.5) maps onto this package:
//
//	AWSIoTMQTTThingJobsClient(clientID, thingName, QoS, …)  New(ctx, conn, thingName, Options{AtMostOnce: QoS == 0})
//	createJobSubscription(callback, NOTIFY)                 Options.OnNotify
//	createJobSubscription(callback, NOTIFY_NEXT)            Options.OnNotifyNext
//	createJobSubscription(callback, <request>, ACCEPTED…)   not needed: New subscribes every reply topic
//	sendJobsQuery(GET_PENDING)                              Client.GetPending
//	sendJobsQuery(DESCRIBE, jobId) / sendJobsDescribe        Client.Describe(ctx, jobId, DescribeOptions{…})
//	sendJobsStartNext(statusDetails, stepTimeoutInMinutes)   Client.StartNext(ctx, StartNextOptions{…})
//	sendJobsUpdate(jobId, status, statusDetails, expectedVersion, executionNumber,
//	    includeJobExecutionState, includeJobDocument, stepTimeoutInMinutes)
//	                                                        Client.Update(ctx, jobId, Update{…})
//
// Differences: the v1 client used its MQTT client ID as the clientToken of
// every request and returned only whether the publish succeeded, leaving
// the caller to match replies in callbacks; this client uses a token per
// request and returns the typed reply or error. The v1 client sent
// expectedVersion and executionNumber as strings; this one sends numbers.
package jobs
