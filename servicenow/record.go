package servicenow

import "encoding/json"

// Record is one row as the Table API returns it. Every value is a string, or
// for reference fields and display values an object with value,
// display_value and link; Get and friends read both shapes.
type Record map[string]any

// Get returns a field's value: the string itself, or the "value" of a
// reference or sysparm_display_value=all object.
func (r Record) Get(field string) string {
	switch v := r[field].(type) {
	case string:
		return v
	case map[string]any:
		if s, ok := v["value"].(string); ok {
			return s
		}
		s, _ := v["display_value"].(string)
		return s
	case nil:
		return ""
	case json.Number:
		return v.String()
	case bool:
		if v {
			return "true"
		}
		return "false"
	}
	return ""
}

// Display returns a field's display value when the query asked for one
// (sysparm_display_value=true or all), else its value.
func (r Record) Display(field string) string {
	if m, ok := r[field].(map[string]any); ok {
		if s, ok := m["display_value"].(string); ok {
			return s
		}
	}
	return r.Get(field)
}

// Link returns a reference field's link, "" when absent.
func (r Record) Link(field string) string {
	if m, ok := r[field].(map[string]any); ok {
		s, _ := m["link"].(string)
		return s
	}
	return ""
}

// SysID returns the record's sys_id.
func (r Record) SysID() string { return r.Get("sys_id") }
