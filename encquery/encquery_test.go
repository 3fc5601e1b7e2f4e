package encquery

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func c(field, op, value string) Cond { return Cond{Field: field, Op: op, Value: value} }

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Query
	}{
		{"", Query{}},
		{"active=true", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("active", OpEq, "true")}}}}}}},
		{"a=1^b=2^ORc=3", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("a", OpEq, "1")}}, {Any: []Cond{c("b", OpEq, "2"), c("c", OpEq, "3")}}}}}}},
		{"a=1^NQb!=2", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("a", OpEq, "1")}}}}, {Terms: []Term{{Any: []Cond{c("b", OpNe, "2")}}}}}}},
		{"nameLIKEsmith^nameNOT LIKEjo", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("name", OpLike, "smith")}}, {Any: []Cond{c("name", OpNotLike, "jo")}}}}}}},
		{"phoneIN1,2,3", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{{Field: "phone", Op: OpIn, Values: []string{"1", "2", "3"}}}}}}}}},
		{"phoneNOT IN1", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{{Field: "phone", Op: OpNotIn, Values: []string{"1"}}}}}}}}},
		{"emailISEMPTY^phoneISNOTEMPTY", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{{Field: "email", Op: OpIsEmpty}}}, {Any: []Cond{{Field: "phone", Op: OpIsNotEmpty}}}}}}}},
		{"nSTARTSWITHa^nENDSWITHz", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("n", OpStartsWith, "a")}}, {Any: []Cond{c("n", OpEndsWith, "z")}}}}}}},
		{"x<1^x<=2^x>3^x>=4", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("x", OpLt, "1")}}, {Any: []Cond{c("x", OpLe, "2")}}, {Any: []Cond{c("x", OpGt, "3")}}, {Any: []Cond{c("x", OpGe, "4")}}}}}}},
		{"name=a^^b^ORname=c", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("name", OpEq, "a^b"), c("name", OpEq, "c")}}}}}}},
		{"caller_id.name=Bob^ORDERBYDESCsys_updated_on^ORDERBYnumber", Query{
			Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("caller_id.name", OpEq, "Bob")}}}}},
			OrderBy: []Order{{"sys_updated_on", true}, {"number", false}}}},
		{"a=1^EQ", Query{Clauses: []Clause{{Terms: []Term{{Any: []Cond{c("a", OpEq, "1")}}}}}}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.in, diff)
		}
		if back, _ := Parse(got.String()); !cmp.Equal(back, got) {
			t.Errorf("round trip of %q through %q changed it", tt.in, got.String())
		}
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"=1", "active", "a~1", "ORDERBY", "aISEMPTYx", "A=1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	q, problems := ParseLenient("active=true^bogus^name=x")
	if len(problems) != 1 || len(q.Clauses[0].Terms) != 2 {
		t.Errorf("lenient: %d problems, %+v", len(problems), q)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	rec := map[string]string{"name": "Alice Smith", "phone": "(801) 320-3420", "active": "true", "n": "10", "d": "2026-01-02 10:00:00", "empty": ""}
	get := func(f string) string { return rec[f] }
	tests := map[string]bool{
		"":                                 true,
		"active=true":                      true,
		"active=TRUE":                      true,
		"active=false":                     false,
		"nameLIKEsmith":                    true,
		"nameNOT LIKEsmith":                false,
		"nameSTARTSWITHali":                true,
		"nameENDSWITHsmith":                true,
		"phoneIN8013203420,(801) 320-3420": true,
		"phoneNOT IN(801) 320-3420":        false,
		"emptyISEMPTY":                     true,
		"nameISEMPTY":                      false,
		"n>9":                              true,
		"n<9":                              false,
		"n>=10^n<=10":                      true,
		"d>2026-01-01 00:00:00":            true,
		"active=false^ORname=Alice Smith":  true,
		"active=false^NQn=10":              true,
		"active=false^NQn=11":              false,
		"name!=Bob":                        true,
		"missing=":                         true,
	}
	for q, want := range tests {
		parsed, err := Parse(q)
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if got := parsed.Match(get); got != want {
			t.Errorf("%q matched %v, want %v", q, got, want)
		}
	}
}

func TestFilterDropsConditions(t *testing.T) {
	t.Parallel()
	q, _ := Parse("bogus=1^active=true^NQbogus=2")
	f := q.Filter(func(c Cond) bool { return c.Field != "bogus" })
	if f.String() != "active=true" {
		t.Errorf("filtered = %q", f.String())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"active=true", "a=1^ORb=2^NQc!=3", "nameLIKEa^^b", "phoneIN1,2", "xISEMPTY^ORDERBYDESCy",
		"^^^", "^OR^NQ", "a=^", "ORDERBYa^b=1", strings.Repeat("a=1^", 20)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := split(s), splitByBytes(s); !cmp.Equal(got, want, cmp.AllowUnexported(segment{})) {
			t.Fatalf("split(%q) = %+v, want %+v", s, got, want)
		}
		q, err := Parse(s)
		ParseLenient(s)
		if err != nil {
			return
		}
		back, err := Parse(q.String())
		if err != nil {
			t.Fatalf("rendering of %q does not parse: %q: %v", s, q.String(), err)
		}
		if !cmp.Equal(q, back) {
			t.Fatalf("round trip of %q via %q: %+v != %+v", s, q.String(), q, back)
		}
		q.Match(func(string) string { return "x" })
	})
}

// splitByBytes is split as it was first written, one byte at a time: the
// reference the substring-taking split must agree with.
func splitByBytes(s string) []segment {
	var out []segment
	var b strings.Builder
	cur := segment{}
	flush := func() {
		cur.text = b.String()
		out = append(out, cur)
		b.Reset()
		cur = segment{}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '^' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '^' {
			b.WriteByte('^')
			i++
			continue
		}
		flush()
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "NQ"):
			cur.nq = true
			i += 2
		case strings.HasPrefix(rest, "OR") && !strings.HasPrefix(rest, "ORDERBY"):
			cur.or = true
			i += 2
		}
	}
	flush()
	return out
}

func TestSplitAgreesWithByteByByteReading(t *testing.T) {
	t.Parallel()
	inputs := []string{"", "^", "^^", "^^^", "^^^^", "a", "a^", "^a", "a^^", "^^a", "a^^b^c", "a^^^b", "a^^^^b", "^NQ", "^N", "^O", "^OR",
		"^ORDERBY", "^ORDERBYa", "a^NQ", "a^NQb", "a^ORb^^c^NQ^^d", "a=1^ORb=2^NQc!=3", "nameLIKEa^^b", "^OR^NQ", "a=^", "ORDERBYa^b=1",
		"x^^^NQy", "x^^NQy", "x^^^ORz", "^^OR", "^^^OR", "active=true^phoneIN1,2^ORmobile_phoneIN3^ORDERBYDESCsys_updated_on"}
	// Every string of up to five bytes over an alphabet that exercises the markers.
	alphabet := []string{"^", "N", "Q", "O", "R", "a"}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		inputs = append(inputs, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 5)
	for _, s := range inputs {
		if got, want := split(s), splitByBytes(s); !cmp.Equal(got, want, cmp.AllowUnexported(segment{})) {
			t.Fatalf("split(%q) = %+v, want %+v", s, got, want)
		}
	}
}
