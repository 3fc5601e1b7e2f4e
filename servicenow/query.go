package servicenow

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ctibridge/ctibridge/encquery"
)

// QueryBuilder builds an encoded query (sysparm_query) from typed
// conditions, escaping values so that a caret in a phone number or a name
// cannot change the query. Start with Query(); Encode reports the first
// misuse.
type QueryBuilder struct {
	q   encquery.Query
	err error
}

// Query starts an empty query.
func Query() *QueryBuilder { return &QueryBuilder{} }

func (b *QueryBuilder) add(or bool, c encquery.Cond) *QueryBuilder {
	if b.err != nil {
		return b
	}
	if err := checkCond(c); err != nil {
		b.err = err
		return b
	}
	if len(b.q.Clauses) == 0 {
		b.q.Clauses = []encquery.Clause{{}}
	}
	cl := &b.q.Clauses[len(b.q.Clauses)-1]
	if or {
		if len(cl.Terms) == 0 {
			b.err = fmt.Errorf("servicenow query: OR %s with nothing before it", c.Field)
			return b
		}
		t := &cl.Terms[len(cl.Terms)-1]
		t.Any = append(t.Any, c)
		return b
	}
	cl.Terms = append(cl.Terms, encquery.Term{Any: []encquery.Cond{c}})
	return b
}

func checkCond(c encquery.Cond) error {
	if !validField(c.Field) {
		return fmt.Errorf("servicenow query: invalid field name %q", c.Field)
	}
	vals := c.Values
	if c.Op != encquery.OpIn && c.Op != encquery.OpNotIn {
		vals = []string{c.Value}
	} else if len(vals) == 0 {
		return fmt.Errorf("servicenow query: %s %s needs at least one value", c.Field, c.Op)
	}
	for _, v := range vals {
		if strings.HasSuffix(v, "^") {
			// "a^" would render as "a^^" followed by the "^" joining
			// the next condition: ambiguous to the instance's parser.
			return fmt.Errorf("servicenow query: %s: a value cannot end with a caret", c.Field)
		}
		if (c.Op == encquery.OpIn || c.Op == encquery.OpNotIn) && strings.Contains(v, ",") {
			return fmt.Errorf("servicenow query: %s %s: a value cannot contain a comma", c.Field, c.Op)
		}
	}
	return nil
}

func validField(f string) bool {
	if f == "" || len(f) > 80 {
		return false
	}
	for i, r := range f {
		// Lower case only, as ServiceNow's column names are: operators
		// are upper case, so "fooIN" could not be told from "foo" + "IN".
		ok := r == '_' || r >= 'a' && r <= 'z' || i > 0 && (r >= '0' && r <= '9' || r == '.')
		if !ok {
			return false
		}
	}
	return !strings.HasSuffix(f, ".") && !strings.Contains(f, "..")
}

func cond(field, op, value string) encquery.Cond {
	return encquery.Cond{Field: field, Op: op, Value: value}
}

// Eq adds field=value (AND).
func (b *QueryBuilder) Eq(field, value string) *QueryBuilder {
	return b.add(false, cond(field, encquery.OpEq, value))
}

// OrEq adds ^ORfield=value to the previous condition.
func (b *QueryBuilder) OrEq(field, value string) *QueryBuilder {
	return b.add(true, cond(field, encquery.OpEq, value))
}

// Ne adds field!=value.
func (b *QueryBuilder) Ne(field, value string) *QueryBuilder {
	return b.add(false, cond(field, encquery.OpNe, value))
}

// Like adds fieldLIKEvalue (contains).
func (b *QueryBuilder) Like(field, value string) *QueryBuilder {
	return b.add(false, cond(field, encquery.OpLike, value))
}

// StartsWith adds fieldSTARTSWITHvalue.
func (b *QueryBuilder) StartsWith(field, value string) *QueryBuilder {
	return b.add(false, cond(field, encquery.OpStartsWith, value))
}

// EndsWith adds fieldENDSWITHvalue.
func (b *QueryBuilder) EndsWith(field, value string) *QueryBuilder {
	return b.add(false, cond(field, encquery.OpEndsWith, value))
}

// In adds fieldINa,b,c.
func (b *QueryBuilder) In(field string, values ...string) *QueryBuilder {
	return b.add(false, encquery.Cond{Field: field, Op: encquery.OpIn, Values: values})
}

// OrIn adds ^ORfieldINa,b,c to the previous condition.
func (b *QueryBuilder) OrIn(field string, values ...string) *QueryBuilder {
	return b.add(true, encquery.Cond{Field: field, Op: encquery.OpIn, Values: values})
}

// NotIn adds fieldNOT INa,b,c.
func (b *QueryBuilder) NotIn(field string, values ...string) *QueryBuilder {
	return b.add(false, encquery.Cond{Field: field, Op: encquery.OpNotIn, Values: values})
}

// NotEmpty adds fieldISNOTEMPTY.
func (b *QueryBuilder) NotEmpty(field string) *QueryBuilder {
	return b.add(false, encquery.Cond{Field: field, Op: encquery.OpIsNotEmpty})
}

// Empty adds fieldISEMPTY.
func (b *QueryBuilder) Empty(field string) *QueryBuilder {
	return b.add(false, encquery.Cond{Field: field, Op: encquery.OpIsEmpty})
}

// NewQuery starts a new query OR'd with the ones before (^NQ).
func (b *QueryBuilder) NewQuery() *QueryBuilder {
	if b.err == nil && len(b.q.Clauses) > 0 {
		b.q.Clauses = append(b.q.Clauses, encquery.Clause{})
	}
	return b
}

// OrderBy sorts ascending by field.
func (b *QueryBuilder) OrderBy(field string) *QueryBuilder { return b.order(field, false) }

// OrderByDesc sorts descending by field.
func (b *QueryBuilder) OrderByDesc(field string) *QueryBuilder { return b.order(field, true) }

func (b *QueryBuilder) order(field string, desc bool) *QueryBuilder {
	if b.err == nil && !validField(field) {
		b.err = fmt.Errorf("servicenow query: invalid order field %q", field)
	}
	b.q.OrderBy = append(b.q.OrderBy, encquery.Order{Field: field, Desc: desc})
	return b
}

// Encode renders the query, or the first misuse.
func (b *QueryBuilder) Encode() (string, error) {
	if b.err != nil {
		return "", b.err
	}
	for _, cl := range b.q.Clauses {
		if len(cl.Terms) == 0 {
			return "", errors.New("servicenow query: empty ^NQ clause")
		}
	}
	return b.q.String(), nil
}

// Conditions returns what the builder holds, for tests and logs.
func (b *QueryBuilder) Conditions() encquery.Query { return b.q }
