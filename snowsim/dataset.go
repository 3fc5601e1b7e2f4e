package snowsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	for t := range d.Tables {
		if schema[t] == nil {
			return nil, fmt.Errorf("dataset %s: unknown table %q", path, t)
		}
	}
	roles := d.roles()
	for i, u := range d.Users {
		if u.UserName == "" {
			return nil, fmt.Errorf("dataset %s: users[%d] has no user_name", path, i)
		}
		for _, r := range u.Roles {
			if _, ok := roles[r]; !ok {
				return nil, fmt.Errorf("dataset %s: user %s has unknown role %q (define it under roles)", path, u.UserName, r)
			}
		}
	}
	for name, r := range d.Roles {
		for table, ops := range r {
			if strings.HasSuffix(table, ":rows") {
				continue
			}
			if table != "*" && schema[table] == nil {
				return nil, fmt.Errorf("dataset %s: role %s names unknown table %q", path, name, table)
			}
			if strings.Trim(ops, "rcwd") != "" {
				return nil, fmt.Errorf("dataset %s: role %s on %s: rights are letters from rcwd, got %q", path, name, table, ops)
			}
		}
	}
	for _, c := range d.OAuthClients {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("dataset %s: an OAuth client needs an id and a secret", path)
		}
	}
	return d, nil
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
func DefaultDataset() *Dataset {
	d := GenerateDataset(300, 1)
	return d
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

// deterministicID makes a stable 32-hex sys_id for generated rows.
func deterministicID(kind string, i int) string {
	h := uint64(14695981039346656037)
	for _, b := range []byte(kind) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return fmt.Sprintf("%016x%016x", h, uint64(i)*0x9e3779b97f4a7c15+1)
}
