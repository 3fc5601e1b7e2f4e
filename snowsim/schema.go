package snowsim

import "strings"

// field kinds the simulator distinguishes.
const (
	kString = iota
	kRef
	kBool
	kJournal
	kDate
)

type fieldDef struct {
	kind    int
	ref     string      // referenced table for kRef
	choices *choiceList // non-nil for a choice field (enforced with Hardening.ChoiceLists)
	e164    bool        // an E.164 phone number field (enforced with Hardening.E164)
}

// choiceList is a choice field's values and the default that replaces a
// value not on the list.
type choiceList struct {
	values []string
	dflt   string
}

func (c *choiceList) has(v string) bool {
	for _, x := range c.values {
		if x == v {
			return true
		}
	}
	return false
}

type tableDef struct {
	fields  map[string]fieldDef
	display string // the field shown as a reference's display value
	prefix  string // auto-number prefix ("" = no number)
	start   int    // first auto number
	digits  int
	// With Hardening.TableHierarchy, a table extending sys_user keeps its
	// rows in storage ("sys_user") with sys_class_name = class; a query on
	// it returns the rows whose class is in classes (nil = every row).
	storage string
	class   string
	classes []string
}

var sysFields = map[string]fieldDef{
	"sys_id": {}, "sys_created_on": {kind: kDate}, "sys_created_by": {}, "sys_updated_on": {kind: kDate},
	"sys_updated_by": {}, "sys_mod_count": {},
}

func f(kind int) fieldDef       { return fieldDef{kind: kind} }
func ref(table string) fieldDef { return fieldDef{kind: kRef, ref: table} }
func fields(m map[string]fieldDef) map[string]fieldDef {
	for k, v := range sysFields {
		m[k] = v
	}
	return m
}

var personFields = func() map[string]fieldDef {
	return map[string]fieldDef{
		"user_name": f(kString), "first_name": f(kString), "last_name": f(kString), "name": f(kString), "email": f(kString),
		"phone": f(kString), "mobile_phone": f(kString), "home_phone": f(kString), "active": f(kBool), "title": f(kString),
		"user_password": f(kString), "locked_out": f(kBool),
	}
}

// schema is the part of ServiceNow's data dictionary the simulator knows.
// Writing a field a table does not have is silently ignored, as on an instance.
var schema = map[string]*tableDef{
	"sys_user":      {fields: fields(personFields()), display: "name"},
	"sys_user_role": {fields: fields(map[string]fieldDef{"name": f(kString), "description": f(kString)}), display: "name"},
	"sys_user_has_role": {fields: fields(map[string]fieldDef{"user": ref("sys_user"), "role": ref("sys_user_role"),
		"state": f(kString)}), display: "role"},
	"customer_account": {fields: fields(map[string]fieldDef{"name": f(kString), "number": f(kString), "phone": f(kString),
		"active": f(kBool)}), display: "name", prefix: "ACCT", start: 1001, digits: 7},
	"customer_contact": {fields: fields(func() map[string]fieldDef {
		m := personFields()
		m["account"] = ref("customer_account")
		return m
	}()), display: "name"},
	"csm_consumer": {fields: fields(map[string]fieldDef{"first_name": f(kString), "last_name": f(kString), "name": f(kString),
		"email": f(kString), "business_phone": f(kString), "home_phone": f(kString), "mobile_phone": f(kString),
		"active": f(kBool), "number": f(kString)}), display: "name", prefix: "CSM", start: 1001, digits: 7},
	"incident": {fields: fields(map[string]fieldDef{"number": f(kString), "short_description": f(kString), "caller_id": ref("sys_user"),
		"state": f(kString), "active": f(kBool), "priority": f(kString), "assigned_to": ref("sys_user"),
		"work_notes": f(kJournal), "comments": f(kJournal), "opened_at": f(kDate)}), display: "number", prefix: "INC", start: 10001, digits: 7},
	"sn_customerservice_case": {fields: fields(map[string]fieldDef{"number": f(kString), "short_description": f(kString),
		"contact": ref("customer_contact"), "account": ref("customer_account"), "consumer": ref("csm_consumer"),
		"state": f(kString), "active": f(kBool), "priority": f(kString), "work_notes": f(kJournal), "comments": f(kJournal),
		"opened_at": f(kDate)}), display: "number", prefix: "CS", start: 1001, digits: 7},
	"interaction": {fields: fields(map[string]fieldDef{"number": f(kString), "state": f(kString), "type": f(kString),
		"direction": f(kString), "caller_phone_number": f(kString), "opened_for": ref("sys_user"), "assigned_to": ref("sys_user"),
		"contact": ref("customer_contact"), "account": ref("customer_account"), "consumer": ref("csm_consumer"),
		"short_description": f(kString), "work_notes": f(kJournal), "opened_at": f(kDate), "closed_at": f(kDate),
		"active": f(kBool), "channel": f(kString), "u_skill": f(kString), "u_dnis": f(kString)}), display: "number", prefix: "IMS", start: 1, digits: 7},
	"interaction_related_record": {fields: fields(map[string]fieldDef{"interaction": ref("interaction"), "document_table": f(kString),
		"document_id": f(kString), "type": f(kString)}), display: "document_table"},
	"sys_journal_field": {fields: fields(map[string]fieldDef{"element_id": f(kString), "name": f(kString), "element": f(kString),
		"value": f(kString)}), display: "value"},
}

// Tables a hardened instance has on top of the base schema.
var (
	// csm_consumer_user extends sys_user (with Hardening.TableHierarchy).
	consumerUserDef = &tableDef{fields: fields(personFields()), display: "name"}
	// kb_knowledge is the target of interaction_related_record.knowledge_article.
	knowledgeDef = &tableDef{fields: fields(map[string]fieldDef{"number": f(kString), "short_description": f(kString),
		"active": f(kBool)}), display: "number", prefix: "KB", start: 10001, digits: 7}
	// task is the parent of incident and sn_customerservice_case; only its
	// sys_ids matter here, as the target of interaction_related_record.task.
	taskTables = []string{"incident", "sn_customerservice_case", "interaction"}
)

// Choice lists of the interaction table as a base instance defines them.
// wrap_up is added with Hardening.WrapUp. The type list beyond chat and
// phone, and its default, are not documented; a dataset can replace any of
// these with its own "choices".
var interactionChoices = map[string]*choiceList{
	"state":     {values: []string{"new", "on_hold", "work_in_progress", "closed_complete", "closed_abandoned"}, dflt: "new"},
	"type":      {values: []string{"chat", "phone", "email", "walk-up", "messaging", "video"}, dflt: "chat"},
	"direction": {values: []string{"inbound", "outbound"}, dflt: "inbound"},
}

// datasetTables is every table a dataset may fill, whatever the hardening.
func datasetTable(name string) bool {
	return schema[name] != nil || name == "csm_consumer_user" || name == "kb_knowledge"
}

// schemaFor builds a simulator's data dictionary: the base schema changed by
// the hardening it runs with and the choice lists its dataset declares.
func schemaFor(h Hardening, d *Dataset) map[string]*tableDef {
	out := map[string]*tableDef{}
	for name, def := range schema {
		out[name] = cloneDef(def)
	}
	if h.TableHierarchy {
		out["csm_consumer_user"] = cloneDef(consumerUserDef)
		for _, name := range []string{"sys_user", "customer_contact", "csm_consumer_user"} {
			def := out[name]
			def.fields["sys_class_name"] = f(kString)
			def.storage, def.class = "sys_user", name
			if name != "sys_user" {
				def.classes = []string{name}
			}
		}
	}
	if h.RelatedRecordFields {
		rr := out["interaction_related_record"]
		rr.fields["task"] = ref("task")
		rr.fields["knowledge_article"] = ref("kb_knowledge")
		out["kb_knowledge"] = cloneDef(knowledgeDef)
	}
	if h.E164 {
		fd := out["interaction"].fields["caller_phone_number"]
		fd.e164 = true
		out["interaction"].fields["caller_phone_number"] = fd
	}
	if h.ChoiceLists {
		for field, c := range interactionChoices {
			cl := &choiceList{values: append([]string(nil), c.values...), dflt: c.dflt}
			if field == "state" && h.WrapUp {
				cl.values = append(cl.values, "wrap_up")
			}
			fd := out["interaction"].fields[field]
			fd.choices = cl
			out["interaction"].fields[field] = fd
		}
		for key, c := range d.Choices {
			tableName, field, _ := strings.Cut(key, ".")
			def := out[tableName]
			if def == nil {
				continue
			}
			fd, ok := def.fields[field]
			if !ok {
				continue
			}
			fd.choices = &choiceList{values: append([]string(nil), c.Values...), dflt: c.Default}
			def.fields[field] = fd
		}
	}
	return out
}

func cloneDef(def *tableDef) *tableDef {
	cp := *def
	cp.fields = make(map[string]fieldDef, len(def.fields))
	for k, v := range def.fields {
		cp.fields[k] = v
	}
	return &cp
}
