package encquery

import (
	"strconv"
	"strings"
)

// Match reports whether a record satisfies the query. get returns a field's
// value ("" when empty or unknown). Comparisons follow ServiceNow on its usual
// databases: text is compared case-insensitively; <, <=, >, >= compare numbers
// when both sides are numbers and text otherwise (ServiceNow's date format
// "2006-01-02 15:04:05" sorts as text).
func (q Query) Match(get func(field string) string) bool {
	if len(q.Clauses) == 0 {
		return true
	}
	for _, c := range q.Clauses {
		if c.match(get) {
			return true
		}
	}
	return false
}

func (c Clause) match(get func(string) string) bool {
	for _, t := range c.Terms {
		ok := false
		for _, cond := range t.Any {
			if cond.Match(get(cond.Field)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Match evaluates the condition against a field value.
func (c Cond) Match(v string) bool {
	lv, lc := strings.ToLower(v), strings.ToLower(c.Value)
	switch c.Op {
	case OpEq:
		return lv == lc
	case OpNe:
		return lv != lc
	case OpLike:
		return strings.Contains(lv, lc)
	case OpNotLike:
		return !strings.Contains(lv, lc)
	case OpStartsWith:
		return strings.HasPrefix(lv, lc)
	case OpEndsWith:
		return strings.HasSuffix(lv, lc)
	case OpIsEmpty:
		return v == ""
	case OpIsNotEmpty:
		return v != ""
	case OpIn, OpNotIn:
		in := false
		for _, x := range c.Values {
			if strings.EqualFold(v, x) {
				in = true
				break
			}
		}
		return in == (c.Op == OpIn)
	case OpLt, OpLe, OpGt, OpGe:
		cmp := Compare(v, c.Value)
		switch c.Op {
		case OpLt:
			return cmp < 0
		case OpLe:
			return cmp <= 0
		case OpGt:
			return cmp > 0
		default:
			return cmp >= 0
		}
	}
	return false
}

// Compare orders two field values: numerically when both are numbers,
// otherwise as case-insensitive text.
func Compare(a, b string) int {
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}
