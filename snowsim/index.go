package snowsim

import (
	"slices"
	"strings"

	"github.com/ctibridge/ctibridge/encquery"
)

// Tables keep their rows in insertion order and, for fields that queries
// compare with = or IN, an index from lower-cased value to sys_ids. Indexes
// are built the first time a query needs one and kept up to date by every
// write, so a caller lookup among 100,000 users does not scan them all.

func newTable() *table {
	return &table{rows: map[string]map[string]string{}, seq: map[string]int{}, index: map[string]map[string][]string{}}
}

func (t *table) insert(row map[string]string) {
	id := row["sys_id"]
	t.rows[id] = row
	t.seq[id] = len(t.order)
	t.order = append(t.order, id)
	for field, idx := range t.index {
		k := strings.ToLower(row[field])
		idx[k] = append(idx[k], id)
	}
}

// set changes one field of a stored row.
func (t *table) set(row map[string]string, field, value string) {
	if idx, ok := t.index[field]; ok && !strings.EqualFold(row[field], value) {
		id := row["sys_id"]
		old := strings.ToLower(row[field])
		idx[old] = slices.DeleteFunc(idx[old], func(x string) bool { return x == id })
		k := strings.ToLower(value)
		idx[k] = append(idx[k], id)
	}
	row[field] = value
}

func (t *table) remove(id string) {
	row, ok := t.rows[id]
	if !ok {
		return
	}
	for field, idx := range t.index {
		k := strings.ToLower(row[field])
		idx[k] = slices.DeleteFunc(idx[k], func(x string) bool { return x == id })
	}
	delete(t.rows, id)
	delete(t.seq, id)
}

// indexable reports whether a term can be answered from indexes: every
// condition an equality or IN on a plain field.
func indexable(term encquery.Term) bool {
	for _, c := range term.Any {
		if (c.Op != encquery.OpEq && c.Op != encquery.OpIn) || strings.Contains(c.Field, ".") {
			return false
		}
	}
	return len(term.Any) > 0
}

// missingIndexes lists the fields a query could use that have no index yet.
// Caller holds at least a read lock.
func (t *table) missingIndexes(q encquery.Query) []string {
	var out []string
	for _, cl := range q.Clauses {
		for _, term := range cl.Terms {
			if !indexable(term) {
				continue
			}
			for _, c := range term.Any {
				if _, ok := t.index[c.Field]; !ok && !slices.Contains(out, c.Field) {
					out = append(out, c.Field)
				}
			}
		}
	}
	return out
}

// buildIndex indexes a field. Caller holds the write lock.
func (t *table) buildIndex(field string) {
	if _, ok := t.index[field]; ok {
		return
	}
	idx := map[string][]string{}
	for _, id := range t.order {
		if row, ok := t.rows[id]; ok {
			k := strings.ToLower(row[field])
			idx[k] = append(idx[k], id)
		}
	}
	t.index[field] = idx
}

// candidates returns the sys_ids that may match q, in insertion order, and
// true; or false when the query needs a full scan. For each ^NQ clause it
// takes the indexable term with the fewest candidates.
func (t *table) candidates(q encquery.Query) ([]string, bool) {
	if len(q.Clauses) == 0 {
		return nil, false
	}
	seen := map[string]bool{}
	var out []string
	for _, cl := range q.Clauses {
		var best *encquery.Term
		bestN := 0
		for i, term := range cl.Terms {
			if !indexable(term) {
				continue
			}
			n := 0
			for _, c := range term.Any {
				idx, ok := t.index[c.Field]
				if !ok {
					return nil, false
				}
				for _, v := range condValues(c) {
					n += len(idx[strings.ToLower(v)])
				}
			}
			if best == nil || n < bestN {
				best, bestN = &cl.Terms[i], n
			}
		}
		if best == nil {
			return nil, false
		}
		for _, c := range best.Any {
			for _, v := range condValues(c) {
				for _, id := range t.index[c.Field][strings.ToLower(v)] {
					if !seen[id] {
						seen[id] = true
						out = append(out, id)
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return t.seq[a] - t.seq[b] })
	return out, true
}

func condValues(c encquery.Cond) []string {
	if c.Op == encquery.OpEq {
		return []string{c.Value}
	}
	return c.Values
}
