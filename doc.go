// Package ctibridge is the domain of the bridge between NICE CXone voice calls
// and ServiceNow interactions: the events CXone Studio reports for a call
// (queued, answered, transferred, released), the call they add up to and
// the interaction state it asks for, who the caller and the agents are, the
// derived sys_ids and screen-pop URLs, the steps of a call's ServiceNow work,
// and the small interfaces the service depends on (CallerFinder,
// AgentFinder, Warner).
//
// Everything here is plain values and pure functions: the final call depends
// only on the set of its events (Summarize). It must never do I/O, keep
// state, or import another package of this module; the packages named for a
// dependency (servicenow, store) or a concern (callerid, agentmap,
// lifecycle, api, console) build on it.
package ctibridge
