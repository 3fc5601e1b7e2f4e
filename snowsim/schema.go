package snowsim

// field kinds the simulator distinguishes.
const (
	kString = iota
	kRef
	kBool
	kJournal
	kDate
)

type fieldDef struct {
	kind int
	ref  string // referenced table for kRef
}

type tableDef struct {
	fields  map[string]fieldDef
	display string // the field shown as a reference's display value
	prefix  string // auto-number prefix ("" = no number)
	start   int    // first auto number
	digits  int
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
