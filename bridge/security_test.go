package bridge_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/snowsim"
)

// raw sends bytes on a fresh connection and returns the status line's code.
func (e *env) raw(t *testing.T, request string) int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, request)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to %.60q: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHostileRequests: each gets the right refusal, nothing is stored, and
// the bridge stays healthy and keeps serving.
func TestHostileRequests(t *testing.T) {
	e := setup(t)
	otherKey, _ := api.NewKey("someone-else") // valid shape, not configured here
	deep := strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000)
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprint("custom", i)] = "x"
	}
	for _, tc := range []struct {
		name, method, path, key string
		body                    any
		status                  int
		field                   string
	}{
		{"no key", "POST", "/v1/contacts/1/queued", "", `{}`, 401, "Authorization"},
		{"wrong key", "POST", "/v1/contacts/1/queued", "not-the-key-0123456789", `{}`, 401, "Authorization"},
		{"another deployment's key", "POST", "/v1/contacts/1/queued", otherKey.Reveal(), `{}`, 401, "Authorization"},
		{"no key on status", "GET", "/v1/contacts/1", "", nil, 401, "Authorization"},
		{"oversized body", "POST", "/v1/contacts/1/queued", apiKey, `{"ani":"` + strings.Repeat("9", 70<<10) + `"}`, 413, "body"},
		{"malformed JSON", "POST", "/v1/contacts/1/queued", apiKey, `{"ani": "801`, 400, "body"},
		{"not an object", "POST", "/v1/contacts/1/queued", apiKey, `["ani"]`, 400, "body"},
		{"deep nesting", "POST", "/v1/contacts/1/queued", apiKey, `{"ani":` + deep + `}`, 400, "ani"},
		{"invalid UTF-8", "POST", "/v1/contacts/1/queued", apiKey, "{\"ani\":\"\xff\xfe\"}", 400, "body"},
		{"field too long", "POST", "/v1/contacts/1/queued", apiKey, map[string]any{"ani": strings.Repeat("8", 300)}, 400, "ani"},
		{"too many unknown fields", "POST", "/v1/contacts/1/queued", apiKey, many, 400, ""},
		{"unknown event", "POST", "/v1/contacts/1/hijacked", apiKey, `{}`, 404, "event"},
		{"bad wait", "POST", "/v1/contacts/1/queued?wait=1h", apiKey, `{}`, 400, "wait"},
		{"id with a space", "POST", "/v1/contacts/a%20b/queued", apiKey, `{}`, 400, "masterContactId"},
		{"id too long", "POST", "/v1/contacts/" + strings.Repeat("1", 65) + "/queued", apiKey, `{}`, 400, "masterContactId"},
		{"encoded traversal", "POST", "/v1/contacts/..%2F..%2Fadmin/queued", apiKey, `{}`, 400, "masterContactId"},
		{"dot id", "GET", "/v1/contacts/..", apiKey, nil, 404, ""},
		{"Studio key on the admin API", "GET", "/admin/errors", apiKey, nil, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := e.do(tc.method, tc.path, tc.key, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %.300s", code, tc.status, out)
			}
			var p struct{ Status, Error, Field string }
			json.Unmarshal(out, &p)
			if tc.field != "" && p.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", p.Field, tc.field, out)
			}
			if p.Error == "" && !strings.Contains(string(out), "error") {
				t.Errorf("refusal without an error message: %s", out)
			}
		})
	}
	// Raw attacks the client library would not send.
	if code := e.raw(t, "GET /v1/contacts/../../etc/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+apiKey+"\r\n\r\n"); code < 300 || code >= 500 {
		t.Errorf("path traversal: %d", code)
	}
	huge := "POST /v1/contacts/1/queued HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	if code := e.raw(t, huge); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge header: %d, want 431", code)
	}

	// Slow loris: a client that never finishes its headers is cut off,
	// and meanwhile everyone else is served.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/contacts/1/queued HTTP/1.1\r\nHost: x\r\n")
	if code, _ := e.do("GET", "/healthz", "", nil); code != 200 {
		t.Errorf("healthz during a slow client: %d", code)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, conn)
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("a slow client held its connection %v", d)
	}

	if got := e.sim.Records("interaction"); len(got) != 0 {
		t.Errorf("hostile requests created %d interactions", len(got))
	}
	if code, _ := e.do("GET", "/healthz", "", nil); code != 200 {
		t.Errorf("healthz after the attacks: %d", code)
	}
	e.post("9001", "queued", map[string]any{"ani": "8013203420"})
	e.waitSynced(10*time.Second, "9001")
}

func TestPerKeyRateLimit(t *testing.T) {
	second, entry := api.NewKey("second")
	e := setup(t, func(c *config.Config) {
		c.Security.RatePerKey, c.Security.Burst = 1, 2
		c.APIKeys = append(c.APIKeys, config.APIKey(entry))
	})
	for i := range 2 {
		if code, out := e.do("GET", "/v1/contacts/1", apiKey, nil); code != 404 {
			t.Fatalf("request %d within the burst: %d %s", i, code, out)
		}
	}
	req, _ := http.NewRequest("GET", e.url+"/v1/contacts/1", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("over the limit: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := e.do("GET", "/v1/contacts/1", second.Reveal(), nil); code != 404 {
		t.Errorf("another key is limited too: %d", code)
	}
}

// TestHostileSignedRequests: with request signing on, a signed event is
// good for exactly one request (method, path, body) within the window. A
// capture replayed to another contact, as another event, with another method
// or body, too late, or signed the old body-only way is refused with a 401
// naming the header at fault, and changes nothing; the same request replayed
// inside the window is a harmless duplicate.
func TestHostileSignedRequests(t *testing.T) {
	key := secret.Secret("hmac-secret-0123456789")
	e := setup(t, func(c *config.Config) { c.Security.HMACSecret = key })
	type answer struct {
		code                 int
		status, error, field string
	}
	// send posts body to path with the given signing headers ("" = none).
	send := func(method, path string, body []byte, ts, sig string) answer {
		t.Helper()
		req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		if ts != "" {
			req.Header.Set(api.HeaderTimestamp, ts)
		}
		if sig != "" {
			req.Header.Set(api.HeaderSignature, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ Status, Error, Field string }
		json.NewDecoder(resp.Body).Decode(&p)
		return answer{resp.StatusCode, p.Status, p.Error, p.Field}
	}
	now := time.Now()
	stamp := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	ts := stamp(now)
	sign := func(ts, method, path string, body []byte) string { return api.Sign(key, ts, method, path, body) }

	// The genuine calls: 9100 queued then released without an answer
	// (abandoned), 9101 queued.
	queued := []byte(`{"ani":"8013203420"}`)
	released := []byte(`{"reason":"Contact Hung Up"}`)
	for _, r := range []struct {
		path string
		body []byte
	}{
		{"/v1/contacts/9100/queued", queued},
		{"/v1/contacts/9101/queued", queued},
		{"/v1/contacts/9100/released", released},
	} {
		if a := send("POST", r.path, r.body, ts, sign(ts, "POST", r.path, r.body)); a.code != 200 || a.status != "accepted" {
			t.Fatalf("genuine signed %s: %+v", r.path, a)
		}
	}
	e.waitSynced(10*time.Second, "9100", "9101")
	before := map[string]lifecycle.Status{"9100": e.status("9100"), "9101": e.status("9101")}
	if before["9100"].ConfirmedState != "closed_abandoned" || before["9101"].ConfirmedState != "new" {
		t.Fatalf("genuine calls: 9100 %q, 9101 %q", before["9100"].ConfirmedState, before["9101"].ConfirmedState)
	}

	// The captured request: a signed released for 9100.
	capPath, capSig := "/v1/contacts/9100/released", sign(ts, "POST", "/v1/contacts/9100/released", released)
	old, ahead := stamp(now.Add(-10*time.Minute)), stamp(now.Add(10*time.Minute))
	v1 := func(ts string, body []byte) string { // the retired body-only scheme
		m := hmac.New(sha256.New, []byte(key.Reveal()))
		m.Write([]byte(ts + "."))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	for _, tc := range []struct {
		name, method, path string
		body               []byte
		ts, sig            string
		code               int
		field, says        string
	}{
		{"replayed to another contact", "POST", "/v1/contacts/9101/released", released, ts, capSig, 401, api.HeaderSignature, "does not match"},
		{"replayed to a contact never seen", "POST", "/v1/contacts/9102/released", released, ts, capSig, 401, api.HeaderSignature, "does not match"},
		{"replayed as another event", "POST", "/v1/contacts/9100/answered", released, ts, capSig, 401, api.HeaderSignature, "does not match"},
		{"replayed as another event on another contact", "POST", "/v1/contacts/9101/answered", released, ts, capSig, 401, api.HeaderSignature, "does not match"},
		{"signed for another method", "POST", capPath, released, ts, sign(ts, "PUT", capPath, released), 401, api.HeaderSignature, "does not match"},
		{"replayed with another method", "PUT", capPath, released, ts, capSig, 404, "", "no such endpoint"},
		{"tampered body", "POST", capPath, []byte(`{"reason":"Agent Hung Up"}`), ts, capSig, 401, api.HeaderSignature, "does not match"},
		{"body-only (v1) signature", "POST", "/v1/contacts/9101/released", released, ts, v1(ts, released), 401, api.HeaderSignature, "v1"},
		{"replayed outside the window", "POST", capPath, released, old, sign(old, "POST", capPath, released), 401, api.HeaderTimestamp, "from the bridge's clock"},
		{"timestamp in the future", "POST", capPath, released, ahead, sign(ahead, "POST", capPath, released), 401, api.HeaderTimestamp, "from the bridge's clock"},
		{"timestamp not Unix seconds", "POST", capPath, released, now.Format(time.RFC3339), capSig, 401, api.HeaderTimestamp, "Unix seconds"},
		{"timestamp swapped", "POST", capPath, released, stamp(now.Add(-time.Second)), capSig, 401, api.HeaderSignature, "does not match"},
		{"unsigned", "POST", "/v1/contacts/9101/released", released, "", "", 401, api.HeaderSignature, api.HeaderTimestamp},
		{"no timestamp", "POST", "/v1/contacts/9101/released", released, "", capSig, 401, api.HeaderTimestamp, "missing"},
		{"no signature", "POST", "/v1/contacts/9101/released", released, ts, "", 401, api.HeaderSignature, "missing"},
		{"signature not hex", "POST", "/v1/contacts/9101/released", released, ts, "sha256=" + capSig, 401, api.HeaderSignature, "64 hex"},
		{"signed with another secret", "POST", "/v1/contacts/9101/released", released, ts,
			api.Sign("other-secret-0123456", ts, "POST", "/v1/contacts/9101/released", released), 401, api.HeaderSignature, "does not match"},
		{"signed path unescaped, sent escaped", "POST", "/v1/contacts/%39101/released", released, ts, sign(ts, "POST", "/v1/contacts/9101/released", released), 401, api.HeaderSignature, "does not match"},
		{"oversized body", "POST", "/v1/contacts/9101/released", []byte(`{"notes":"` + strings.Repeat("x", 70<<10) + `"}`), ts, capSig, 413, "body", "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(tc.method, tc.path, tc.body, tc.ts, tc.sig)
			if a.code != tc.code || a.field != tc.field || !strings.Contains(a.error, tc.says) {
				t.Errorf("%d field %q %q; want %d field %q saying %q", a.code, a.field, a.error, tc.code, tc.field, tc.says)
			}
			if a.code == 401 && !strings.Contains(a.error, "v2") && tc.field == api.HeaderSignature && tc.sig != "" {
				t.Errorf("a refused signature should say which scheme is expected: %q", a.error)
			}
		})
	}
	t.Run("replayed inside the window is a duplicate", func(t *testing.T) {
		if a := send("POST", capPath, released, ts, capSig); a.code != 200 || a.status != "duplicate" {
			t.Errorf("%+v, want 200 duplicate", a)
		}
	})
	t.Run("signed over the escaped path as sent", func(t *testing.T) {
		// %39 is "9": the id is 9101, and the signature covers the path as sent.
		path := "/v1/contacts/%39101/queued"
		if a := send("POST", path, queued, ts, sign(ts, "POST", path, queued)); a.code != 200 || a.status != "duplicate" {
			t.Errorf("%+v, want 200 duplicate (9101 was queued already)", a)
		}
	})
	t.Run("query string not signed", func(t *testing.T) {
		path := "/v1/contacts/9101/queued"
		if a := send("POST", path+"?wait=0s", queued, ts, strings.ToUpper(sign(ts, "POST", path, queued))); a.code != 200 || a.status != "duplicate" {
			t.Errorf("%+v, want 200 duplicate", a)
		}
	})

	// Nothing the refused requests carried reached the store or ServiceNow.
	for id, was := range before {
		e.waitSynced(10*time.Second, id)
		if now := e.status(id); now.Events != was.Events || now.ConfirmedState != was.ConfirmedState || now.DesiredState != was.DesiredState {
			t.Errorf("call %s changed: events %d→%d, state %q→%q", id, was.Events, now.Events, was.ConfirmedState, now.ConfirmedState)
		}
	}
	if code, out := e.do("GET", "/v1/contacts/9102", apiKey, nil); code != 404 {
		t.Errorf("a replay created call 9102: %d %s", code, out)
	}
	if n := len(e.sim.Records("interaction")); n != 2 {
		t.Errorf("%d interactions, want 2", n)
	}
	if code, _ := e.do("GET", "/v1/contacts/9100", apiKey, nil); code != 200 {
		t.Errorf("status needs no signature: %d", code)
	}
}

// jsonFields lists a struct's JSON field names.
func jsonFields(v any) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

type openAPIDoc struct {
	Paths      map[string]map[string]openAPIOp `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

type openAPIOp struct {
	Security  *[]map[string]any `json:"security"`
	Responses map[string]any    `json:"responses"`
}

// TestOpenAPIMatchesTheServer: the served document is the checked-in one,
// every documented operation answers with a documented status, and the
// documented schemas have exactly the fields the code sends and reads.
func TestOpenAPIMatchesTheServer(t *testing.T) {
	e := setup(t)
	onDisk, err := os.ReadFile("../api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	code, served := e.do("GET", "/openapi.json", "", nil)
	if code != 200 || !bytes.Equal(served, onDisk) {
		t.Fatalf("/openapi.json: %d, same as api/openapi.json: %v", code, bytes.Equal(served, onDisk))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(onDisk, &doc); err != nil {
		t.Fatal(err)
	}
	e.post("9200", "queued", map[string]any{"ani": "8013203420"})
	for path, ops := range doc.Paths {
		for method, op := range ops {
			url := strings.NewReplacer("{masterContactId}", "9200", "{event}", "answered", "{id}", "1").Replace(path)
			auth := "studio"
			if op.Security != nil {
				auth = "none"
				if len(*op.Security) > 0 {
					auth = "admin"
				}
			}
			for _, withAuth := range []bool{true, false} {
				if !withAuth && auth == "none" {
					continue
				}
				req, _ := http.NewRequest(strings.ToUpper(method), e.url+url, strings.NewReader(`{}`))
				if withAuth && auth == "studio" {
					req.Header.Set("Authorization", "Bearer "+apiKey)
				}
				if withAuth && auth == "admin" {
					req.SetBasicAuth("admin", "console-pass")
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if _, ok := op.Responses[strconv.Itoa(resp.StatusCode)]; !ok {
					t.Errorf("%s %s (auth %v): status %d is not documented", method, path, withAuth, resp.StatusCode)
				}
			}
		}
	}
	schema := func(name string) []string {
		var out []string
		for k := range doc.Components.Schemas[name].Properties {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for name, want := range map[string][]string{
		"EventBody":  ctibridge.KnownFields(),
		"EventReply": jsonFields(api.EventReply{}),
		"Problem":    jsonFields(api.Problem{}),
		"Status":     jsonFields(lifecycle.Status{}),
		"ErrorEntry": jsonFields(bridge.ErrorView{}),
	} {
		if got := schema(name); !slices.Equal(got, want) {
			t.Errorf("schema %s documents %v, the code has %v", name, got, want)
		}
	}
	if code, _ := e.do("GET", "/v2/contacts/1", apiKey, nil); code != 404 {
		t.Errorf("an undocumented path answered %d", code)
	}
}

// TestAdminListener: with a separate admin listener, the console and the
// admin API live only there; health and metrics answer on both.
func TestAdminListener(t *testing.T) {
	_, url := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, url, map[string]string{"CTIBRIDGE_CONSOLE_PASSWORD": "console-pass", "CTIBRIDGE_ADMIN_LISTEN": "127.0.0.1:0"})
	var a string
	_, base := bridgetest.Serve(t, cfg, bridgetest.WithAdmin(&a))
	m := strings.TrimPrefix(base, "http://")
	status := func(base, path string, basic bool) int {
		req, _ := http.NewRequest("GET", "http://"+base+path, nil)
		if basic {
			req.SetBasicAuth("admin", "console-pass")
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		addr, path string
		basic      bool
		want       int
	}{
		{m, "/healthz", false, 200}, {a, "/healthz", false, 200},
		{m, "/metrics", false, 200}, {a, "/metrics", false, 200},
		{m, "/readyz", false, 200}, {a, "/readyz", false, 200},
		{m, "/admin/errors", true, 404}, {a, "/admin/errors", true, 200},
		{m, "/console/", false, 404}, {a, "/console/", false, 303},
		{a, "/v1/contacts/1", false, 404},
	} {
		if got := status(tc.addr, tc.path, tc.basic); got != tc.want {
			where := "main"
			if tc.addr == a {
				where = "admin"
			}
			t.Errorf("%s %s: %d, want %d", where, tc.path, got, tc.want)
		}
	}
}
