package snowsim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ctibridge/ctibridge/snowsim"
)

// The simulator must never be the bottleneck of a bridge benchmark. These
// measure its raw request rate over real HTTP (loopback, keep-alive), with
// the default dataset and with 100,000 generated callers.
func benchSim(b *testing.B, data *snowsim.Dataset, method, path, body string) {
	s := snowsim.New(snowsim.Options{Data: data})
	ts := httptest.NewServer(s)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, ts.URL+path, rd)
			req.SetBasicAuth("cti_integration", "cti_integration")
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkSimCreateInteraction(b *testing.B) {
	benchSim(b, nil, "POST", "/api/now/table/interaction", `{"type":"phone","state":"new","short_description":"bench"}`)
}

func BenchmarkSimCallerLookup(b *testing.B) {
	q := "/api/now/table/sys_user?sysparm_query=active=true%5EphoneIN8013203420,(801)%20320-3420,%2B18013203420%5EORmobile_phoneIN8013203420&sysparm_fields=sys_id,name"
	b.Run("default", func(b *testing.B) { benchSim(b, nil, "GET", q, "") })
	b.Run("100k", func(b *testing.B) { benchSim(b, snowsim.GenerateDataset(100000, 1), "GET", q, "") })
}

// The mix a bridge sends per call, served in process (no network, so the
// figures are the simulator's own work): a batch of the three caller
// lookups by phone number among 100,000 callers, the create of the
// interaction with the sys_id the bridge chose, a PATCH adding work notes, a
// batch of two related-record creates and the agent's lookup by user_name.
// Requests carry basic auth and the session cookie, as the bridge's do.
func BenchmarkSimMix(b *testing.B) {
	s := snowsim.New(snowsim.Options{Data: snowsim.GenerateDataset(100000, 1)})
	cookie := mixSession(b, s)
	w := &mixSink{h: http.Header{}}
	// Requests are made from templates (the headers), so that the figures
	// are mostly the simulator's own.
	templates := map[string]*http.Request{}
	do := func(b *testing.B, method, target, body string) {
		key := method
		if body != "" {
			key += " body"
		}
		tmpl := templates[key]
		if tmpl == nil {
			tmpl = httptest.NewRequest(method, "/", nil)
			tmpl.Host = "sim.example"
			tmpl.Header.Set("Authorization", "Basic Y3RpX2ludGVncmF0aW9uOmN0aV9pbnRlZ3JhdGlvbg==")
			tmpl.Header.Set("Accept", "application/json")
			tmpl.Header.Set("Cookie", cookie)
			if body != "" {
				tmpl.Header.Set("Content-Type", "application/json")
			}
			templates[key] = tmpl
		}
		req := *tmpl
		path, query, _ := strings.Cut(target, "?")
		req.URL = &url.URL{Path: path, RawQuery: query}
		req.RequestURI = target
		req.Body, req.ContentLength = http.NoBody, 0
		if body != "" {
			req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		}
		clear(w.h)
		w.status = 0
		w.body.Reset()
		s.ServeHTTP(w, &req)
		if w.status >= 300 {
			b.Fatalf("%s %s: %d", method, target, w.status)
		}
		// Every item of a batch must have succeeded too.
		if bytes.Contains(w.body.Bytes(), []byte(`"status_code":4`)) || bytes.Contains(w.body.Bytes(), []byte(`"status_code":5`)) {
			b.Fatalf("%s %s: an item failed: %s", method, target, w.body.Bytes())
		}
	}
	lookups := make([]string, 64) // for numbers 801-555-0000 to 0063, some of them callers
	for i := range lookups {
		digits := fmt.Sprintf("%04d", i)
		lookups[i] = mixBatch(
			mixItem{"GET", callerLookupURL("sys_user", digits), ""},
			mixItem{"GET", callerLookupURL("customer_contact", digits), ""},
			mixItem{"GET", callerLookupURL("csm_consumer", digits), ""})
	}
	do(b, "POST", "/api/now/v1/batch", lookups[0]) // builds the phone indexes
	b.Run("lookup-batch", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			do(b, "POST", "/api/now/v1/batch", lookups[i%len(lookups)])
		}
	})
	var ids []string
	b.Run("create", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("%08x%024x", len(ids)+1, i)
			ids = append(ids, id)
			do(b, "POST", "/api/now/table/interaction", `{"assigned_to":"","caller_phone_number":"+18015556522","direction":"inbound",`+
				`"short_description":"Phone call from +18015556522, skill Support, CXone contact 1217430000009","state":"work_in_progress","sys_id":"`+id+`","type":"phone"}`)
		}
	})
	b.Run("patch-work-notes", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			do(b, "PATCH", "/api/now/table/interaction/"+ids[i%len(ids)], `{"work_notes":"ctibridge: call ended. reason: hang up"}`)
		}
	})
	related := 0
	b.Run("related-batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			related++
			i := related
			it := ids[i%len(ids)]
			rel := func(n int) mixItem {
				return mixItem{"POST", "/api/now/table/interaction_related_record", fmt.Sprintf(`{"document_id":"9ecfb245994916ed9e3779b97f4a7c16",`+
					`"document_table":"sn_customerservice_case","interaction":%q,"sys_id":"%08x%08x%016x","type":"task"}`, it, n, i, 7)}
			}
			do(b, "POST", "/api/now/v1/batch", mixBatch(rel(1), rel(2)))
		}
	})
	const byName = "/api/now/table/sys_user?sysparm_fields=sys_id%2Cuser_name%2Cname%2Cemail&sysparm_limit=2&sysparm_no_count=true&sysparm_query=active%3Dtrue%5Euser_name%3Dasmith"
	do(b, "GET", byName, "") // builds the user_name index
	b.Run("user-by-name", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			do(b, "GET", byName, "")
		}
	})
}

// mixSession opens the session the benchmark's requests then reuse.
func mixSession(b *testing.B, s *snowsim.Server) string {
	req := httptest.NewRequest("GET", "/api/now/table/sys_user?sysparm_limit=1", nil)
	req.SetBasicAuth("cti_integration", "cti_integration")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	var parts []string
	for _, c := range w.Result().Cookies() {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) == 0 {
		b.Fatal("no session cookie")
	}
	return strings.Join(parts, "; ")
}

type mixItem struct{ method, url, body string }

func mixBatch(items ...mixItem) string {
	type header struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type item struct {
		ID      string   `json:"id"`
		Method  string   `json:"method"`
		URL     string   `json:"url"`
		Headers []header `json:"headers"`
		Body    string   `json:"body,omitempty"`
	}
	var out struct {
		ID    string `json:"batch_request_id"`
		Items []item `json:"rest_requests"`
	}
	out.ID = "1"
	for i, it := range items {
		x := item{ID: fmt.Sprint(i), Method: it.method, URL: it.url, Headers: []header{{"Accept", "application/json"}}}
		if it.body != "" {
			x.Body = base64.StdEncoding.EncodeToString([]byte(it.body))
			x.Headers = append(x.Headers, header{"Content-Type", "application/json"})
		}
		out.Items = append(out.Items, x)
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// callerLookupURL is the bridge's lookup of 801-555-DDDD in one caller
// table: every spelling of the number in each phone field.
func callerLookupURL(table, digits string) string {
	n := "801555" + digits
	a, p, l := n[:3], n[3:6], n[6:]
	spellings := []string{"+1" + n, "1" + n, "001" + n, "011" + n,
		"+1 " + a + " " + p + " " + l, "+1-" + a + "-" + p + "-" + l, "+1." + a + "." + p + "." + l, "+1 " + a + "-" + p + "-" + l,
		"1 " + a + " " + p + " " + l, "1-" + a + "-" + p + "-" + l, "1." + a + "." + p + "." + l, "1 " + a + "-" + p + "-" + l,
		"(" + a + ") " + p + "-" + l, n, a + "-" + p + "-" + l, a + "." + p + "." + l, a + " " + p + " " + l, "(" + a + ")" + p + "-" + l,
		"(" + a + ") " + p + " " + l, "(" + a + ") " + p + "." + l, "1 (" + a + ") " + p + "-" + l, "1(" + a + ")" + p + "-" + l,
		"+1 (" + a + ") " + p + "-" + l, "+1(" + a + ")" + p + "-" + l, "+1 (" + a + ") " + p + " " + l}
	in := strings.Join(spellings, ",")
	phones := []string{"phone", "mobile_phone", "home_phone"}
	fields := "sys_id,name,sys_updated_on,phone,mobile_phone,home_phone"
	switch table {
	case "sys_user":
		fields += ",sys_class_name"
	case "customer_contact":
		fields += ",account"
	case "csm_consumer":
		phones[0] = "business_phone"
		fields = "sys_id,name,sys_updated_on,business_phone,mobile_phone,home_phone"
	}
	q := "active=true^" + phones[0] + "IN" + in + "^OR" + phones[1] + "IN" + in + "^OR" + phones[2] + "IN" + in
	if table == "sys_user" {
		q += "^sys_class_nameNOT INcustomer_contact,csm_consumer_user"
	}
	q += "^ORDERBYDESCsys_updated_on"
	v := url.Values{"sysparm_exclude_reference_link": {"true"}, "sysparm_fields": {fields}, "sysparm_limit": {"10"}, "sysparm_query": {q}}
	return "/api/now/table/" + table + "?" + v.Encode()
}

// mixSink is a ResponseWriter that keeps the status and drops the body.
type mixSink struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *mixSink) Header() http.Header { return w.h }
func (w *mixSink) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *mixSink) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
