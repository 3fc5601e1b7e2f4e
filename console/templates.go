package console

import (
	"html/template"
	"time"
)

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		d := time.Since(t).Round(time.Second)
		if d < 0 {
			return "in " + (-d).String()
		}
		return d.String() + " ago"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(a, b int) int {
		if b <= 0 {
			return 0
		}
		return min(100, a*100/b)
	},
}

func parseTemplates() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, page := range []string{"login", "overview", "call", "errors", "lookups"} {
		out[page] = template.Must(template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/errortable.html", "templates/"+page+".html"))
	}
	return out
}
