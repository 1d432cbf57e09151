// Package jobrun runs AWS IoT Jobs executions on the device, one at a time.
//
// A Runner takes executions from a Source (the Jobs service over the
// agent's connection: start-next on start and on every notify-next), finds
// the Handler registered for the job document's "type", and runs it:
//
//	start-next (step timeout) → Handler.Check(document) → Job.Run(ctx, *Exec)
//	  → Exec.Progress: IN_PROGRESS + statusDetails, step timer refreshed
//	  → SUCCEEDED / FAILED (+ "reason") with statusDetails
//	unknown type or invalid document → REJECTED with "reason"
//
// Writing a job type (the contract other types build on):
//
//	type myHandler struct{}
//	func (myHandler) Check(doc json.RawMessage) (jobrun.Job, error) {
//	    // decode and validate, no I/O; wrap jobrun.ErrInvalid
//	    return jobrun.JobFunc(func(ctx context.Context, x *jobrun.Exec) (jobrun.Details, error) {
//	        x.Progress(ctx, jobrun.Details{"phase": "working"}) // persisted, sent, deadline pushed out
//	        return jobrun.Details{"result": "done"}, nil           // SUCCEEDED
//	    }), nil
//	}
//	runner.Register("my-type", myHandler{})
//
// The Job gets an Exec: job id, execution number, the document, the Host
// (the agent: its shadows through desired updates, as a cloud app would),
// the agent's clock (every wait goes through it, so fake clocks drive
// tests), a logger, and Progress. Its ctx ends at the step deadline (cause
// ErrStepTimeout), when the service refuses an update for the execution
// (ErrCanceled: cancelled or timed out in the cloud) or when the agent stops.
//
// Durability: every status is written to the state file (StateFile in the
// agent's state_dir, atomically: temp file, fsync, rename) before it is
// sent, and re-sent in order after an outage or a restart until the service
// accepts it or refuses it for good (ErrRefused: TerminalStateReached,
// VersionMismatch — logged and dropped). The next execution is started only
// once every status of the previous one is accepted, so there are never two.
// The running execution is on disk too: an agent stopped or killed during it
// calls the type's Resumer on restart, or sends FAILED with reason
// ReasonRestarted when the type is not resumable. (An execution started by
// the service but not yet written down when the agent died is started
// again by the next start-next and runs from the beginning.)
//
// Built-in types (each type's doc gives its document schema): SetDesired
// ("set-desired"), Pulse ("pulse"), RunHandler ("run-handler"), Download
// ("download-file"), ApplyConfig ("apply-config") and Reboot ("reboot").
// Runner.Snapshot tells `agent status` what runs, what ended last and how
// many statuses are still unsent.
//
// statusDetails (Details) follow AWS's limits: string values only, keys
// [a-zA-Z0-9:_-]{1,128}, values 1–1024 characters without control
// characters, at most 10 entries; Details.Clean and Tail enforce them.
package jobrun
