package snowsim

import (
	"fmt"
	"sort"
	"strings"
)

// Hardening selects which behaviours of a hardened production instance the
// simulator copies. Every field's zero value keeps the simulator's older,
// kinder behaviour; AllHardened turns every one on. Options.Hardening picks
// one explicitly; when it is nil, DefaultHardening applies, with a dataset's
// "hardening" keys on top.
type Hardening struct {
	// GenericDuplicate answers a create that repeats an existing sys_id
	// with the generic 403 "Error during insert of <table> (<display
	// value>)" that instances with glide.db.loguser=false give, instead of
	// the database's "Unique Key violation" text.
	GenericDuplicate bool `json:"genericDuplicate" yaml:"genericDuplicate"`
	// TableHierarchy stores customer_contact and csm_consumer_user rows in
	// sys_user with sys_class_name set: a sys_user query returns them too,
	// a customer_contact query only contacts.
	TableHierarchy bool `json:"tableHierarchy" yaml:"tableHierarchy"`
	// ChoiceLists replaces a value that is not on a choice field's list
	// (interaction state, type, direction and any choice field a dataset
	// declares) by the field's default; the write still succeeds.
	ChoiceLists bool `json:"choiceLists" yaml:"choiceLists"`
	// FieldRules applies a dataset's field-level write ACLs (a field a
	// user may not write is left unchanged) and its value rules (business
	// rules that set a field on write).
	FieldRules bool `json:"fieldRules" yaml:"fieldRules"`
	// HiddenRows applies a dataset's hiddenRows: the roles listed may
	// query the tables listed but see no row (200, X-Total-Count > 0, an
	// empty result).
	HiddenRows bool `json:"hiddenRows" yaml:"hiddenRows"`
	// DataPolicies refuses a write that leaves a field mandatory under one
	// of the dataset's data policies empty (403 "Data Policy Exception").
	DataPolicies bool `json:"dataPolicies" yaml:"dataPolicies"`
	// E164 treats interaction.caller_phone_number as an E.164 phone
	// number field: national and formatted numbers are stored as +digits,
	// anything else (letters, too few or too many digits) is refused.
	E164 bool `json:"e164" yaml:"e164"`
	// RelatedRecordFields gives interaction_related_record its task and
	// knowledge_article fields.
	RelatedRecordFields bool `json:"relatedRecordFields" yaml:"relatedRecordFields"`
	// Sessions opens a session (JSESSIONID and glide_user_route cookies)
	// for each authenticated request that carries no valid session cookie.
	Sessions bool `json:"sessions" yaml:"sessions"`
	// OAuthErrors answers every failed token request 401
	// {"error":"server_error","error_description":"access_denied"}.
	OAuthErrors bool `json:"oauthErrors" yaml:"oauthErrors"`
	// RefuseClientCredentials refuses the client_credentials grant, as an
	// instance does while glide.oauth.inbound.client.credential.grant_type.enabled
	// is false (its default).
	RefuseClientCredentials bool `json:"refuseClientCredentials" yaml:"refuseClientCredentials"`
	// RateLimitHeaders sends X-RateLimit-Limit, X-RateLimit-Reset and
	// X-RateLimit-Rule on every reply a rate-limit rule matches, not only
	// on the 429, and words the 429 as the documentation shows.
	RateLimitHeaders bool `json:"rateLimitHeaders" yaml:"rateLimitHeaders"`
	// WrapUp adds the wrap_up state: closing an interaction that is in
	// work_in_progress as closed_complete moves it to wrap_up, and it
	// closes (closed_complete) when Options.WrapUpDuration has passed or
	// when it is closed again.
	WrapUp bool `json:"wrapUp" yaml:"wrapUp"`
	// ACLErrorText words a refused create, write or delete as instances do:
	// 403 "Operation Failed", "ACL Exception Insert Failed due to security
	// constraints" (Update, Delete).
	ACLErrorText bool `json:"aclErrorText" yaml:"aclErrorText"`
}

// DefaultHardening is what a simulator does when Options.Hardening is nil:
// every behaviour of a hardened production instance, so that what passes
// against the simulator passes against an instance. WrapUp stays off: it
// is an instance's configuration, not hardening, and Options or a dataset
// turns it on.
func DefaultHardening() Hardening {
	h := AllHardened()
	h.WrapUp = false
	return h
}

// AllHardened turns on every behaviour of a hardened production instance.
func AllHardened() Hardening {
	var h Hardening
	for _, s := range h.switches() {
		*s.on = true
	}
	return h
}

// Hardened is the preset of Options that behaves like a hardened production
// instance in every way the simulator knows.
func Hardened() Options {
	h := AllHardened()
	return Options{Hardening: &h}
}

// hardeningSwitch names one behaviour for flags, dataset keys and docs.
type hardeningSwitch struct {
	key, flag, usage string
	on               *bool
}

// switches lists the behaviours in a stable order.
func (h *Hardening) switches() []hardeningSwitch {
	return []hardeningSwitch{
		{"genericDuplicate", "generic-duplicate", "a duplicate sys_id on create answers the generic \"Error during insert\" text", &h.GenericDuplicate},
		{"tableHierarchy", "table-hierarchy", "customer_contact and csm_consumer_user rows are sys_user rows with sys_class_name", &h.TableHierarchy},
		{"choiceLists", "choice-lists", "values not on a choice list are replaced by the field's default", &h.ChoiceLists},
		{"fieldRules", "field-rules", "apply the dataset's field write ACLs and value rules", &h.FieldRules},
		{"hiddenRows", "hidden-rows", "apply the dataset's hiddenRows (200, X-Total-Count > 0, no rows)", &h.HiddenRows},
		{"dataPolicies", "data-policies", "apply the dataset's data policies (403 Data Policy Exception)", &h.DataPolicies},
		{"e164", "e164", "interaction.caller_phone_number is an E.164 phone number field", &h.E164},
		{"relatedRecordFields", "related-record-fields", "interaction_related_record has task and knowledge_article", &h.RelatedRecordFields},
		{"sessions", "sessions", "each request without a valid session cookie opens a session", &h.Sessions},
		{"oauthErrors", "oauth-errors", "every OAuth failure is 401 server_error/access_denied", &h.OAuthErrors},
		{"refuseClientCredentials", "refuse-client-credentials", "refuse the client_credentials grant (glide.oauth.inbound.client.credential.grant_type.enabled=false)", &h.RefuseClientCredentials},
		{"rateLimitHeaders", "rate-limit-headers", "X-RateLimit-* headers, with X-RateLimit-Rule, on every rate-limited reply", &h.RateLimitHeaders},
		{"wrapUp", "wrap-up", "closing a work_in_progress interaction passes through wrap_up", &h.WrapUp},
		{"aclErrorText", "acl-error-text", "refused writes answer 403 Operation Failed with the ACL Exception text", &h.ACLErrorText},
	}
}

// apply sets the behaviours a dataset's hardening keys name.
func (h *Hardening) apply(keys map[string]bool) error {
	byKey := map[string]*bool{}
	for _, s := range h.switches() {
		byKey[s.key] = s.on
	}
	for k, v := range keys {
		p, ok := byKey[k]
		if !ok {
			return fmt.Errorf("hardening: unknown key %q (known: %s)", k, strings.Join(hardeningKeys(), ", "))
		}
		*p = v
	}
	return nil
}

func hardeningKeys() []string {
	var h Hardening
	var out []string
	for _, s := range h.switches() {
		out = append(out, s.key)
	}
	sort.Strings(out)
	return out
}

// summary says which behaviours are on, for the start-up line.
func (h Hardening) summary() string {
	var on []string
	for _, s := range h.switches() {
		if *s.on {
			on = append(on, s.flag)
		}
	}
	switch {
	case len(on) == 0:
		return "lenient (no hardening)"
	case len(on) == len(h.switches()):
		return "hardened (every switch on)"
	}
	return "hardened: " + strings.Join(on, ", ")
}
