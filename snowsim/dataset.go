package snowsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge/encquery"
	"go.yaml.in/yaml/v3"
)

// Dataset is the simulator's initial content: users who can log in, roles and
// the rights they grant, OAuth clients, and rows per table. It loads from JSON
// or YAML (see the README's "Simulator dataset" section).
type Dataset struct {
	Users        []User                         `json:"users" yaml:"users"`
	Roles        map[string]Role                `json:"roles" yaml:"roles"`
	OAuthClients []OAuthClient                  `json:"oauthClients" yaml:"oauthClients"`
	Tables       map[string][]map[string]string `json:"tables" yaml:"tables"`

	// Hardening switches behaviours on or off by key (genericDuplicate,
	// choiceLists...), over DefaultHardening(), when Options.Hardening is
	// nil.
	Hardening map[string]bool `json:"hardening,omitempty" yaml:"hardening,omitempty"`
	// Choices declares choice lists, keyed "table.field" (with
	// Hardening.ChoiceLists); they replace the built-in ones of the same
	// field.
	Choices map[string]Choice `json:"choices,omitempty" yaml:"choices,omitempty"`
	// FieldACLs are field-level write ACLs (with Hardening.FieldRules).
	FieldACLs []FieldACL `json:"fieldACLs,omitempty" yaml:"fieldACLs,omitempty"`
	// Rules are business rules that set fields on write (with
	// Hardening.FieldRules).
	Rules []Rule `json:"rules,omitempty" yaml:"rules,omitempty"`
	// DataPolicies make fields mandatory when a record matches a condition
	// (with Hardening.DataPolicies).
	DataPolicies []DataPolicy `json:"dataPolicies,omitempty" yaml:"dataPolicies,omitempty"`
	// HiddenRows lists, per role, tables the role may query without seeing
	// any row (with Hardening.HiddenRows): 200, X-Total-Count counting the
	// matches, an empty result, and 404 for a record read by sys_id.
	HiddenRows map[string][]string `json:"hiddenRows,omitempty" yaml:"hiddenRows,omitempty"`
}

// Choice is a choice list: the values a field accepts and the default that
// replaces any other value.
type Choice struct {
	Values  []string `json:"values" yaml:"values"`
	Default string   `json:"default" yaml:"default"`
}

// FieldACL lets only users holding one of the Write roles (or admin) write
// Table.Field; anyone else's value for it is silently left out of the write,
// which still succeeds, and the reply shows the stored value.
type FieldACL struct {
	Table string   `json:"table" yaml:"table"`
	Field string   `json:"field" yaml:"field"`
	Write []string `json:"write" yaml:"write"`
}

// Rule is a business rule running before a create or write on Table: when
// the record as it would be stored matches the encoded query When ("" =
// always), the fields in Set take those values.
type Rule struct {
	Name  string            `json:"name" yaml:"name"`
	Table string            `json:"table" yaml:"table"`
	When  string            `json:"when" yaml:"when"`
	Set   map[string]string `json:"set" yaml:"set"`
}

// DataPolicy refuses a create or write on Table that leaves one of the
// Mandatory fields empty while the record matches the encoded query When
// ("" = always): 403 "Operation Failed", "Data Policy Exception: The
// following fields are mandatory: Assigned to" (fields by their default
// labels).
type DataPolicy struct {
	Name      string   `json:"name" yaml:"name"`
	Table     string   `json:"table" yaml:"table"`
	When      string   `json:"when" yaml:"when"`
	Mandatory []string `json:"mandatory" yaml:"mandatory"`
}

// User is an account that can authenticate (basic or OAuth password grant).
// Fields are its other sys_user columns (name, email, phone...).
type User struct {
	SysID    string            `json:"sys_id,omitempty" yaml:"sys_id,omitempty"`
	UserName string            `json:"user_name" yaml:"user_name"`
	Password string            `json:"password" yaml:"password"`
	Roles    []string          `json:"roles" yaml:"roles"`
	Fields   map[string]string `json:"fields,omitempty" yaml:"fields,omitempty"`
}

// Role grants rights per table: a string of r (read), c (create), w (write),
// d (delete); table "*" means every table. A key "TABLE:rows" holding an
// encoded query is a row-level read ACL: the role sees only the rows that
// match it. Hidden rows drop out of lists after the query and the page are
// taken (a page may come back short, X-Total-Count still counts them) and
// a hidden record read by sys_id answers 404, as on an instance.
type Role map[string]string

// OAuthClient is an application registry entry. RunAs is the user that the
// client-credentials grant acts as.
type OAuthClient struct {
	ID     string `json:"id" yaml:"id"`
	Secret string `json:"secret" yaml:"secret"`
	RunAs  string `json:"runAs" yaml:"runAs"`
}

// BuiltinUsers are present in every simulator unless a dataset defines a
// user of the same name: admin/admin (every right) and
// cti_integration/cti_integration (the integration user's rights).
func BuiltinUsers() []User {
	return []User{
		{UserName: "admin", Password: "admin", Roles: []string{"admin"}, Fields: map[string]string{"name": "System Administrator", "email": "admin@example.com"}},
		{UserName: "cti_integration", Password: "cti_integration", Roles: []string{"cti_integration"}, Fields: map[string]string{"name": "CTI Integration"}},
	}
}

// BuiltinRoles are always defined; a dataset may add or override roles.
func BuiltinRoles() map[string]Role {
	return map[string]Role{
		"admin": {"*": "rcwd"},
		// Exactly the rights the integration guide lists, plus reading
		// interactions back (for idempotent creates).
		"cti_integration": {
			"sys_user": "r", "customer_contact": "r", "customer_account": "r", "csm_consumer": "r",
			"incident": "r", "sn_customerservice_case": "r", "interaction": "rcw", "interaction_related_record": "c",
		},
		"itil":  {"incident": "rcw", "sys_user": "r", "interaction": "rcw", "interaction_related_record": "rc"},
		"agent": {"interaction": "rw", "sys_user": "r", "incident": "r", "sn_customerservice_case": "r"},
	}
}

func (d *Dataset) roles() map[string]Role {
	out := BuiltinRoles()
	for k, v := range d.Roles {
		out[k] = v
	}
	return out
}

// LoadDataset reads a dataset file, JSON or YAML by extension.
func LoadDataset(path string) (*Dataset, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	d := &Dataset{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		err = json.Unmarshal(b, d)
	case ".yaml", ".yml":
		err = yaml.Unmarshal(b, d)
	default:
		return nil, fmt.Errorf("dataset %s: must end in .json, .yaml or .yml", path)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	return d, nil
}

// check reports the first thing wrong in a dataset, naming it.
func (d *Dataset) check() error {
	for t := range d.Tables {
		if !datasetTable(t) {
			return fmt.Errorf("unknown table %q", t)
		}
	}
	roles := d.roles()
	for i, u := range d.Users {
		if u.UserName == "" {
			return fmt.Errorf("users[%d] has no user_name", i)
		}
		for _, r := range u.Roles {
			if _, ok := roles[r]; !ok {
				return fmt.Errorf("user %s has unknown role %q (define it under roles)", u.UserName, r)
			}
		}
	}
	for name, r := range d.Roles {
		for table, ops := range r {
			if strings.HasSuffix(table, ":rows") {
				continue
			}
			if table != "*" && !datasetTable(table) {
				return fmt.Errorf("role %s names unknown table %q", name, table)
			}
			if strings.Trim(ops, "rcwd") != "" {
				return fmt.Errorf("role %s on %s: rights are letters from rcwd, got %q", name, table, ops)
			}
		}
	}
	for _, c := range d.OAuthClients {
		if c.ID == "" || c.Secret == "" {
			return fmt.Errorf("an OAuth client needs an id and a secret")
		}
	}
	var h Hardening
	if err := h.apply(d.Hardening); err != nil {
		return err
	}
	full := schemaFor(AllHardened(), &Dataset{})
	field := func(where, table, name string) error {
		def := full[table]
		if def == nil {
			return fmt.Errorf("%s: unknown table %q", where, table)
		}
		if _, ok := def.fields[name]; !ok {
			return fmt.Errorf("%s: table %s has no field %q", where, table, name)
		}
		return nil
	}
	query := func(where, q string) error {
		if _, err := encquery.Parse(q); q != "" && err != nil {
			return fmt.Errorf("%s: when: %w", where, err)
		}
		return nil
	}
	for key, c := range d.Choices {
		table, name, ok := strings.Cut(key, ".")
		if !ok {
			return fmt.Errorf("choices: key %q must be table.field", key)
		}
		if err := field("choices."+key, table, name); err != nil {
			return err
		}
		if len(c.Values) == 0 || !slices.Contains(c.Values, c.Default) {
			return fmt.Errorf("choices.%s: the default %q must be one of the values %q", key, c.Default, c.Values)
		}
	}
	for i, a := range d.FieldACLs {
		where := fmt.Sprintf("fieldACLs[%d]", i)
		if err := field(where, a.Table, a.Field); err != nil {
			return err
		}
		for _, r := range a.Write {
			if _, ok := roles[r]; !ok {
				return fmt.Errorf("%s: unknown role %q", where, r)
			}
		}
	}
	for i, r := range d.Rules {
		where := fmt.Sprintf("rules[%d]", i)
		if len(r.Set) == 0 {
			return fmt.Errorf("%s: set names no field", where)
		}
		for k := range r.Set {
			if err := field(where+".set", r.Table, k); err != nil {
				return err
			}
		}
		if err := query(where, r.When); err != nil {
			return err
		}
	}
	for i, p := range d.DataPolicies {
		where := fmt.Sprintf("dataPolicies[%d]", i)
		if len(p.Mandatory) == 0 {
			return fmt.Errorf("%s: mandatory names no field", where)
		}
		for _, k := range p.Mandatory {
			if err := field(where+".mandatory", p.Table, k); err != nil {
				return err
			}
		}
		if err := query(where, p.When); err != nil {
			return err
		}
	}
	for role, tables := range d.HiddenRows {
		if _, ok := roles[role]; !ok {
			return fmt.Errorf("hiddenRows: unknown role %q", role)
		}
		for _, t := range tables {
			if !datasetTable(t) {
				return fmt.Errorf("hiddenRows.%s: unknown table %q", role, t)
			}
		}
	}
	return nil
}

// base is the fixed clock of generated data, so datasets are reproducible.
var base = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func stamp(i int) string { return base.Add(time.Duration(i) * time.Minute).Format(timeFormat) }

// Agents in the default dataset: CXone user name = ServiceNow user_name.
var defaultAgents = []struct{ user, first, last string }{
	{"jdoe", "John", "Doe"}, {"asmith", "Anna", "Smith"}, {"bwayne", "Bruce", "Wayne"},
	{"ckent", "Clark", "Kent"}, {"dprince", "Diana", "Prince"},
}

var firstNames = []string{"Alice", "Ben", "Chloe", "Dan", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira", "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara"}
var lastNames = []string{"Adams", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Iyer", "Jones", "Khan", "Lopez", "Müller", "Nguyen", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Taylor"}

// usFormats spells a 10-digit NANP number the ways instances store it.
var usFormats = []func(a, b, c string) string{
	func(a, b, c string) string { return fmt.Sprintf("(%s) %s-%s", a, b, c) },
	func(a, b, c string) string { return fmt.Sprintf("%s-%s-%s", a, b, c) },
	func(a, b, c string) string { return fmt.Sprintf("%s.%s.%s", a, b, c) },
	func(a, b, c string) string { return fmt.Sprintf("+1 %s %s %s", a, b, c) },
	func(a, b, c string) string { return "1" + a + b + c },
	func(a, b, c string) string { return a + b + c },
	func(a, b, c string) string { return "+1" + a + b + c },
	func(a, b, c string) string { return fmt.Sprintf("+1 (%s) %s-%s", a, b, c) },
}

// international numbers as instances hold them, with country codes.
var intlNumbers = []string{
	"+44 20 7946 0958", "+44 161 496 0000", "+49 30 901820", "+49 89 12345678", "+91 98765 43210",
	"+61 2 9374 4000", "+55 11 91234 5678", "+1 416 555 0123", "+33 1 23 45 67 89", "+44 7700 900123",
}

// DefaultDataset is a small, deterministic world for demos and tests: agents,
// a few hundred callers whose numbers are stored in the messy formats real
// instances hold (US and international), accounts, contacts, consumers, and
// open and closed incidents and cases. Some named records are fixed so tests
// and the demo can rely on them:
//
//   - Alice Caller, sys_user, phone "(801) 320-3420", with open incidents
//   - Harold Shared and Irene Shared, both phone "801-555-0199" (two matches)
//   - Oliver Brit, sys_user, phone "+44 20 7946 0958"
//   - Carla Contact, customer_contact of Acme Corp, mobile "801.555.0123", with an open case
//   - Connor Consumer, csm_consumer, business_phone "+1 (801) 555-0177"
//   - Paula Portal, csm_consumer_user (a plain sys_user without
//     Hardening.TableHierarchy), mobile_phone "(801) 555-0166"
//
// It also declares a field ACL (only itil, cti_integration and admin may
// set interaction.assigned_to), applied with Hardening.FieldRules. It has no
// data policy: none comes with an instance, and one that makes assigned_to
// mandatory on close would refuse, rightly, every call whose agent has no
// ServiceNow user; ClosedNeedsAgentPolicy is that policy, for datasets and
// tests that want it.
func DefaultDataset() *Dataset {
	d := GenerateDataset(300, 1)
	d.FieldACLs = []FieldACL{{Table: "interaction", Field: "assigned_to", Write: []string{"itil", "cti_integration"}}}
	return d
}

// ClosedNeedsAgentPolicy is a data policy some instances add: an
// interaction closed complete needs assigned_to.
func ClosedNeedsAgentPolicy() DataPolicy {
	return DataPolicy{Name: "Closed interactions have an agent", Table: "interaction", When: "state=closed_complete",
		Mandatory: []string{"assigned_to"}}
}

// GenerateDataset builds a deterministic dataset with the fixed records of
// DefaultDataset plus n callers spread over sys_user, customer_contact and
// csm_consumer (half, a third, a sixth), for benchmarks of any size.
func GenerateDataset(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	d := &Dataset{Tables: map[string][]map[string]string{}}
	add := func(table string, row map[string]string) map[string]string {
		d.Tables[table] = append(d.Tables[table], row)
		return row
	}
	id := func(kind string, i int) string { return deterministicID(kind, i) }

	d.Users = append(d.Users, BuiltinUsers()...)
	for _, a := range defaultAgents {
		d.Users = append(d.Users, User{UserName: a.user, Password: a.user, Roles: []string{"agent"}, Fields: map[string]string{
			"first_name": a.first, "last_name": a.last, "name": a.first + " " + a.last, "email": a.user + "@example.com", "title": "Contact Centre Agent",
		}})
	}

	person := func(table string, i int, first, last string) map[string]string {
		return map[string]string{"sys_id": id(table, i), "first_name": first, "last_name": last, "name": first + " " + last,
			"email": strings.ToLower(first+"."+last) + "@example.net", "active": "true", "sys_created_on": stamp(i), "sys_updated_on": stamp(i + 1)}
	}
	alice := add("sys_user", person("sys_user", 9001, "Alice", "Caller"))
	alice["phone"] = "(801) 320-3420"
	alice["user_name"] = "alice.caller"
	h := add("sys_user", person("sys_user", 9002, "Harold", "Shared"))
	h["phone"] = "801-555-0199"
	ir := add("sys_user", person("sys_user", 9003, "Irene", "Shared"))
	ir["mobile_phone"] = "801-555-0199"
	ir["sys_updated_on"] = stamp(90000)
	brit := add("sys_user", person("sys_user", 9004, "Oliver", "Brit"))
	brit["phone"] = "+44 20 7946 0958"
	gone := add("sys_user", person("sys_user", 9005, "Ivan", "Inactive"))
	gone["phone"] = "(801) 555-0188"
	gone["active"] = "false"

	acme := add("customer_account", map[string]string{"sys_id": id("customer_account", 1), "name": "Acme Corp", "number": "ACCT0001001", "active": "true"})
	add("customer_account", map[string]string{"sys_id": id("customer_account", 2), "name": "Globex", "number": "ACCT0001002", "active": "true"})
	carla := add("customer_contact", person("customer_contact", 9001, "Carla", "Contact"))
	carla["mobile_phone"] = "801.555.0123"
	carla["account"] = acme["sys_id"]
	connor := add("csm_consumer", person("csm_consumer", 9001, "Connor", "Consumer"))
	connor["business_phone"] = "+1 (801) 555-0177"
	paula := add("csm_consumer_user", person("csm_consumer_user", 9001, "Paula", "Portal"))
	paula["mobile_phone"] = "(801) 555-0166"
	paula["user_name"] = "paula.portal"

	// Open and closed work for the fixed callers.
	inc := 0
	incident := func(caller string, active bool, text string) {
		inc++
		state, act := "2", "true"
		if !active {
			state, act = "7", "false"
		}
		add("incident", map[string]string{"sys_id": id("incident", inc), "number": fmt.Sprintf("INC%07d", 10000+inc), "caller_id": caller,
			"short_description": text, "state": state, "active": act, "priority": "3", "opened_at": stamp(inc * 10),
			"sys_created_on": stamp(inc * 10), "sys_updated_on": stamp(inc*10 + 5)})
	}
	incident(alice["sys_id"], true, "Laptop will not boot")
	incident(alice["sys_id"], true, "VPN drops every hour")
	incident(alice["sys_id"], false, "Password reset")
	cs := 0
	kase := func(field, who string, active bool, text string) {
		cs++
		act := "true"
		if !active {
			act = "false"
		}
		row := map[string]string{"sys_id": id("sn_customerservice_case", cs), "number": fmt.Sprintf("CS%07d", 1000+cs), field: who,
			"short_description": text, "state": "1", "active": act, "opened_at": stamp(cs * 10),
			"sys_created_on": stamp(cs * 10), "sys_updated_on": stamp(cs*10 + 5)}
		if field == "contact" {
			row["account"] = acme["sys_id"]
		}
		add("sn_customerservice_case", row)
	}
	kase("contact", carla["sys_id"], true, "Invoice shows the wrong amount")
	kase("contact", carla["sys_id"], false, "Delivery address change")
	kase("consumer", connor["sys_id"], true, "Refund not received")

	// Generated callers.
	for i := range n {
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		var number string
		if i%10 == 9 {
			number = intlNumbers[(i/10)%len(intlNumbers)]
			if i >= 10*len(intlNumbers) { // keep generated international numbers distinct
				number = fmt.Sprintf("+44 20 7%03d %04d", (i/10)%1000, i%10000)
			}
		} else {
			a, b, c := fmt.Sprintf("%03d", 201+rng.IntN(700)), fmt.Sprintf("%03d", 200+rng.IntN(700)), fmt.Sprintf("%04d", i%10000)
			number = usFormats[i%len(usFormats)](a, b, c)
		}
		field := []string{"phone", "mobile_phone", "home_phone"}[i%3]
		switch {
		case i%6 < 3:
			r := add("sys_user", person("sys_user", i, first, last))
			r[field] = number
			r["user_name"] = fmt.Sprintf("caller%06d", i)
			if i%7 == 0 {
				incident(r["sys_id"], i%2 == 0, "Generated incident")
			}
		case i%6 < 5:
			r := add("customer_contact", person("customer_contact", i, first, last))
			r[field] = number
			r["account"] = d.Tables["customer_account"][i%2]["sys_id"]
			if i%5 == 0 {
				kase("contact", r["sys_id"], true, "Generated case")
			}
		default:
			r := add("csm_consumer", person("csm_consumer", i, first, last))
			r[[]string{"business_phone", "mobile_phone", "home_phone"}[i%3]] = number
		}
	}
	return d
}

// KnownCaller is one of the fixed callers of DefaultDataset (and of every
// GenerateDataset): the number CXone presents for them, that number in
// E.164, and the records a bridge that identifies them links the
// interaction to.
type KnownCaller struct {
	Name string
	ANI  string
	E164 string
	Refs []CallerRef
}

// CallerRef is an interaction reference field and the record it must name.
type CallerRef struct {
	Field, Table, SysID string
}

// KnownCallers lists the fixed callers whose identification is unambiguous:
// a user (US and international number), a contact of Acme Corp, a
// consumer. Load tests mix them in to check callers end to end.
func KnownCallers() []KnownCaller {
	id := deterministicID
	return []KnownCaller{
		{"Alice Caller", "8013203420", "+18013203420", []CallerRef{{"opened_for", "sys_user", id("sys_user", 9001)}}},
		{"Carla Contact", "8015550123", "+18015550123", []CallerRef{{"contact", "customer_contact", id("customer_contact", 9001)},
			{"account", "customer_account", id("customer_account", 1)}}},
		{"Connor Consumer", "8015550177", "+18015550177", []CallerRef{{"consumer", "csm_consumer", id("csm_consumer", 9001)}}},
		{"Oliver Brit", "+442079460958", "+442079460958", []CallerRef{{"opened_for", "sys_user", id("sys_user", 9004)}}},
	}
}

// deterministicID makes a stable 32-hex sys_id for generated rows.
func deterministicID(kind string, i int) string {
	h := uint64(14695981039346656037)
	for _, b := range []byte(kind) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return fmt.Sprintf("%016x%016x", h, uint64(i)*0x9e3779b97f4a7c15+1)
}
