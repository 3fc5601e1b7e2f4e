// Package cxonesim is a NICE CXone tenant in memory: the access-key token
// endpoint, the discovery document, Admin agents, the Real-Time Data API's
// active contacts, the Reporting API's completed contacts and the contact
// states, with injected faults. Scripted calls (POST /sim/contacts) move
// through CXone's states as the clock runs: queued, answered by an agent,
// maybe transferred, ended, then reported as completed.
//
// It is a product feature (`ctibridge cxonesim`) and what the cxone client's
// tests run against, so it answers like CXone where NICE's API definitions
// say how: paths under /incontactapi/services/vN.0/ (any N, as CXone serves
// versions side by side, matched without regard to case as CXone's servers
// do), reply envelopes and field names (agents, activeContacts with
// lastPollTime, completedContacts, contactStateDescriptions with their
// capitalised keys), tokens that expire, 401 for a missing, unknown, expired
// or revoked token, 429 without Retry-After.
//
// Where NICE's definitions do not say, the choice is the simulator's own and
// is documented here so nobody mistakes it for CXone's:
//
//   - Error bodies are {"error": "...", "error_description": "..."}, the
//     shape public CXone clients parse.
//   - A list with nothing to return answers 204 No Content, as older
//     inContact APIs do; the client accepts that and an empty 200 alike. An
//     agent id the tenant does not have answers 404.
//   - updatedSince returns the records that changed after it (not at it);
//     lastPollTime is the simulator's clock at the poll, to the millisecond.
//   - State ids and categories, transfer indicator ids, skill and point of
//     contact ids, endReason texts ("Contact Hung Up", "Transfer").
//   - An ended contact stays in contacts/active deltas (updatedSince given),
//     as stateName EndContact, for Options.EndedVisibleFor (60s); a full
//     poll shows only live contacts. After that only contacts/completed
//     has it.
//   - Completed contacts appear Options.ReportingDelay after they end (0 by
//     default; NICE says 15 minutes or more can pass).
//   - Tokens are JWT-shaped (header.claims.signature, with a tenantId
//     claim) but their signature means nothing: the simulator looks them up.
//
// It must never call out to CXone or anywhere else.
package cxonesim
