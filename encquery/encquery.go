// Package encquery parses, renders and evaluates ServiceNow encoded queries
// (sysparm_query): "active=true^phoneIN8013203420,+18013203420^ORDERBYDESCsys_updated_on".
//
// Grammar, as ServiceNow reads it: "^" joins conditions with AND, "^OR" joins
// a condition to the previous one with OR (a^b^ORc is a AND (b OR c)), "^NQ"
// starts a new query OR'd with the previous ones, "ORDERBYf" / "ORDERBYDESCf"
// sort, and "^^" inside a value is a literal caret. The package has no
// dependency on the rest of ctibridge: the simulator uses it to answer queries
// and the client's builder is tested against it. It never panics on any input.
package encquery

import (
	"fmt"
	"strings"
)

// Operators, longest first where one is a prefix of another.
const (
	OpIsNotEmpty = "ISNOTEMPTY"
	OpIsEmpty    = "ISEMPTY"
	OpNotLike    = "NOT LIKE"
	OpNotIn      = "NOT IN"
	OpStartsWith = "STARTSWITH"
	OpEndsWith   = "ENDSWITH"
	OpLike       = "LIKE"
	OpIn         = "IN"
	OpNe         = "!="
	OpLe         = "<="
	OpGe         = ">="
	OpEq         = "="
	OpLt         = "<"
	OpGt         = ">"
)

// operators in matching order: longest spelling first.
var operators = []string{OpIsNotEmpty, OpIsEmpty, OpNotLike, OpNotIn, OpStartsWith, OpEndsWith, OpLike, OpIn, OpNe, OpLe, OpGe, OpEq, OpLt, OpGt}

// Cond is one condition.
type Cond struct {
	Field  string
	Op     string
	Value  string   // for every operator but IN, NOT IN, ISEMPTY, ISNOTEMPTY
	Values []string // for IN and NOT IN
}

// Term is conditions joined by ^OR.
type Term struct{ Any []Cond }

// Clause is terms joined by ^ (AND).
type Clause struct{ Terms []Term }

// Order is one ORDERBY.
type Order struct {
	Field string
	Desc  bool
}

// Query is clauses joined by ^NQ, and the sort order.
type Query struct {
	Clauses []Clause
	OrderBy []Order
}

// Problem is a piece of the query that could not be understood.
type Problem struct {
	Segment string
	Reason  string
}

func (p Problem) Error() string { return fmt.Sprintf("encoded query: %q: %s", p.Segment, p.Reason) }

// Parse reads an encoded query strictly: any piece it cannot understand is an
// error.
func Parse(s string) (Query, error) {
	q, problems := ParseLenient(s)
	if len(problems) > 0 {
		return q, problems[0]
	}
	return q, nil
}

// ParseLenient reads an encoded query the way ServiceNow does by default:
// pieces it cannot understand are dropped (and reported), the rest applies.
func ParseLenient(s string) (Query, []Problem) {
	var q Query
	var problems []Problem
	cur := Clause{}
	for _, seg := range split(s) {
		switch {
		case seg.text == "" && !seg.or && !seg.nq:
			continue
		case seg.nq:
			if len(cur.Terms) > 0 {
				q.Clauses = append(q.Clauses, cur)
			}
			cur = Clause{}
			if seg.text == "" {
				continue
			}
		}
		text := seg.text
		if strings.HasPrefix(text, "ORDERBYDESC") && !seg.or {
			if f := text[len("ORDERBYDESC"):]; validField(f) {
				q.OrderBy = append(q.OrderBy, Order{Field: f, Desc: true})
			} else {
				problems = append(problems, Problem{text, "ORDERBYDESC needs a field name"})
			}
			continue
		}
		if strings.HasPrefix(text, "ORDERBY") && !seg.or {
			if f := text[len("ORDERBY"):]; validField(f) {
				q.OrderBy = append(q.OrderBy, Order{Field: f})
			} else {
				problems = append(problems, Problem{text, "ORDERBY needs a field name"})
			}
			continue
		}
		if text == "EQ" {
			continue // ServiceNow's end-of-query marker
		}
		c, err := parseCond(text)
		if err != nil {
			problems = append(problems, Problem{text, err.Error()})
			continue
		}
		if seg.or && len(cur.Terms) > 0 {
			last := &cur.Terms[len(cur.Terms)-1]
			last.Any = append(last.Any, c)
			continue
		}
		cur.Terms = append(cur.Terms, Term{Any: []Cond{c}})
	}
	if len(cur.Terms) > 0 {
		q.Clauses = append(q.Clauses, cur)
	}
	return q, problems
}

type segment struct {
	text   string
	or, nq bool
}

// split cuts at single carets, turning "^^" into a literal caret, and reads the
// OR / NQ markers that follow a caret. A segment without "^^" is a substring of
// s; only one with a literal caret is copied.
func split(s string) []segment {
	out := make([]segment, 0, strings.Count(s, "^")+1)
	cur := segment{}
	start := 0   // where the current segment's text begins in s
	var b []byte // the current segment's text once it holds a literal caret
	for i := 0; i < len(s); i++ {
		if s[i] != '^' {
			if b != nil {
				b = append(b, s[i])
			}
			continue
		}
		if i+1 < len(s) && s[i+1] == '^' {
			if b == nil {
				b = append(make([]byte, 0, len(s)-start), s[start:i]...)
			}
			b = append(b, '^')
			i++
			continue
		}
		cur.text = s[start:i]
		if b != nil {
			cur.text, b = string(b), nil
		}
		out = append(out, cur)
		cur = segment{}
		rest := s[i+1:]
		switch {
		case strings.HasPrefix(rest, "NQ"):
			cur.nq = true
			i += 2
		case strings.HasPrefix(rest, "OR") && !strings.HasPrefix(rest, "ORDERBY"):
			cur.or = true
			i += 2
		}
		start = i + 1
	}
	cur.text = s[min(start, len(s)):]
	if b != nil {
		cur.text = string(b)
	}
	return append(out, cur)
}

func validField(f string) bool {
	if f == "" || f[0] == '.' || f[len(f)-1] == '.' || strings.Contains(f, "..") {
		return false
	}
	for _, r := range f {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func parseCond(text string) (Cond, error) {
	end := 0
	for end < len(text) {
		r := text[end]
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' {
			end++
			continue
		}
		break
	}
	field, rest := text[:end], text[end:]
	if !validField(field) {
		return Cond{}, fmt.Errorf("no field name")
	}
	for _, op := range operators {
		if !strings.HasPrefix(rest, op) {
			continue
		}
		val := rest[len(op):]
		c := Cond{Field: field, Op: op}
		switch op {
		case OpIsEmpty, OpIsNotEmpty:
			if val != "" {
				return Cond{}, fmt.Errorf("%s takes no value", op)
			}
		case OpIn, OpNotIn:
			c.Values = strings.Split(val, ",")
		default:
			c.Value = val
		}
		return c, nil
	}
	return Cond{}, fmt.Errorf("unknown operator after %q", field)
}

// String renders the query in canonical form; Parse(q.String()) equals q for
// any q that Parse produced.
func (q Query) String() string {
	var b strings.Builder
	for i, c := range q.Clauses {
		if i > 0 {
			b.WriteString("^NQ")
		}
		for j, t := range c.Terms {
			if j > 0 {
				b.WriteByte('^')
			}
			for k, cond := range t.Any {
				if k > 0 {
					b.WriteString("^OR")
				}
				b.WriteString(cond.String())
			}
		}
	}
	for _, o := range q.OrderBy {
		if b.Len() > 0 {
			b.WriteByte('^')
		}
		if o.Desc {
			b.WriteString("ORDERBYDESC" + o.Field)
		} else {
			b.WriteString("ORDERBY" + o.Field)
		}
	}
	return b.String()
}

// Escape makes a value safe inside an encoded query: a caret is doubled.
func Escape(v string) string { return strings.ReplaceAll(v, "^", "^^") }

// String renders one condition.
func (c Cond) String() string {
	switch c.Op {
	case OpIsEmpty, OpIsNotEmpty:
		return c.Field + c.Op
	case OpIn, OpNotIn:
		vals := make([]string, len(c.Values))
		for i, v := range c.Values {
			vals[i] = Escape(v)
		}
		return c.Field + c.Op + strings.Join(vals, ",")
	}
	return c.Field + c.Op + Escape(c.Value)
}

// Fields lists every field the query's conditions and ordering name.
func (q Query) Fields() []string {
	var out []string
	for _, c := range q.Clauses {
		for _, t := range c.Terms {
			for _, cond := range t.Any {
				out = append(out, cond.Field)
			}
		}
	}
	for _, o := range q.OrderBy {
		out = append(out, o.Field)
	}
	return out
}

// Filter returns the query without the conditions for which keep is false
// (terms and clauses left empty disappear). The simulator uses it to drop
// conditions on unknown fields, as ServiceNow does.
func (q Query) Filter(keep func(Cond) bool) Query {
	out := Query{OrderBy: q.OrderBy}
	for _, c := range q.Clauses {
		var nc Clause
		for _, t := range c.Terms {
			var nt Term
			for _, cond := range t.Any {
				if keep(cond) {
					nt.Any = append(nt.Any, cond)
				}
			}
			if len(nt.Any) > 0 {
				nc.Terms = append(nc.Terms, nt)
			}
		}
		if len(nc.Terms) > 0 {
			out.Clauses = append(out.Clauses, nc)
		}
	}
	return out
}
