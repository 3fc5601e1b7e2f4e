package bridge_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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
		c.APIKeys = append(c.APIKeys, entry)
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

func TestSignedRequests(t *testing.T) {
	key := secret.Secret("hmac-secret-0123456789")
	e := setup(t, func(c *config.Config) { c.Security.HMACSecret = key })
	body := []byte(`{"ani":"8013203420"}`)
	send := func(ts, sig string) (int, string) {
		req, _ := http.NewRequest("POST", e.url+"/v1/contacts/9100/queued", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apiKey)
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
		var p struct{ Field string }
		json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p.Field
	}
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	for _, tc := range []struct {
		name, ts, sig string
		status        int
		field         string
	}{
		{"unsigned", "", "", 401, api.HeaderSignature},
		{"wrong signature", now, api.Sign("other-secret-0123456", now, body), 401, api.HeaderSignature},
		{"stale", old, api.Sign(key, old, body), 401, api.HeaderTimestamp},
		{"signed", now, api.Sign(key, now, body), 200, ""},
		{"replayed within the window: a duplicate", now, api.Sign(key, now, body), 200, ""},
	} {
		if code, field := send(tc.ts, tc.sig); code != tc.status || field != tc.field {
			t.Errorf("%s: %d field %q, want %d %q", tc.name, code, field, tc.status, tc.field)
		}
	}
	if code, _ := e.do("GET", "/v1/contacts/9100", apiKey, nil); code != 200 {
		t.Errorf("status needs no signature: %d", code)
	}
	e.waitSynced(10*time.Second, "9100")
	if n := len(e.sim.Records("interaction")); n != 1 {
		t.Errorf("%d interactions, want 1", n)
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
		"EventBody":  lifecycle.KnownFields(),
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
