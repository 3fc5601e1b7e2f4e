package snowsim_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// documentedBatch is the Batch API reference's cURL example (ServiceNow/
// ServiceNowDocs markdown/api-reference/rest-apis/batch-api.md, "Batch -
// POST /now/batch"), with the line breaks the page puts inside the Base64
// body taken out. The POST's body decodes to
// {'urgency':'1', 'short_description':'My computer broke', 'comments':'Elevating urgency, this is a blocking issue'}.
const documentedBatch = `{
   "batch_request_id":"1",
   "rest_requests":[
      {
         "id":"11",
         "headers":[
            {"name":"Content-Type","value":"application/xml"},
            {"name":"Accept","value":"application/xml"}
         ],
         "url":"/api/global/user_role_inheritance",
         "method":"GET"
      },
      {
         "id":"12",
         "exclude_response_headers":true,
         "headers":[
            {"name":"Content-Type","value":"application/json"},
            {"name":"Accept","value":"application/json"}
         ],
         "url":"/api/now/table/incident?sysparm_limit=1",
         "method":"GET"
      },
      {
         "id":"13",
         "exclude_response_headers":true,
         "headers":[
            {"name":"Content-Type","value":"application/json"},
            {"name":"Accept","value":"application/json"}
         ],
         "url": "/api/now/table/incident",
         "method":"POST",
         "body": "eyd1cmdlbmN5JzonMScsICdzaG9ydF9kZXNjcmlwdGlvbic6J015IGNvbXB1dGVyIGJyb2tlJywgJ2NvbW1lbnRzJzonRWxldmF0aW5nIHVyZ2VuY3ksIHRoaXMgaXMgYSBibG9ja2luZyBpc3N1ZSd9"
      }
   ]
}`

// The keys of the documented reply and of each serviced entry in it.
var (
	documentedReplyKeys    = []string{"batch_request_id", "serviced_requests", "unserviced_requests"}
	documentedServicedKeys = []string{"body", "execution_time", "headers", "id", "status_code", "status_text"}
)

type servicedEntry struct {
	ID            string `json:"id"`
	Body          string `json:"body"`
	StatusCode    int    `json:"status_code"`
	StatusText    string `json:"status_text"`
	Headers       []struct{ Name, Value string }
	ExecutionTime *float64 `json:"execution_time"`
}

type batchReply struct {
	raw        map[string]any
	ID         string          `json:"batch_request_id"`
	Serviced   []servicedEntry `json:"serviced_requests"`
	Unserviced []string        `json:"unserviced_requests"`
}

func decodeBatch(t *testing.T, r resp) batchReply {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("batch: %d %s", r.status, r.raw)
	}
	var b batchReply
	if err := json.Unmarshal([]byte(r.raw), &b); err != nil {
		t.Fatalf("batch reply: %v: %s", err, r.raw)
	}
	b.raw = r.body
	return b
}

// body decodes a serviced entry's Base64 body as JSON.
func (e servicedEntry) json(t *testing.T) map[string]any {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(e.Body)
	if err != nil {
		t.Fatalf("entry %s: body not Base64: %v", e.ID, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("entry %s: body %q: %v", e.ID, b, err)
	}
	return out
}

func (e servicedEntry) header(name string) string {
	for _, h := range e.Headers {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

func batchItems(items ...string) string {
	return `{"batch_request_id":"b1","rest_requests":[` + strings.Join(items, ",") + `]}`
}

func item(id, method, url string, body any) string {
	m := map[string]any{"id": id, "method": method, "url": url, "exclude_response_headers": false}
	if body != nil {
		b, _ := json.Marshal(body)
		m["body"] = base64.StdEncoding.EncodeToString(b)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestBatchDocumentedExample: the reference's example request gets a reply
// shaped as the reference shows it: the two Table API requests answered 200
// OK (one incident, headers left out as asked) and 201 Created (the
// incident made from the single-quoted JSON body), in order, with execution
// times; the request to an API the simulator does not have is answered 400
// in its own entry, with its headers.
func TestBatchDocumentedExample(t *testing.T) {
	s := start(t, snowsim.Options{})
	r := s.do("POST", "/api/now/v1/batch", admin, documentedBatch)
	b := decodeBatch(t, r)
	if keys := slices.Sorted(maps.Keys(b.raw)); !slices.Equal(keys, documentedReplyKeys) {
		t.Errorf("reply keys %v, want the documented %v", keys, documentedReplyKeys)
	}
	if b.ID != "1" || len(b.Serviced) != 3 || b.Unserviced == nil || len(b.Unserviced) != 0 {
		t.Fatalf("reply %s", r.raw)
	}
	for i, e := range b.raw["serviced_requests"].([]any) {
		if keys := slices.Sorted(maps.Keys(e.(map[string]any))); !slices.Equal(keys, documentedServicedKeys) {
			t.Errorf("serviced_requests[%d] keys %v, want the documented %v", i, keys, documentedServicedKeys)
		}
	}
	other, list, created := b.Serviced[0], b.Serviced[1], b.Serviced[2]
	if other.ID != "11" || other.StatusCode != 400 || other.StatusText != "Bad Request" ||
		other.json(t)["error"].(map[string]any)["message"] != "Requested URI does not represent any resource" ||
		!strings.HasPrefix(other.header("Content-Type"), "application/json") {
		t.Errorf("11 (not a Table API request): %+v", other)
	}
	if list.ID != "12" || list.StatusCode != 200 || list.StatusText != "OK" || len(list.Headers) != 0 || list.ExecutionTime == nil {
		t.Errorf("12: %+v", list)
	}
	if rows, _ := list.json(t)["result"].([]any); len(rows) != 1 {
		t.Errorf("12: %d incidents, want 1 (sysparm_limit=1)", len(rows))
	}
	if created.ID != "13" || created.StatusCode != 201 || created.StatusText != "Created" || len(created.Headers) != 0 {
		t.Errorf("13: %+v", created)
	}
	inc := created.json(t)["result"].(map[string]any)
	if inc["short_description"] != "My computer broke" || !strings.HasPrefix(inc["number"].(string), "INC") {
		t.Errorf("13: created %v", inc)
	}
	if rec, ok := s.s.Record("incident", inc["sys_id"].(string)); !ok || rec["short_description"] != "My computer broke" {
		t.Errorf("the incident is not stored: %v", rec)
	}
	if j := s.s.Journal("incident", inc["sys_id"].(string), "comments"); len(j) != 1 || j[0].Value != "Elevating urgency, this is a blocking issue" {
		t.Errorf("comments journal %v", j)
	}
	if st := s.s.Stats(); st.Batches != 1 || st.ByTable["incident"]["GET"] != 1 || st.ByTable["incident"]["POST"] != 1 {
		t.Errorf("stats %+v: want one batch and its two Table API requests", st)
	}
}

// TestBatchSubRequestsAreTableRequests: each sub-request meets what a Table
// API request meets, as the batch's user: ACL refusals, hardening, scripted
// faults and the hourly rate limit (each sub-request counts), each in its
// own entry while the batch answers 200.
func TestBatchSubRequestsAreTableRequests(t *testing.T) {
	s := start(t, snowsim.Options{Faults: snowsim.Faults{RateLimitPerHour: 4,
		FailNext: &snowsim.FailNext{Count: 1, Status: 503, Table: "sys_user"}}})
	r := s.do("POST", "/api/now/v1/batch", cti, batchItems(
		item("create", "POST", "/api/now/table/interaction", map[string]string{"type": "phone", "caller_phone_number": "(801) 320-3420"}),
		item("refused", "POST", "/api/now/table/incident", map[string]string{"short_description": "x"}),
		item("fault", "GET", "/api/now/v2/table/sys_user?sysparm_limit=1", nil),
		item("missing", "GET", "/api/now/table/interaction/0123456789abcdef0123456789abcdef", nil),
		item("limited", "GET", "/api/now/table/sys_user?sysparm_limit=1", nil),
	))
	b := decodeBatch(t, r)
	if len(b.Serviced) != 5 {
		t.Fatalf("reply %s", r.raw)
	}
	byID := map[string]servicedEntry{}
	for _, e := range b.Serviced {
		byID[e.ID] = e
	}
	if e := byID["create"]; e.StatusCode != 201 || e.json(t)["result"].(map[string]any)["caller_phone_number"] != "+18013203420" ||
		e.json(t)["result"].(map[string]any)["sys_created_by"] != "cti_integration" || e.header("Location") == "" {
		t.Errorf("create (E.164 hardening, as the batch's user): %d %s", e.StatusCode, e.json(t))
	}
	if e := byID["refused"]; e.StatusCode != 403 || !strings.Contains(fmt.Sprint(e.json(t)), "ACL Exception Insert Failed") {
		t.Errorf("refused: %d %v", e.StatusCode, e.json(t))
	}
	if e := byID["fault"]; e.StatusCode != 503 {
		t.Errorf("scripted fault: %d", e.StatusCode)
	}
	if e := byID["missing"]; e.StatusCode != 404 || e.StatusText != "Not Found" {
		t.Errorf("missing: %d %s", e.StatusCode, e.StatusText)
	}
	if e := byID["limited"]; e.StatusCode != 429 || e.header("Retry-After") == "" || e.header("X-RateLimit-Rule") == "" {
		t.Errorf("fifth Table API request with a limit of 4: %d %+v", e.StatusCode, e.Headers)
	}
	if st := s.s.Stats(); st.Total != 5 || st.Batches != 1 || st.HTTPRequests != 1 {
		t.Errorf("stats: %d Table API requests, %d batches, %d HTTP requests; want 5, 1, 1", st.Total, st.Batches, st.HTTPRequests)
	}
}

// TestBatchRefusals: the batch itself is refused, with the field at fault
// named, when it is unauthenticated, malformed, sent with another method,
// on an unversioned path, or when the Batch API is off.
func TestBatchRefusals(t *testing.T) {
	s := start(t, snowsim.Options{})
	ok := batchItems(item("1", "GET", "/api/now/table/sys_user?sysparm_limit=1", nil))
	for _, c := range []struct {
		name, method, path, auth, body string
		status                         int
		want                           string
	}{
		{"no credentials", "POST", "/api/now/v1/batch", "", ok, 401, "User Not Authenticated"},
		{"GET", "GET", "/api/now/v1/batch", admin, "", 405, "Method not Supported"},
		{"unversioned", "POST", "/api/now/batch", admin, ok, 400, "Requested URI does not represent any resource"},
		{"v2", "POST", "/api/now/v2/batch", admin, ok, 400, "Requested URI does not represent any resource"},
		{"not JSON", "POST", "/api/now/v1/batch", admin, "rest_requests", 400, "not a batch request"},
		{"no rest_requests", "POST", "/api/now/v1/batch", admin, `{"batch_request_id":"1"}`, 400, "rest_requests is required"},
		{"no url", "POST", "/api/now/v1/batch", admin, `{"rest_requests":[{"id":"1","method":"GET"}]}`, 400, "rest_requests[0].url is required"},
		{"no id", "POST", "/api/now/v1/batch", admin, `{"rest_requests":[{"method":"GET","url":"/api/now/table/sys_user"}]}`, 400, "rest_requests[0].id is required"},
		{"absolute url", "POST", "/api/now/v1/batch", admin, `{"rest_requests":[{"id":"1","method":"GET","url":"https://elsewhere.example/api/now/table/sys_user"}]}`, 400, "rest_requests[0].url"},
		{"body not Base64", "POST", "/api/now/v1/batch", admin, `{"rest_requests":[{"id":"1","method":"POST","url":"/api/now/table/incident","body":"{\"a\":1}"}]}`, 400, "rest_requests[0].body must be Base64"},
	} {
		r := s.do(c.method, c.path, c.auth, c.body)
		if r.status != c.status || !strings.Contains(r.raw, c.want) || r.body["status"] != "failure" {
			t.Errorf("%s: %d %s, want %d with %q", c.name, r.status, r.raw, c.status, c.want)
		}
	}
	off := start(t, snowsim.Options{NoBatchAPI: true})
	if r := off.do("POST", "/api/now/v1/batch", admin, ok); r.status != 400 || r.errMessage() != "Requested URI does not represent any resource" {
		t.Errorf("Batch API off: %d %s", r.status, r.raw)
	}
	if st := off.s.Stats(); st.Total != 0 || st.Batches != 0 || st.HTTPRequests != 1 {
		t.Errorf("the Batch API off: %d Table API requests, %d batches, %d HTTP requests; want 0, 0, 1 (the refused one)", st.Total, st.Batches, st.HTTPRequests)
	}
}

// TestBatchLimits: a batch running past 30 seconds, an item reply over the
// X-BATCHREQUEST-MAX-OUTPUT-SIZE asked for, leave that item and the rest
// unserviced, listed by id. Under a capacity of 1 a batch takes one slot
// for all its sub-requests.
func TestBatchLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := snowsim.New(snowsim.Options{Capacity: 1, Faults: snowsim.Faults{Latency: 12 * time.Second}})
		var items []string
		for i := range 5 {
			items = append(items, item(fmt.Sprint(i), "GET", "/api/now/table/sys_user?sysparm_limit=1", nil))
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/api/now/v1/batch", strings.NewReader(batchItems(items...)))
		req.SetBasicAuth("admin", "admin")
		start := time.Now()
		s.ServeHTTP(rec, req)
		var b batchReply
		json.Unmarshal(rec.Body.Bytes(), &b)
		if rec.Code != 200 || len(b.Serviced) != 3 || !slices.Equal(b.Unserviced, []string{"3", "4"}) {
			t.Errorf("12 s a request, 30 s a batch: %d, %d serviced, unserviced %q", rec.Code, len(b.Serviced), b.Unserviced)
		}
		if took := time.Since(start); took != 36*time.Second {
			t.Errorf("the batch took %s, want 36s (three requests one after another)", took)
		}
		if e := b.Serviced[0]; e.ExecutionTime == nil || *e.ExecutionTime != 12000 {
			t.Errorf("execution_time %v, want 12000 ms", e.ExecutionTime)
		}
		if st := s.Stats(); st.PeakConcurrent != 1 || st.Rejected != 0 {
			t.Errorf("peak %d, rejected %d: the batch must hold one slot", st.PeakConcurrent, st.Rejected)
		}
	})
	s := start(t, snowsim.Options{})
	body := batchItems(item("small", "GET", "/api/now/table/sys_user?sysparm_limit=1&sysparm_fields=sys_id", nil),
		item("large", "GET", "/api/now/table/sys_user", nil), item("after", "GET", "/api/now/table/sys_user?sysparm_limit=1", nil))
	req, _ := http.NewRequest("POST", s.url+"/api/now/v1/batch", strings.NewReader(body))
	req.SetBasicAuth("admin", "admin")
	req.Header.Set("X-BATCHREQUEST-MAX-OUTPUT-SIZE", "2000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b batchReply
	json.NewDecoder(resp.Body).Decode(&b)
	if len(b.Serviced) != 1 || b.Serviced[0].ID != "small" || !slices.Equal(b.Unserviced, []string{"large", "after"}) {
		t.Errorf("output limit: %+v", b)
	}
}

// TestBatchDroppedReply: when a fault drops a write's reply inside a batch,
// the whole batch's reply is lost, and every write in it is done.
func TestBatchDroppedReply(t *testing.T) {
	s := start(t, snowsim.Options{Faults: snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Method: "POST"}}})
	body := batchItems(item("1", "POST", "/api/now/table/interaction", map[string]string{"type": "phone", "short_description": "first"}),
		item("2", "POST", "/api/now/table/interaction", map[string]string{"type": "phone", "short_description": "second"}))
	req, _ := http.NewRequest("POST", s.url+"/api/now/v1/batch", strings.NewReader(body))
	req.SetBasicAuth("cti_integration", "cti_integration")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the reply arrived: %d", resp.StatusCode)
	}
	var got []string
	for _, r := range s.s.Records("interaction") {
		got = append(got, r["short_description"])
	}
	if !slices.Equal(got, []string{"first", "second"}) {
		t.Errorf("interactions %q, want both written", got)
	}
}
