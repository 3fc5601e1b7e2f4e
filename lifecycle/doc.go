// Package lifecycle is the service: it takes Studio's events in (the intake,
// durable before any answer), brings ServiceNow in line with each call (the
// reconciler's workers), and shows where every call stands (the status read
// model and the error log).
//
// The reconciler is level-triggered: events only move a call's desired state
// forward; a worker claims a due call under a lease, compares what the
// events ask for with what ServiceNow is known to hold (synced.go), and does
// the steps still missing (steps.go): look up the caller, their open tasks
// and the agents without ever holding up the create, create or update the
// interaction, write each work note once, link related records once. Writes
// whose outcome was lost are settled by reading the record back, never by
// writing twice. Failures are classified and retried with backoff, or
// parked in the error log (retry.go).
//
// Files, by concept: intake.go (accepting events), status.go (the read
// model), worker.go (the worker loop, leases, housekeeping), steps.go (the
// steps of an attempt), desired.go (the interaction the events ask for),
// synced.go (what ServiceNow is known to hold), retry.go (the retry policy),
// servicenow.go (the Table API as the reconciler uses it), errorlog.go (the
// error log operators use), config.go.
//
// It never answers Studio before an event is on disk, never repeats a write
// that must not be applied twice without first finding out whether it was,
// and never talks to the database or ServiceNow but through store and
// servicenow.
package lifecycle
