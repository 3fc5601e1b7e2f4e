package snowsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ctibridge/ctibridge/snowsim"
)

// A documented reply of a real instance (testdata/replies/*.json).
// "<any>" matches any value that is present, "<absent>" a header that must
// not be sent. A partial body need only contain the corpus's keys; any
// other body must match exactly.
type documentedReply struct {
	Comment string            `json:"comment"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Partial bool              `json:"partial"`
	Body    any               `json:"body"`
}

// situations drive a hardened simulator into each documented situation and
// return its reply.
var situations = map[string]func(t *testing.T) resp{
	"400-invalid-table": func(t *testing.T) resp {
		return hardened(t).do("GET", "/api/now/table/no_such_table", cti, nil)
	},
	"401-not-authenticated": func(t *testing.T) resp {
		return hardened(t).do("GET", "/api/now/table/sys_user", "cti_integration:wrong", nil)
	},
	"403-read-refused": func(t *testing.T) resp {
		return hardened(t).do("GET", "/api/now/table/sys_user_has_role", cti, nil)
	},
	"403-insert-refused": func(t *testing.T) resp {
		return hardened(t).do("POST", "/api/now/table/incident", cti, map[string]any{"short_description": "x"})
	},
	"403-update-refused": func(t *testing.T) resp {
		s := hardened(t)
		return s.do("PATCH", "/api/now/table/sys_user/"+s.userID("jdoe"), cti, map[string]any{"name": "x"})
	},
	"404-no-record": func(t *testing.T) resp {
		return hardened(t).do("GET", "/api/now/table/interaction/0123456789abcdef0123456789abcdef", cti, nil)
	},
	"429-rate-limited": func(t *testing.T) resp {
		s := hardened(t, func(o *snowsim.Options) { o.Faults.RateLimitPerHour = 10 })
		for range 10 {
			s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
		}
		return s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	},
	"200-rate-limit-headers": func(t *testing.T) resp {
		s := hardened(t, func(o *snowsim.Options) { o.Faults.RateLimitPerHour = 10 })
		return s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	},
	"401-oauth-bad-credentials": func(t *testing.T) resp {
		return hardened(t).token(url.Values{"grant_type": {"password"}, "client_id": {"ctibridge"}, "client_secret": {"wrong"},
			"username": {"cti_integration"}, "password": {"cti_integration"}})
	},
	"401-oauth-client-credentials-disabled": func(t *testing.T) resp {
		return hardened(t).token(url.Values{"grant_type": {"client_credentials"}, "client_id": {"ctibridge"}, "client_secret": {"ctibridge-secret"}})
	},
	"403-duplicate-create": func(t *testing.T) resp {
		s := hardened(t)
		body := map[string]any{"sys_id": "0123456789abcdef0123456789abcdef", "type": "phone"}
		if r := s.do("POST", "/api/now/table/interaction", cti, body); r.status != 201 {
			t.Fatalf("first create: %d %s", r.status, r.raw)
		}
		return s.do("POST", "/api/now/table/interaction", cti, body)
	},
	"403-data-policy": func(t *testing.T) resp {
		s := hardened(t, withAgentPolicy)
		id := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "state": "on_hold"}).result()["sys_id"].(string)
		return s.do("PATCH", "/api/now/table/interaction/"+id, cti, map[string]any{"state": "closed_complete"})
	},
	"200-field-acl-write-dropped": func(t *testing.T) resp {
		s := hardened(t)
		id := s.do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone"}).result()["sys_id"].(string)
		return s.do("PATCH", "/api/now/table/interaction/"+id, "jdoe:jdoe", map[string]any{"assigned_to": s.userID("jdoe"), "state": "work_in_progress"})
	},
	"201-choice-replaced": func(t *testing.T) resp {
		return hardened(t).do("POST", "/api/now/table/interaction", cti, map[string]any{"type": "phone", "state": "closed"})
	},
}

// withAgentPolicy adds the data policy that wants an agent on closed
// interactions (not in the default dataset: no instance comes with it).
func withAgentPolicy(o *snowsim.Options) {
	d := snowsim.DefaultDataset()
	d.DataPolicies = append(d.DataPolicies, snowsim.ClosedNeedsAgentPolicy())
	o.Data = d
}

func hardened(t *testing.T, change ...func(*snowsim.Options)) *sim {
	o := snowsim.Hardened()
	for _, c := range change {
		c(&o)
	}
	return start(t, o)
}

// token posts a token request and returns the reply like do does.
func (s *sim) token(form url.Values) resp {
	s.t.Helper()
	r, err := http.PostForm(s.url+"/oauth_token.do", form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer r.Body.Close()
	out := resp{status: r.StatusCode, header: r.Header}
	var raw strings.Builder
	json.NewDecoder(r.Body).Decode(&out.body)
	b, _ := json.Marshal(out.body)
	raw.Write(b)
	out.raw = raw.String()
	return out
}

// TestDocumentedReplies keeps the hardened simulator in step with the replies
// real instances are documented to give.
func TestDocumentedReplies(t *testing.T) {
	files, err := filepath.Glob("testdata/replies/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var want documentedReply
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !strings.HasPrefix(want.Comment, "Source: ") {
				t.Errorf("%s: the comment must name its source (\"Source: ...\")", path)
			}
			drive, ok := situations[name]
			if !ok {
				t.Fatalf("no situation drives %s", name)
			}
			got := drive(t)
			if got.status != want.Status {
				t.Errorf("status %d, want %d (%s)", got.status, want.Status, got.raw)
			}
			for h, v := range want.Headers {
				have := got.header.Get(h)
				switch {
				case v == "<absent>" && have != "":
					t.Errorf("header %s = %q, want none", h, have)
				case v == "<any>" && have == "":
					t.Errorf("header %s missing", h)
				case v != "<any>" && v != "<absent>" && have != v:
					t.Errorf("header %s = %q, want %q", h, have, v)
				}
			}
			if diff := compareJSON("body", want.Body, got.body, want.Partial); diff != "" {
				t.Errorf("%s\ngot %s", diff, got.raw)
			}
		})
	}
	for name := range situations {
		if !seen[name] {
			t.Errorf("situation %s has no corpus file", name)
		}
	}
}

// compareJSON reports the first difference between a corpus value and a
// reply value, "" if none.
func compareJSON(at string, want, got any, partial bool) string {
	if want == "<any>" {
		if got == nil {
			return at + ": missing"
		}
		return ""
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %T, want an object", at, got)
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				return fmt.Sprintf("%s.%s: missing", at, k)
			}
			if d := compareJSON(at+"."+k, wv, gv, partial); d != "" {
				return d
			}
		}
		if !partial {
			for k := range g {
				if _, ok := w[k]; !ok {
					return fmt.Sprintf("%s.%s: not in the documented reply", at, k)
				}
			}
		}
		return ""
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) || (want == nil) != (got == nil) {
			return fmt.Sprintf("%s = %#v, want %#v", at, got, want)
		}
		return ""
	}
}
