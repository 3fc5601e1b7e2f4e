package callerid_test

import (
	"context"
	"github.com/ctibridge/ctibridge"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

type fixture struct {
	sn     *servicenow.Client
	sim    *snowsim.Server
	finder *callerid.Finder
	warns  *warnings
}

type warnings struct {
	mu   sync.Mutex
	keys []string
}

func (w *warnings) Warn(_ context.Context, key, _, _ string, _ time.Duration) {
	w.mu.Lock()
	w.keys = append(w.keys, key)
	w.mu.Unlock()
}

func newFixture(t *testing.T, data *snowsim.Dataset, user string, o callerid.FinderOptions) *fixture {
	t.Helper()
	sim := snowsim.New(snowsim.Options{Data: data})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	if user == "" {
		user = "cti_integration"
	}
	sn, err := servicenow.New(servicenow.Config{Instance: srv.URL, RequestsPerHour: -1,
		Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: user, Password: secret.Secret(user)}})
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	o.Warner = w
	return &fixture{sn: sn, sim: sim, finder: callerid.NewFinder(sn, o), warns: w}
}

// find identifies the caller and their open tasks, as the reconciler does.
func (f *fixture) find(t *testing.T, ani string) ctibridge.Caller {
	t.Helper()
	c, err := f.finder.FindCaller(context.Background(), ani)
	if err != nil {
		t.Fatalf("FindCaller(%q): %v", ani, err)
	}
	if c.Related, err = f.finder.OpenTasks(context.Background(), c); err != nil {
		t.Fatalf("OpenTasks(%q): %v", ani, err)
	}
	return c
}

func (f *fixture) requests(table string) int64 {
	var n int64
	for tab, m := range f.sim.Stats().ByTable {
		if table == "" || tab == table {
			for _, v := range m {
				n += v
			}
		}
	}
	return n
}

// TestEveryStoredSpellingIsFound stores the same caller's number in each
// format real instances hold and looks it up from a 10-digit ANI.
func TestEveryStoredSpellingIsFound(t *testing.T) {
	for _, tc := range []struct{ stored, ani string }{
		{"(801) 320-3420", "8013203420"}, {"801-320-3420", "8013203420"}, {"801.320.3420", "8013203420"},
		{"+1 801 320 3420", "8013203420"}, {"18013203420", "8013203420"}, {"8013203420", "8013203420"},
		{"+18013203420", "(801) 320-3420"}, {"+1 (801) 320-3420", "+18013203420"}, {"1-801-320-3420", "8013203420"},
		{"801 320 3420", "18013203420"},
		{"+44 20 7946 0958", "011 44 20 7946 0958"}, {"+44 (0)20 7946 0958", "+442079460958"},
		{"0044 20 7946 0958", "+442079460958"}, {"442079460958", "+442079460958"}, {"020 7946 0958", "+442079460958"},
		{"+49 30 901820", "01149 30 901820"}, {"+91 98765 43210", "+919876543210"}, {"+61 2 9374 4000", "+61293744000"},
		{"+55 11 91234 5678", "+5511912345678"},
	} {
		t.Run(tc.stored, func(t *testing.T) {
			d := &snowsim.Dataset{Tables: map[string][]map[string]string{"sys_user": {
				{"user_name": "caller", "name": "The Caller", "mobile_phone": tc.stored},
				{"user_name": "other", "name": "Someone Else", "phone": "+1 801 320 3421"},
			}}}
			f := newFixture(t, d, "", callerid.FinderOptions{})
			c := f.find(t, tc.ani)
			if c.Name != "The Caller" || c.User == "" {
				t.Fatalf("ANI %q did not find %q: %+v", tc.ani, tc.stored, c)
			}
			if got := f.requests("sys_user"); got != 1 {
				t.Errorf("%d requests to sys_user, want 1", got)
			}
		})
	}
}

func TestDefaultDatasetCallers(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{})
	alice := f.find(t, "+1 801 320 3420")
	if alice.Name != "Alice Caller" || alice.User == "" || alice.Number != "+18013203420" {
		t.Fatalf("Alice: %+v", alice)
	}
	if len(alice.Related) != 2 || alice.Related[0].Table != "incident" || alice.Related[0].Number == "" {
		t.Errorf("Alice's open incidents: %+v, want her 2 active ones", alice.Related)
	}
	carla := f.find(t, "8015550123")
	if carla.Contact == "" || carla.Account == "" || carla.User != "" || carla.Name != "Carla Contact" {
		t.Errorf("Carla (a contact): %+v", carla)
	}
	if len(carla.Related) == 0 || carla.Related[0].Table != "sn_customerservice_case" {
		t.Errorf("Carla's open cases: %+v", carla.Related)
	}
	connor := f.find(t, "801 555 0177")
	if connor.Consumer == "" || connor.Contact != "" {
		t.Errorf("Connor (a consumer): %+v", connor)
	}
	if ivan := f.find(t, "(801) 555-0188"); ivan.User != "" {
		t.Errorf("an inactive user was matched: %+v", ivan)
	}
}

func TestUnknownWithheldAndCache(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{TTL: time.Minute})
	unknown := f.find(t, "+1 312 555 0100")
	if unknown.User != "" || unknown.Contact != "" || unknown.Consumer != "" || unknown.Number != "+13125550100" || unknown.Withheld {
		t.Errorf("unknown caller: %+v", unknown)
	}
	if got := f.requests(""); got != 3 {
		t.Errorf("unknown caller cost %d requests, want 3 (one per source)", got)
	}
	f.find(t, "(312) 555-0100") // same number, other spelling: cached
	if got := f.requests(""); got != 3 {
		t.Errorf("a cache hit made %d requests", got-3)
	}
	if h, m := f.finder.Stats(); h != 1 || m != 1 {
		t.Errorf("cache stats %d hits %d misses, want 1/1", h, m)
	}
	for _, ani := range []string{"", "anonymous", "Restricted", "12"} {
		if c := f.find(t, ani); !c.Withheld || c.User != "" {
			t.Errorf("%q: %+v, want withheld", ani, c)
		}
	}
	if got := f.requests(""); got != 3 {
		t.Errorf("withheld numbers made %d requests", got-3)
	}
}

func TestSeveralMatches(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{})
	c := f.find(t, "801-555-0199")
	if c.User != "" || len(c.Candidates) != 2 || !strings.Contains(strings.Join(c.Candidates, " "), "Harold Shared") {
		t.Errorf("policy none: %+v, want no one chosen and both candidates", c)
	}
	f = newFixture(t, nil, "", callerid.FinderOptions{Policy: callerid.PolicyLatest})
	c = f.find(t, "801-555-0199")
	if c.Name != "Irene Shared" || len(c.Candidates) != 0 {
		t.Errorf("policy latest: %+v, want Irene (updated most recently)", c)
	}
}

// TestUnreadableCaseTableDegrades: an instance where the integration user
// cannot read cases still identifies callers; the table is skipped with one
// warning, not a failure per call.
func TestUnreadableCaseTableDegrades(t *testing.T) {
	d := snowsim.DefaultDataset()
	roles := snowsim.BuiltinRoles()
	r := roles["cti_integration"]
	noCase := snowsim.Role{}
	for k, v := range r {
		if k != "sn_customerservice_case" {
			noCase[k] = v
		}
	}
	d.Roles = map[string]snowsim.Role{"cti_nocase": noCase}
	d.Users = append(d.Users, snowsim.User{UserName: "cti_nocase", Password: "cti_nocase", Roles: []string{"cti_nocase"}})
	f := newFixture(t, d, "cti_nocase", callerid.FinderOptions{})
	carla := f.find(t, "8015550123")
	connor := f.find(t, "+18015550177")
	if carla.Contact == "" || connor.Consumer == "" {
		t.Fatalf("callers not identified: %+v %+v", carla, connor)
	}
	if len(carla.Related) != 0 {
		t.Errorf("related %+v from an unreadable table", carla.Related)
	}
	if got := f.requests("sn_customerservice_case"); got != 1 {
		t.Errorf("%d requests to the refused table, want 1 (then skipped)", got)
	}
	if len(f.warns.keys) != 1 || f.warns.keys[0] != "unreadable:sn_customerservice_case" {
		t.Errorf("warnings %v, want one for the case table", f.warns.keys)
	}
	alice := f.find(t, "8013203420")
	if len(alice.Related) != 2 {
		t.Errorf("incidents still linked: %+v", alice.Related)
	}
}

func TestRelatedLimit(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{Related: 1})
	if a := f.find(t, "8013203420"); len(a.Related) != 1 {
		t.Errorf("limit 1: %+v", a.Related)
	}
	f = newFixture(t, nil, "", callerid.FinderOptions{Related: -1})
	if a := f.find(t, "8013203420"); len(a.Related) != 0 || f.requests("incident") != 0 {
		t.Errorf("related off: %+v", a.Related)
	}
}

// TestHiddenCallersAreWarnedAbout: the integration user may read sys_user,
// but row-level ACLs hide every user. A real instance then answers 200 with
// a count and no rows: the caller goes unidentified, and an operator is
// told why, once, instead of seeing "unknown caller" for ever.
func TestHiddenCallersAreWarnedAbout(t *testing.T) {
	d := snowsim.DefaultDataset()
	hidden := snowsim.Role{}
	for k, v := range snowsim.BuiltinRoles()["cti_integration"] {
		hidden[k] = v
	}
	hidden["sys_user:rows"] = "user_name=nobody-at-all"
	d.Roles = map[string]snowsim.Role{"cti_hidden": hidden}
	d.Users = append(d.Users, snowsim.User{UserName: "cti_hidden", Password: "cti_hidden", Roles: []string{"cti_hidden"}})
	f := newFixture(t, d, "cti_hidden", callerid.FinderOptions{})
	for range 2 {
		if alice := f.find(t, "8013203420"); alice.User != "" || len(alice.Candidates) != 0 {
			t.Fatalf("a hidden user was identified: %+v", alice)
		}
		f.finder = callerid.NewFinder(f.sn, callerid.FinderOptions{Warner: f.warns}) // no cache: ask again
	}
	if len(f.warns.keys) == 0 || f.warns.keys[0] != "hidden:sys_user" {
		t.Errorf("warnings %v, want hidden:sys_user", f.warns.keys)
	}
	if carla := f.find(t, "8015550123"); carla.Contact == "" {
		t.Errorf("a contact in a table the user sees is no longer identified: %+v", carla)
	}
}

// TestContactsAreSysUserRows: on an instance, customer_contact extends
// sys_user, so a sys_user query finds contacts too. With the contact table
// searched, sys_user leaves them to it; with sys_user alone, a contact is
// still routed as a contact (with its account), never as opened_for.
func TestContactsAreSysUserRows(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{})
	carla := f.find(t, "8015550123")
	if carla.Contact == "" || carla.Account == "" || carla.User != "" {
		t.Errorf("default sources: %+v, want Carla as a contact with her account", carla)
	}
	if got := f.requests("sys_user"); got != 1 {
		t.Errorf("%d sys_user requests, want 1", got)
	}
	f = newFixture(t, nil, "", callerid.FinderOptions{Sources: []callerid.Source{{Table: "sys_user", Fields: []string{"phone", "mobile_phone", "home_phone"}}}})
	carla = f.find(t, "8015550123")
	if carla.Contact == "" || carla.Account == "" || carla.User != "" {
		t.Errorf("sys_user only: %+v, want Carla routed as a contact by sys_class_name", carla)
	}
	if len(carla.Related) == 0 || carla.Related[0].Table != "sn_customerservice_case" {
		t.Errorf("sys_user only: Carla's cases %+v", carla.Related)
	}
}
