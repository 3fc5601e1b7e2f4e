package bridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/cxonesim"
)

// TestPollerAndStudioConverge: with cxone.poll on, a transferred call that
// CXone reports and Studio also posts (with the agent's user name, which the
// poller does not know) ends as one interaction, closed, assigned to the
// second agent, with one transfer note and one end note.
func TestPollerAndStudioConverge(t *testing.T) {
	t.Parallel()
	sn, cx, base := withCXone(t, "1s")

	m, err := cx.AddCall(cxonesim.Script{ANI: "8013203420", AgentID: 1001, QueueFor: time.Second, TalkFor: 4 * time.Second,
		TransferTo: &cxonesim.Transfer{AgentID: 1002, After: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	post := func(kind, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/contacts/%d/%s", base, m, kind), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %d", kind, resp.StatusCode)
		}
	}
	post("queued", fmt.Sprintf(`{"ani":"8013203420","contactId":"%d"}`, m))
	post("answered", fmt.Sprintf(`{"agentId":"1001","agentUserName":"jdoe@example.com","contactId":"%d"}`, m))
	post("transferred", fmt.Sprintf(`{"agentId":"1002","contactId":"%d"}`, m+1))

	var rec map[string]string
	var sysID string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		recs := sn.Records("interaction")
		if len(recs) == 1 {
			rec, sysID = recs[0], recs[0]["sys_id"]
			if rec["state"] == "closed_complete" {
				break
			}
		}
	}
	if rec["state"] != "closed_complete" {
		t.Fatalf("no closed interaction from the poller's release: %v", rec)
	}
	post("released", fmt.Sprintf(`{"contactId":"%d","reason":"hangup"}`, m+1)) // Studio's release, late: a duplicate
	if n := len(sn.Records("interaction")); n != 1 {
		t.Fatalf("%d interactions, want 1", n)
	}
	var notes []string
	for _, e := range sn.Journal("interaction", sysID, "work_notes") {
		notes = append(notes, e.Value)
	}
	all := strings.Join(notes, "\n")
	if strings.Count(all, "transferred from") != 1 || strings.Count(all, "call ended") != 1 {
		t.Errorf("work notes, want one transfer and one end:\n%s", all)
	}
	// The status (and the console's call page) says who reported the call.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/contacts/%d", base, m), nil)
	req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Sources []string }
	json.NewDecoder(resp.Body).Decode(&st)
	if !slices.Equal(st.Sources, []string{"cxone-poll", "studio"}) {
		t.Errorf("sources %v, want the poller (the release) and Studio", st.Sources)
	}
}

// BenchmarkCXonePollLatency measures how long a CXone state change (an
// agent answering) takes to reach ServiceNow when ctibridge follows calls
// from CXone's APIs with a 2 s poll: p95 in seconds, against the target of
// the poll interval plus 1 s. Each iteration plays 40 calls, answered at
// spread-out moments.
func BenchmarkCXonePollLatency(b *testing.B) {
	sn, cx, _ := withCXone(b, "2s")
	var lat []time.Duration
	for b.Loop() {
		type pending struct {
			sysID    string
			answered time.Time
		}
		var calls []pending
		for i := range 40 {
			queue := time.Duration(500+i*97%3000) * time.Millisecond
			m, err := cx.AddCall(cxonesim.Script{ANI: fmt.Sprintf("+1312555%04d", i), AgentID: 1001, QueueFor: queue, TalkFor: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			calls = append(calls, pending{ctibridge.SysID("ctibridge", fmt.Sprint(m)), time.Now().Add(queue)})
		}
		for deadline := time.Now().Add(time.Minute); len(calls) > 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			calls = slices.DeleteFunc(calls, func(c pending) bool {
				rec, ok := sn.Record("interaction", c.sysID)
				if ok && rec["state"] == "work_in_progress" {
					lat = append(lat, time.Since(c.answered))
					return true
				}
				return false
			})
		}
		if len(calls) > 0 {
			b.Fatalf("%d calls never reached work_in_progress", len(calls))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)*95/100].Seconds(), "p95_s")
	b.ReportMetric(lat[len(lat)/2].Seconds(), "p50_s")
}
