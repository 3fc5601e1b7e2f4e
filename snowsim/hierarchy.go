package snowsim

import "slices"

// Table hierarchy: with Hardening.TableHierarchy, customer_contact and
// csm_consumer_user extend sys_user as on an instance. Their rows live in
// sys_user's storage with sys_class_name set; a query on sys_user sees every
// class (with sys_user's fields only), a query on a child only its class
// (with the child's own fields, such as customer_contact.account). Without
// it each table keeps its own rows, as before.

// tab returns the storage holding tableName's rows. Caller holds mu or is New.
func (s *Server) tab(tableName string) *table {
	if def := s.schema[tableName]; def != nil && def.storage != "" {
		return s.tables[def.storage]
	}
	return s.tables[tableName]
}

// member reports whether a stored row belongs to tableName (its class or a
// class extending it).
func (s *Server) member(tableName string, row map[string]string) bool {
	def := s.schema[tableName]
	return def == nil || def.classes == nil || slices.Contains(def.classes, row["sys_class_name"])
}

// row returns the stored row of tableName with that sys_id, or nil. The
// pseudo table "task" (the target of interaction_related_record.task)
// finds a record in any task table.
func (s *Server) row(tableName, sysID string) map[string]string {
	if tableName == "task" {
		for _, t := range taskTables {
			if r := s.row(t, sysID); r != nil {
				return r
			}
		}
		return nil
	}
	t := s.tab(tableName)
	if t == nil {
		return nil
	}
	if r := t.rows[sysID]; r != nil && s.member(tableName, r) {
		return r
	}
	return nil
}

// taskDef describes what a reference to task can be dot-walked to.
var taskDef = &tableDef{fields: fields(map[string]fieldDef{"number": f(kString), "short_description": f(kString),
	"active": f(kBool), "state": f(kString)}), display: "number"}

// refDef returns the definition of a referenced table.
func (s *Server) refDef(tableName string) *tableDef {
	if tableName == "task" {
		return taskDef
	}
	return s.schema[tableName]
}
