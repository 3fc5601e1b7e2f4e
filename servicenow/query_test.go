package servicenow_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ctibridge/ctibridge/encquery"
	"github.com/ctibridge/ctibridge/servicenow"
)

func TestQueryBuilder(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *servicenow.QueryBuilder
		want string
		err  string
	}{
		{"and/or", servicenow.Query().Eq("active", "true").Eq("phone", "+18013203420").OrEq("mobile_phone", "+18013203420"), "active=true^phone=+18013203420^ORmobile_phone=+18013203420", ""},
		{"caret", servicenow.Query().Eq("name", "a^b"), "name=a^^b", ""},
		{"in", servicenow.Query().In("phone", "1", "2").OrderByDesc("sys_updated_on"), "phoneIN1,2^ORDERBYDESCsys_updated_on", ""},
		{"nq", servicenow.Query().Eq("a", "1").NewQuery().NotEmpty("b"), "a=1^NQbISNOTEMPTY", ""},
		{"bad field", servicenow.Query().Eq("a=b", "1"), "", "invalid field"},
		{"comma in IN", servicenow.Query().In("a", "x,y"), "", "comma"},
		{"trailing caret", servicenow.Query().Eq("a", "x^"), "", "caret"},
		{"or first", servicenow.Query().OrEq("a", "1"), "", "nothing before"},
		{"empty IN", servicenow.Query().In("a"), "", "at least one"},
	} {
		got, err := tc.b.Encode()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// FuzzQueryBuilder checks that whatever the builder emits, the encoded-query
// parser the simulator uses reads back exactly the conditions intended.
func FuzzQueryBuilder(f *testing.F) {
	f.Add("phone", "+1 (801) 320-3420", "x^ORy", "name", "Smith^NQactive=true")
	f.Add("a", "^^", "NQ", "b.c", "ORDERBYx")
	f.Fuzz(func(t *testing.T, f1, v1, v2, f2, v3 string) {
		b := servicenow.Query().Eq(f1, v1).OrEq(f2, v2).Like(f2, v3).In(f1, v1, v3)
		s, err := b.Encode()
		if err != nil {
			return // refused: fine, as long as it is refused
		}
		q, err := encquery.Parse(s)
		if err != nil {
			t.Fatalf("builder emitted %q which does not parse: %v", s, err)
		}
		if diff := cmp.Diff(b.Conditions().Clauses, q.Clauses); diff != "" {
			t.Fatalf("%q parses differently (-built +parsed):\n%s", s, diff)
		}
	})
}
