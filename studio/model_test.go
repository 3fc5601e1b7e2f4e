package studio_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// studio is a model of CXone Studio running the ctibridge snippets, written
// from NICE's help pages (SNIPPET, RUNSUB, ONRELEASE, "API calls from the
// Snippet action"). It knows only the statements the snippets use and fails
// the test on any other, so a snippet cannot drift into syntax nobody checked.
// What it takes from the documentation:
//   - a RUNSUB subscript starts with no variables of its own; it sees the
//     contact's system variables and globals, and what it does not make
//     global is gone when it returns;
//   - a variable written as global:name is read by its plain name;
//   - a run-time error (no reply, a reply that is not JSON for type 0, a
//     member the reply lacks) stops the snippet and takes its Error branch
//     with _ERR set; an unwired Error branch falls back to Default;
//   - MakeRestRequest type 0 parses the JSON reply, type 2 ignores it;
//     StatusCode and StatusDescription hold the reply's status.
//
// Whether a request that gets no reply raises or returns with StatusCode -1
// is not documented, so the model does either (failure).
type studio struct {
	t       testing.TB
	system  map[string]string // the contact's system variables
	globals map[string]any
	main    *scope // the main script's own variables
	failure failureMode
	unwired bool // the Error branches are left unwired
	sent    []sentRequest
}

type failureMode int

const (
	failRaises   failureMode = iota // the snippet stops and takes its Error branch
	failMinusOne                    // MakeRestRequest returns, StatusCode -1
)

type sentRequest struct {
	method, path string
	header       http.Header
	body         []byte
}

type scope struct{ locals map[string]any }

// dynamic is a DYNAMIC object: ordered string members.
type dynamic struct {
	keys []string
	vals map[string]string
}

type restProxy struct {
	contentType       string
	timeoutSeconds    int
	headers           [][2]string
	statusCode        int
	statusDescription string
}

// raised is a run-time error: Studio stops the snippet and takes its Error branch.
type raised struct{ msg string }

func (r *raised) Error() string { return r.msg }

func newStudio(t testing.TB) *studio {
	return &studio{t: t, system: map[string]string{}, globals: map[string]any{}, main: &scope{map[string]any{}}}
}

// contact sets system variables (a new ContactID after a transfer, AgentId
// after OnAnswer, the cause code after OnRelease).
func (s *studio) contact(vars map[string]string) {
	for k, v := range vars {
		s.system[k] = v
	}
}

// setup runs ctibridge_setup in the main script, edited as the guide says:
// the example URL and key replaced by the deployment's.
func (s *studio) setup(url, key string) {
	s.t.Helper()
	src := snippetText(s.t, "ctibridge_setup")
	for _, r := range [][2]string{{`"https://ctibridge.example.com"`, strconv.Quote(url)}, {`"ctb_paste_your_key_here"`, strconv.Quote(key)}} {
		if !strings.Contains(src, r[0]) {
			s.t.Fatalf("ctibridge_setup has no %s for the admin to replace", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	if err := s.exec(s.main, "ctibridge_setup", src); err != nil {
		s.t.Fatalf("ctibridge_setup stopped: %v", err)
	}
}

// runsub runs a subscript as the guide wires it: its event SNIPPET, then
// ctibridge_on_error on the Error branch, then ctibridge_log_error.
func (s *studio) runsub(name string, uncomment ...string) {
	s.t.Helper()
	s.action(&scope{map[string]any{}}, name, uncomment...)
}

// inline runs an event SNIPPET in the main script (the release, after OnRelease).
func (s *studio) inline(name string, uncomment ...string) {
	s.t.Helper()
	s.action(s.main, name, uncomment...)
}

func (s *studio) action(sc *scope, name string, uncomment ...string) {
	s.t.Helper()
	src := snippetText(s.t, name)
	for _, field := range uncomment {
		line := "// ctiBody." + field + " = "
		if !strings.Contains(src, line) {
			s.t.Fatalf("%s has no optional line %q", name, line)
		}
		src = strings.Replace(src, line, "ctiBody."+field+" = ", 1)
	}
	err := s.exec(sc, name, src)
	var r *raised
	if errors.As(err, &r) && !s.unwired {
		sc.locals["_ERR"] = r.msg
		if err := s.exec(sc, "ctibridge_on_error", snippetText(s.t, "ctibridge_on_error")); err != nil {
			s.t.Fatalf("ctibridge_on_error stopped: %v", err)
		}
	}
	if err := s.exec(sc, "ctibridge_log_error", snippetText(s.t, "ctibridge_log_error")); err != nil {
		s.t.Fatalf("ctibridge_log_error stopped: %v", err)
	}
}

// global returns a global's value as text ("" when unset).
func (s *studio) global(name string) string {
	v, ok := s.globals[name]
	if !ok {
		return ""
	}
	return text(v)
}

func snippetText(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name + ".snippet")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stmt is one parsed statement.
type stmt struct {
	line       int
	kind       string // assign, dynamic, member, call, if
	global     bool
	name, attr string
	rhs        string // the value, the call's arguments, or the IF's condition
	then, els  []stmt
}

var (
	reAssign  = regexp.MustCompile(`^ASSIGN (global:)?(\w+) = (.+)$`)
	reDynamic = regexp.MustCompile(`^DYNAMIC (\w+)$`)
	reMember  = regexp.MustCompile(`^(\w+)\.(\w+) = (.+)$`)
	reCall    = regexp.MustCompile(`^(\w+)\.(\w+)\((.*)\)$`)
	reIf      = regexp.MustCompile(`^IF (.+)$`)
	reQuoted  = regexp.MustCompile(`^"([^"]*)"$`)
	reInt     = regexp.MustCompile(`^-?\d+$`)
	reRequest = regexp.MustCompile(`^(\w+)\.MakeRestRequest\((\w+), (\w+), (\d+), "(\w+)"\)$`)
	reProp    = regexp.MustCompile(`^(\w+)\.(\w+)$`)
	reAdd     = regexp.MustCompile(`^(\w+) \+ (\d+)$`)
	reName    = regexp.MustCompile(`^\w+$`)
	reCompare = regexp.MustCompile(`^(.+?) (>=|<=|!=|=|<|>) (.+)$`)
	reBraces  = regexp.MustCompile(`\{([^{}]+)\}`)
	reHeader  = regexp.MustCompile(`^"([^"]*)", "([^"]*)"$`)
)

// parse reads a snippet; a statement the model does not know is an error.
func parse(src string) ([]stmt, error) {
	p := &parser{lines: strings.Split(src, "\n")}
	return p.block(true)
}

type parser struct {
	lines []string
	i     int
}

func (p *parser) next() (string, int, bool) {
	for p.i < len(p.lines) {
		ln := strings.TrimSpace(p.lines[p.i])
		p.i++
		if ln != "" && !strings.HasPrefix(ln, "//") {
			return ln, p.i, true
		}
	}
	return "", p.i, false
}

func (p *parser) peek() string {
	save := p.i
	ln, _, _ := p.next()
	p.i = save
	return ln
}

func (p *parser) block(top bool) ([]stmt, error) {
	var out []stmt
	for {
		ln, no, ok := p.next()
		if !ok {
			if !top {
				return nil, errors.New("a { is never closed")
			}
			return out, nil
		}
		var m []string
		switch {
		case ln == "}":
			if top {
				return nil, fmt.Errorf("line %d: } without {", no)
			}
			return out, nil
		case reIf.MatchString(ln):
			st := stmt{line: no, kind: "if", rhs: reIf.FindStringSubmatch(ln)[1]}
			var err error
			if st.then, err = p.braced(no); err != nil {
				return nil, err
			}
			if p.peek() == "ELSE" {
				p.next()
				if st.els, err = p.braced(no); err != nil {
					return nil, err
				}
			}
			out = append(out, st)
		case func() bool { m = reAssign.FindStringSubmatch(ln); return m != nil }():
			out = append(out, stmt{line: no, kind: "assign", global: m[1] != "", name: m[2], rhs: m[3]})
		case func() bool { m = reDynamic.FindStringSubmatch(ln); return m != nil }():
			out = append(out, stmt{line: no, kind: "dynamic", name: m[1]})
		case func() bool { m = reMember.FindStringSubmatch(ln); return m != nil }():
			out = append(out, stmt{line: no, kind: "member", name: m[1], attr: m[2], rhs: m[3]})
		case func() bool { m = reCall.FindStringSubmatch(ln); return m != nil }():
			out = append(out, stmt{line: no, kind: "call", name: m[1], attr: m[2], rhs: m[3]})
		default:
			return nil, fmt.Errorf("line %d: %q is not a statement the snippets may use", no, ln)
		}
	}
}

func (p *parser) braced(ifLine int) ([]stmt, error) {
	if ln, _, _ := p.next(); ln != "{" {
		return nil, fmt.Errorf("line %d: IF or ELSE without a { line", ifLine)
	}
	return p.block(false)
}

// exec runs one snippet; a *raised error means Studio would take the Error branch.
func (s *studio) exec(sc *scope, name, src string) error {
	s.t.Helper()
	stmts, err := parse(src)
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	return s.run(sc, name, stmts)
}

func (s *studio) run(sc *scope, name string, stmts []stmt) error {
	s.t.Helper()
	for _, st := range stmts {
		where := fmt.Sprintf("%s line %d", name, st.line)
		switch st.kind {
		case "assign":
			v, err := s.eval(sc, where, st.rhs)
			if err != nil {
				return err
			}
			if st.global {
				s.globals[st.name] = v
				continue
			}
			if _, ok := s.globals[st.name]; ok {
				s.t.Fatalf("%s: the local %s hides the global of that name", where, st.name)
			}
			sc.locals[st.name] = v
		case "dynamic":
			sc.locals[st.name] = &dynamic{vals: map[string]string{}}
		case "member":
			switch obj := s.lookup(sc, where, st.name).(type) {
			case *dynamic:
				v, err := s.eval(sc, where, st.rhs)
				if err != nil {
					return err
				}
				if _, ok := obj.vals[st.attr]; !ok {
					obj.keys = append(obj.keys, st.attr)
				}
				obj.vals[st.attr] = text(v)
			case *restProxy:
				v, err := s.eval(sc, where, st.rhs)
				if err != nil {
					return err
				}
				switch st.attr {
				case "ContentType":
					obj.contentType = text(v)
				case "ProxyTimeoutSeconds":
					n, ok := v.(int)
					if !ok {
						s.t.Fatalf("%s: ProxyTimeoutSeconds must be a number", where)
					}
					obj.timeoutSeconds = n
				default:
					s.t.Fatalf("%s: the model knows no proxy property %s", where, st.attr)
				}
			default:
				s.t.Fatalf("%s: %s is not an object", where, st.name)
			}
		case "call":
			p, ok := s.lookup(sc, where, st.name).(*restProxy)
			m := reHeader.FindStringSubmatch(st.rhs)
			if !ok || st.attr != "AddHeader" || m == nil {
				s.t.Fatalf("%s: the model knows only proxy.AddHeader(\"name\", \"value\")", where)
			}
			k, err := s.render(sc, where, m[1])
			if err != nil {
				return err
			}
			v, err := s.render(sc, where, m[2])
			if err != nil {
				return err
			}
			p.headers = append(p.headers, [2]string{k, v})
		case "if":
			ok, err := s.cond(sc, where, st.rhs)
			if err != nil {
				return err
			}
			branch := st.els
			if ok {
				branch = st.then
			}
			if err := s.run(sc, name, branch); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *studio) lookup(sc *scope, where, name string) any {
	s.t.Helper()
	if v, ok := sc.locals[name]; ok {
		return v
	}
	if v, ok := s.globals[name]; ok {
		return v
	}
	if v, ok := s.system[name]; ok {
		return v
	}
	s.t.Fatalf("%s: reads %s, which is not set here (a main-script variable that is not global, or a system variable the test did not give)", where, name)
	return nil
}

func (s *studio) eval(sc *scope, where, expr string) (any, error) {
	s.t.Helper()
	if m := reQuoted.FindStringSubmatch(expr); m != nil {
		return s.render(sc, where, m[1])
	}
	if reInt.MatchString(expr) {
		n, _ := strconv.Atoi(expr)
		return n, nil
	}
	if expr == "GetRESTProxy()" {
		// NICE's defaults: form-encoded, 10 seconds.
		return &restProxy{contentType: "application/x-www-form-urlencoded", timeoutSeconds: 10}, nil
	}
	if m := reRequest.FindStringSubmatch(expr); m != nil {
		p, ok := s.lookup(sc, where, m[1]).(*restProxy)
		if !ok {
			s.t.Fatalf("%s: %s is not a REST proxy", where, m[1])
		}
		typ, _ := strconv.Atoi(m[4])
		return s.request(where, p, text(s.lookup(sc, where, m[2])), text(s.lookup(sc, where, m[3])), typ, m[5])
	}
	if m := reAdd.FindStringSubmatch(expr); m != nil {
		n, ok := s.lookup(sc, where, m[1]).(int)
		if !ok {
			s.t.Fatalf("%s: %s is not a number", where, m[1])
		}
		k, _ := strconv.Atoi(m[2])
		return n + k, nil
	}
	if m := reProp.FindStringSubmatch(expr); m != nil {
		return s.member(sc, where, m[1], m[2])
	}
	if reName.MatchString(expr) {
		return s.lookup(sc, where, expr), nil
	}
	s.t.Fatalf("%s: %q is not an expression the snippets may use", where, expr)
	return nil, nil
}

func (s *studio) member(sc *scope, where, obj, name string) (any, error) {
	s.t.Helper()
	switch o := s.lookup(sc, where, obj).(type) {
	case *restProxy:
		switch name {
		case "StatusCode":
			return o.statusCode, nil
		case "StatusDescription":
			return o.statusDescription, nil
		}
	case *dynamic:
		if v, ok := o.vals[name]; ok {
			return v, nil
		}
		return nil, &raised{fmt.Sprintf("%s has no member %s", obj, name)}
	case map[string]any:
		if v, ok := o[name]; ok {
			return v, nil
		}
		return nil, &raised{fmt.Sprintf("%s has no member %s", obj, name)}
	}
	s.t.Fatalf("%s: the model knows no %s.%s", where, obj, name)
	return nil, nil
}

// render expands {name}, {obj.member} and {obj.asjson()} in a quoted string.
func (s *studio) render(sc *scope, where, tmpl string) (string, error) {
	s.t.Helper()
	var failed error
	out := reBraces.ReplaceAllStringFunc(tmpl, func(ref string) string {
		ref = ref[1 : len(ref)-1]
		if failed != nil {
			return ""
		}
		if obj, ok := strings.CutSuffix(ref, ".asjson()"); ok {
			d, isDyn := s.lookup(sc, where, obj).(*dynamic)
			if !isDyn {
				s.t.Fatalf("%s: %s is not a DYNAMIC object", where, obj)
			}
			return d.json()
		}
		if m := reProp.FindStringSubmatch(ref); m != nil {
			v, err := s.member(sc, where, m[1], m[2])
			failed = err
			return text(v)
		}
		if !reName.MatchString(ref) {
			s.t.Fatalf("%s: {%s} is not a reference the snippets may use", where, ref)
		}
		return text(s.lookup(sc, where, ref))
	})
	return out, failed
}

// cond evaluates comparisons joined by &.
func (s *studio) cond(sc *scope, where, expr string) (bool, error) {
	s.t.Helper()
	for _, part := range strings.Split(expr, " & ") {
		m := reCompare.FindStringSubmatch(part)
		if m == nil {
			s.t.Fatalf("%s: %q is not a comparison", where, part)
		}
		a, err := s.operand(sc, where, m[1])
		if err != nil {
			return false, err
		}
		b, err := s.operand(sc, where, m[3])
		if err != nil {
			return false, err
		}
		x, errA := strconv.Atoi(a)
		y, errB := strconv.Atoi(b)
		numeric := errA == nil && errB == nil
		var ok bool
		switch m[2] {
		case "=":
			ok = a == b || numeric && x == y
		case "!=":
			ok = !(a == b || numeric && x == y)
		default:
			if !numeric {
				// An empty or missing status is no number: not in any range.
				return false, nil
			}
			ok = map[string]bool{">=": x >= y, "<=": x <= y, "<": x < y, ">": x > y}[m[2]]
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func (s *studio) operand(sc *scope, where, expr string) (string, error) {
	v, err := s.eval(sc, where, expr)
	return text(v), err
}

// request is MakeRestRequest.
func (s *studio) request(where string, p *restProxy, url, payload string, typ int, method string) (any, error) {
	s.t.Helper()
	if typ != 0 && typ != 2 {
		s.t.Fatalf("%s: MakeRestRequest type %d: only 0 (JSON, reply parsed) and 2 (JSON, reply ignored) are for ctibridge", where, typ)
	}
	req, err := http.NewRequest(method, url, strings.NewReader(payload))
	if err != nil {
		s.t.Fatalf("%s: %v", where, err)
	}
	req.Header.Set("Content-Type", p.contentType)
	for _, h := range p.headers {
		req.Header.Add(h[0], h[1])
	}
	s.sent = append(s.sent, sentRequest{method: method, path: req.URL.Path, header: req.Header.Clone(), body: []byte(payload)})
	client := &http.Client{
		Timeout:       time.Duration(p.timeoutSeconds) * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.statusCode, p.statusDescription = -1, ""
	resp, err := client.Do(req)
	if err != nil {
		if s.failure == failRaises {
			return nil, &raised{"the request failed: " + err.Error()}
		}
		p.statusDescription = "no reply"
		return &dynamic{vals: map[string]string{}}, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 32<<10))
	p.statusCode, p.statusDescription = resp.StatusCode, http.StatusText(resp.StatusCode)
	if typ == 2 {
		return &dynamic{vals: map[string]string{}}, nil
	}
	var reply map[string]any
	if err := json.Unmarshal(body, &reply); err != nil {
		return nil, &raised{"the reply is not JSON: " + err.Error()}
	}
	return reply, nil
}

func (d *dynamic) json() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range d.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(d.vals[k])
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.String()
}

func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case *dynamic:
		return v.json()
	}
	return fmt.Sprint(v)
}
