package bridge_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/snowsim"
)

// metric reads one unlabelled sample from /metrics (-1 when absent).
func (e *env) metric(name string) int {
	e.t.Helper()
	_, out := e.do("GET", "/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(out)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		e.t.Fatalf("%s: %v", name, err)
	}
	return int(v)
}

// TestConcurrencyLimitIsObservable: the adaptive limit on requests to
// ServiceNow is a metric and on the console's budget tile; it starts at 16,
// grows while calls wait and the instance answers as quickly as before, and
// a 503 cuts it back, which the overload counter shows.
func TestConcurrencyLimitIsObservable(t *testing.T) {
	sim := snowsim.New(snowsim.Options{})
	sim.SetFaults(snowsim.Faults{Latency: 80 * time.Millisecond})
	e := setupWith(t, sim, func(c *config.Config) { c.Selected().MaxConcurrent = 32 })
	if got, max := e.metric("ctibridge_servicenow_concurrency_limit"), e.metric("ctibridge_servicenow_concurrency_max"); got != 16 || max != 32 {
		t.Fatalf("at start: limit %d of %d, want 16 of 32", got, max)
	}
	var ids []string
	for i := range 200 {
		id := fmt.Sprint(8100 + i)
		ids = append(ids, id)
		e.post(id, "queued", map[string]any{"ani": fmt.Sprintf("+1 312 555 %04d", i)})
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.metric("ctibridge_servicenow_concurrency_limit") <= 16 {
		if time.Now().After(deadline) {
			t.Fatal("the limit did not grow while 200 calls waited for an instance answering in a steady 80 ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.waitSynced(time.Minute, ids...)
	grown := e.metric("ctibridge_servicenow_concurrency_limit")
	if grown > 32 {
		t.Errorf("limit %d, above maxConcurrent 32", grown)
	}
	if tile := consoleConcurrency(t, e); tile != fmt.Sprintf("0/%d in flight (limit adapts, up to 32)", grown) {
		t.Errorf("console budget tile: %q, want the limit %d", tile, grown)
	}

	// Nothing else runs now: one call meets a 503, the limit goes back to
	// its start and one call alone does not raise it again.
	e.sim.SetFaults(snowsim.Faults{Latency: 80 * time.Millisecond, FailNext: &snowsim.FailNext{Count: 1, Status: http.StatusServiceUnavailable}})
	e.post("8099", "queued", map[string]any{"ani": "+1 312 555 9999"})
	e.waitSynced(10*time.Second, "8099")
	if got := e.metric("ctibridge_servicenow_concurrency_limit"); got != 16 {
		t.Errorf("after a 503: limit %d, want 16", got)
	}
	if got := e.metric("ctibridge_servicenow_overloaded_total"); got != 1 {
		t.Errorf("overloaded_total %d, want 1", got)
	}
}

// consoleConcurrency logs in to the console and returns the budget tile's
// line on requests in flight.
func consoleConcurrency(t *testing.T, e *env) string {
	t.Helper()
	c := &http.Client{Jar: &cookieJar{}}
	resp, err := c.PostForm(e.url+"/console/login", url.Values{"username": {"admin"}, "password": {"console-pass"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(e.url + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`\d+/\d+ in flight \([^)]*\)`).Find([]byte(html.UnescapeString(string(raw))))
	return string(m)
}
