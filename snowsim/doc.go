// Package snowsim is a ServiceNow instance in memory: the REST Table API,
// OAuth tokens, users, roles and ACLs, rate limits and injected faults, over
// a dataset of callers, accounts, incidents and cases. It is a product
// feature (`ctibridge snowsim`) and what every test and benchmark of the
// bridge runs against, so it must answer like an instance down to envelopes,
// string values and refusals. It must never be kinder than an instance
// without saying so: each known kindness is a documented switch.
//
// # Hardening
//
// Real instances, hardened as production ones are, differ from the
// simulator's older behaviour in ways a client must survive. Each difference
// is a field of Hardening, a dataset key under "hardening" and a
// `ctibridge snowsim` flag; the zero value of each keeps the older
// behaviour, and Hardened() (--hardened) turns them all on:
//
//   - GenericDuplicate (--generic-duplicate): a create repeating an existing
//     sys_id answers 403 "Operation Failed", "Error during insert of
//     interaction (IMS0000123)", never the database's "Unique Key violation".
//   - TableHierarchy (--table-hierarchy): customer_contact and
//     csm_consumer_user rows are sys_user rows with sys_class_name; a sys_user
//     query returns them too, a customer_contact query only contacts (with
//     account). csm_consumer stays its own table. sys_ids do not change.
//   - ChoiceLists (--choice-lists): interaction.state (new, on_hold,
//     work_in_progress, closed_complete, closed_abandoned, and wrap_up with
//     WrapUp; default new), type (chat, phone, email, walk-up, messaging,
//     video; default chat) and direction (inbound, outbound; default inbound),
//     and any list a dataset declares under "choices": a value not on the list
//     is stored as the default, the write answers 2xx and the reply shows the
//     stored value. An insert without the field (or with "") gets the
//     default; an update may empty it.
//   - FieldRules (--field-rules): the dataset's "fieldACLs" (a field only
//     some roles may write; anyone else's value is left out, still 2xx) and
//     "rules" (business rules: when the record matches an encoded query, set
//     fields).
//   - HiddenRows (--hidden-rows): the dataset's "hiddenRows" (role → tables):
//     a list answers 200 with X-Total-Count counting the matches and no rows,
//     a read by sys_id 404.
//   - DataPolicies (--data-policies): the dataset's "dataPolicies": a write
//     leaving a mandatory field empty while the record matches the policy's
//     condition answers 403 "Operation Failed", "Data Policy Exception: The
//     following fields are mandatory: Assigned to". The default dataset
//     declares one: closed_complete interactions need assigned_to.
//   - E164 (--e164): interaction.caller_phone_number is an E.164 phone number
//     field. "+" and 7 to 15 digits, or a North American national number (10
//     digits, or 11 starting with 1), with spaces, dots, dashes or brackets,
//     is stored as +digits; anything else ("Anonymous", letters, too short)
//     is refused with 400 "Invalid phone number" and nothing is stored. The
//     documentation says letters are never valid and that an invalid number
//     cannot be saved (glide.phone_number_e164.strict, true by default), and
//     that national entry is allowed and stored internationally; it does not
//     say what the Table API answers, so the refusal's status and wording
//     are ours.
//   - RelatedRecordFields (--related-record-fields):
//     interaction_related_record gains task (a reference to any task:
//     incident, case, interaction) and knowledge_article (→ kb_knowledge,
//     a table that exists only then).
//   - Sessions (--sessions): an authenticated request without a live
//     JSESSIONID opens a session and gets JSESSIONID and glide_user_route
//     cookies; a request bringing one reuses it (the cookie alone
//     authenticates); sessions end after 30 idle minutes. /sim/stats counts
//     sessionsCreated.
//   - OAuthErrors (--oauth-errors): every failed token request answers 401
//     {"error":"server_error","error_description":"access_denied"}.
//   - RefuseClientCredentials (--refuse-client-credentials): the
//     client_credentials grant is refused, as while
//     glide.oauth.inbound.client.credential.grant_type.enabled is false.
//   - RateLimitHeaders (--rate-limit-headers): X-RateLimit-Limit,
//     X-RateLimit-Reset and X-RateLimit-Rule (the rule's sys_id) on every
//     reply the rate-limit rule counts, and the 429 worded as documented.
//   - WrapUp (--wrap-up): closing a work_in_progress interaction as
//     closed_complete moves it to wrap_up (still active); it closes when
//     Options.WrapUpDuration (--wrap-up-duration, 60s) has passed, or when
//     closed again.
//   - ACLErrorText (--acl-error-text): refused creates, writes and deletes
//     answer 403 "Operation Failed", "ACL Exception Insert (Update, Delete)
//     Failed due to security constraints"; refused table reads 403 "User Not
//     Authorized", "User is unauthorized to access table: X".
//
// # Capacity and the Batch API
//
// Options.Capacity (--capacity N) makes the simulator an instance of bounded
// capacity, as a node's API_INT semaphores do: at most N Table API and Batch
// API requests are served at once, up to N more wait (their latency includes
// the wait), and any beyond are answered 429 "Rate limit exceeded" with
// Retry-After: 1. /sim/stats reports peakConcurrent (with or without a
// capacity) and rejected.
//
// POST /api/now/v1/batch is the Batch API as its reference describes it
// (batch.go): sub-requests run one after another through the Table API
// handler as the batch's user, each counted against the hourly rate limit,
// the batch holding one capacity slot. Options.NoBatchAPI (--no-batch-api)
// turns it off, as instances that restrict it. /sim/stats counts each
// sub-request in total, batches apart, and HTTP round trips in httpRequests.
// Bodies in single quotes
// ({'short_description':'...'}), which the Table API reference's examples
// send, are read as instances read them.
//
// testdata/replies holds documented replies of real instances, each naming
// its source; TestDocumentedReplies drives a hardened simulator into each
// situation and compares, so the simulator cannot drift from them.
package snowsim
