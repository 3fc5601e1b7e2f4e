package servicenow_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// describe is what a caller sees of a request's result: the records (sys_id
// and number), the error, the kinds of error it matches and what it says
// of retrying.
func describe(r *servicenow.Request) string {
	recs, err := r.Records()
	if rec, rerr := r.Record(); rec != nil || recs == nil {
		recs, err = nil, rerr
		if rec != nil {
			recs = []servicenow.Record{rec}
		}
	}
	var ids []string
	for _, rec := range recs {
		ids = append(ids, rec.SysID()+" "+rec.Get("number"))
	}
	out := fmt.Sprintf("records %q", ids)
	if err != nil {
		out += fmt.Sprintf("; error %q", err)
		for _, kind := range []error{servicenow.ErrDuplicateSysID, servicenow.ErrSysIDIgnored, servicenow.ErrUnconfirmed, servicenow.ErrRowsHidden} {
			if errors.Is(err, kind) {
				out += fmt.Sprintf("; is %q", kind)
			}
		}
		var se *servicenow.Error
		if errors.As(err, &se) {
			out += fmt.Sprintf("; status %d, temporary %t, may have applied %t, retry after %s", se.Status, se.Temporary(), se.MayHaveApplied(), se.RetryAfter)
		}
	}
	// The instance's own sys_ids differ from one simulator to the next;
	// those ctibridge chooses must be the same.
	return instanceID.ReplaceAllStringFunc(out, func(id string) string {
		if slices.Contains([]string{newID, takenID, linkID, noID}, id) {
			return id
		}
		return "<instance's sys_id>"
	})
}

var instanceID = regexp.MustCompile(`[0-9a-f]{32}`)

// slogTo is a logger writing to f.
func slogTo(f func([]byte)) *slog.Logger { return slog.New(slog.NewTextHandler(writerFunc(f), nil)) }

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// hiddenUsers is a dataset whose user cti_hidden may read sys_user while
// row-level ACLs hide every row from it.
func hiddenUsers() *snowsim.Dataset {
	d := snowsim.DefaultDataset()
	role := snowsim.Role{}
	for k, v := range snowsim.BuiltinRoles()["cti_integration"] {
		role[k] = v
	}
	role["sys_user:rows"] = "user_name=nobody-at-all"
	d.Roles = map[string]snowsim.Role{"cti_hidden": role}
	d.Users = append(d.Users, snowsim.User{UserName: "cti_hidden", Password: "cti_hidden", Roles: []string{"cti_hidden"}})
	return d
}

func userID(sim *snowsim.Server, name string) string {
	for _, r := range sim.Records("sys_user") {
		if r["user_name"] == name {
			return r["sys_id"]
		}
	}
	return ""
}

const (
	newID   = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
	takenID = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
	linkID  = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
	noID    = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d"
)

// TestBatchAnswersAsSingleRequests: whatever each request meets, its result
// through one batch is the one it gets alone: records, errors, the kinds of
// error and what they say of retrying; and the budget counts as many
// requests, as the instance does, in fewer round trips.
func TestBatchAnswersAsSingleRequests(t *testing.T) {
	hiddenAuth := basic
	hiddenAuth.Username, hiddenAuth.Password = "cti_hidden", "cti_hidden"
	for _, sc := range []struct {
		name    string
		opts    snowsim.Options
		auth    servicenow.Auth
		prepare func(t *testing.T, e *env)
		reqs    func(e *env) []*servicenow.Request
		same    bool // the same requests reach the instance either way
	}{
		{name: "reads", same: true, reqs: func(e *env) []*servicenow.Request {
			return []*servicenow.Request{
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id", "user_name"}}),
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=nobody-at-all"}),
				servicenow.ListRequest("interaction_related_record", servicenow.ListOptions{Limit: 1}), // create-only: 403
				servicenow.ListRequest("no_such_table", servicenow.ListOptions{}),                      // 400 Invalid table
				servicenow.ListRequest("bad table!", servicenow.ListOptions{}),                         // refused before sending
				servicenow.GetRequest("sys_user", userID(e.sim, "jdoe")),
				servicenow.GetRequest("interaction", noID), // 404
				servicenow.GetRequest("interaction", "../sys_user"),
			}
		}},
		{name: "creates", same: true,
			prepare: func(t *testing.T, e *env) {
				for _, in := range []struct{ table, id string }{{"interaction", takenID}, {"interaction_related_record", linkID}} {
					if _, err := e.c.Insert(context.Background(), in.table, map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: in.id}); err != nil {
						t.Fatal(err)
					}
				}
			},
			reqs: func(*env) []*servicenow.Request {
				return []*servicenow.Request{
					servicenow.InsertRequest("interaction", map[string]string{"type": "phone", "short_description": "new"}, servicenow.InsertOptions{SysID: newID}),
					servicenow.InsertRequest("interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: takenID}),
					servicenow.InsertRequest("interaction_related_record", map[string]string{"type": "task"}, servicenow.InsertOptions{SysID: linkID, MayExist: true}),
					servicenow.InsertRequest("incident", map[string]string{"short_description": "x"}, servicenow.InsertOptions{SysID: noID}), // no create right
				}
			}},
		{name: "instance ignoring the sys_id", same: true, opts: snowsim.Options{IgnoreClientSysID: true}, reqs: func(*env) []*servicenow.Request {
			return []*servicenow.Request{
				servicenow.InsertRequest("interaction", map[string]string{"type": "phone"}, servicenow.InsertOptions{SysID: newID}),
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}}),
			}
		}},
		{name: "rows hidden by ACLs", same: true, opts: snowsim.Options{Data: hiddenUsers()}, auth: hiddenAuth, reqs: func(*env) []*servicenow.Request {
			return []*servicenow.Request{
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}}),
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}, NoCount: true}),
				servicenow.ListRequest("incident", servicenow.ListOptions{Limit: 1, Fields: []string{"sys_id"}}),
			}
		}},
		{name: "rate limited, then served", same: true,
			opts: snowsim.Options{Faults: snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Status: 429, RetryAfter: 1, Table: "incident"}}},
			reqs: func(*env) []*servicenow.Request {
				return []*servicenow.Request{
					servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}}),
					servicenow.ListRequest("incident", servicenow.ListOptions{Limit: 1, Fields: []string{"sys_id"}}),
				}
			}},
		{name: "server errors until the attempts run out", same: true,
			opts: snowsim.Options{Faults: snowsim.Faults{FailNext: &snowsim.FailNext{Count: 3, Status: 500, Table: "incident"}}},
			reqs: func(*env) []*servicenow.Request {
				return []*servicenow.Request{
					servicenow.ListRequest("incident", servicenow.ListOptions{Limit: 1, Fields: []string{"sys_id"}}),
					servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}}),
				}
			}},
		{name: "revoked token", opts: withoutSessions, auth: password,
			prepare: func(t *testing.T, e *env) { listOne(t, e.c); e.sim.RevokeAccessTokens() },
			reqs: func(*env) []*servicenow.Request {
				return []*servicenow.Request{
					servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id"}}),
					servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=asmith", Fields: []string{"sys_id"}}),
				}
			}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			auth := sc.auth
			if auth.Method == 0 {
				auth = basic
			}
			run := func(noBatch bool) (results []string, st snowsim.Stats, used int64, e *env) {
				opts := sc.opts
				if f := opts.Faults.FailNext; f != nil {
					cp := *f // the simulator counts it down
					opts.Faults.FailNext = &cp
				}
				e = newEnv(t, opts, auth, func(c *servicenow.Config) { c.NoBatch = noBatch })
				if sc.prepare != nil {
					sc.prepare(t, e)
				}
				e.sim.ResetStats()
				before := e.c.Budget().UsedLastHour
				reqs := sc.reqs(e)
				e.c.Batch(context.Background(), reqs...)
				for _, r := range reqs {
					results = append(results, describe(r))
				}
				return results, e.sim.Stats(), e.c.Budget().UsedLastHour - before, e
			}
			alone, aloneStats, aloneUsed, _ := run(true)
			batched, batchStats, batchUsed, e := run(false)
			for i := range alone {
				if alone[i] != batched[i] {
					t.Errorf("request %d\n alone:   %s\n batched: %s", i, alone[i], batched[i])
				}
			}
			if aloneStats.Batches != 0 || batchStats.Batches != 1 {
				t.Errorf("%d batches alone, %d batched; want 0 and 1", aloneStats.Batches, batchStats.Batches)
			}
			if sc.same && batchStats.HTTPRequests >= aloneStats.HTTPRequests {
				t.Errorf("%d round trips batched, %d alone: want fewer", batchStats.HTTPRequests, aloneStats.HTTPRequests)
			}
			if sc.same && (batchStats.Total != aloneStats.Total || batchUsed != aloneUsed || batchUsed != aloneStats.Total) {
				t.Errorf("requests counted by the instance: %d batched, %d alone; by the budget: %d batched, %d alone; want all equal",
					batchStats.Total, aloneStats.Total, batchUsed, aloneUsed)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if !slices.ContainsFunc(e.seen, func(ri servicenow.RequestInfo) bool {
				return ri.Op == "batch" && ri.Table == "batch" && ri.Method == "POST"
			}) {
				t.Errorf("no batch among the requests observed: %+v", e.seen)
			}
		})
	}
}

// TestBatchWithLostReplyMakesEachRecordOnce: the batch's reply is lost after
// the instance made every record in it. Each create may have applied, so
// each is settled as one whose reply was lost: read back, or (on a table
// the user may only create) taken as made. Nothing is made twice.
func TestBatchWithLostReplyMakesEachRecordOnce(t *testing.T) {
	e := newEnv(t, snowsim.Options{Faults: snowsim.Faults{FailNext: &snowsim.FailNext{Count: 1, Drop: true, Table: "interaction_related_record"}}}, basic)
	ids := []string{newID, takenID, linkID}
	var reqs []*servicenow.Request
	for _, id := range ids {
		reqs = append(reqs, servicenow.InsertRequest("interaction_related_record", map[string]string{"type": "task"}, servicenow.InsertOptions{SysID: id}))
	}
	e.c.Batch(context.Background(), reqs...)
	for i, r := range reqs {
		rec, err := r.Record()
		if (err != nil && !errors.Is(err, servicenow.ErrUnconfirmed)) || rec.SysID() != ids[i] {
			t.Errorf("link %d: %v %v, want it taken as made", i, rec, err)
		}
	}
	if n := len(e.sim.Records("interaction_related_record")); n != 3 {
		t.Errorf("%d links, want 3", n)
	}
}

// warned records warnings.
type warned struct {
	mu   sync.Mutex
	keys []string
	msgs []string
}

func (w *warned) Warn(_ context.Context, key, _, message string, _ time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys, w.msgs = append(w.keys, key), append(w.msgs, message)
}

// TestBatchRefusedFallsBack: an instance that refuses the Batch API (as
// the simulator's --no-batch-api does) gets every request on its own, with
// the results they would have had (Prefetch leaves them to be sent as
// needed); the client then sends one by one without
// asking again for an hour, warns once and logs it, and uses batches again
// once the instance serves them.
func TestBatchRefusedFallsBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := snowsim.New(snowsim.Options{})
		var refuse atomic.Bool
		refuse.Store(true)
		tr := &inMemory{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuse.Load() && r.URL.Path == "/api/now/v1/batch" {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":{"message":"Requested URI does not represent any resource","detail":null},"status":"failure"}`)
				return
			}
			sim.ServeHTTP(w, r)
		})}
		defer tr.serving.Wait()
		w := &warned{}
		var logs strings.Builder
		var lmu sync.Mutex
		c, err := servicenow.New(servicenow.Config{Instance: "https://acme.service-now.com", Auth: basic, RequestsPerHour: -1,
			HTTPClient: &http.Client{Transport: tr}, Warner: w,
			Logger: slogTo(func(p []byte) { lmu.Lock(); logs.Write(p); lmu.Unlock() })})
		if err != nil {
			t.Fatal(err)
		}
		lookups := func() []*servicenow.Request {
			return []*servicenow.Request{
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe", Fields: []string{"sys_id", "user_name"}}),
				servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=asmith", Fields: []string{"sys_id", "user_name"}}),
			}
		}
		check := func(when string, reqs []*servicenow.Request, wantHTTP, wantBatches int64) {
			t.Helper()
			for i, name := range []string{"jdoe", "asmith"} {
				if recs, err := reqs[i].Records(); err != nil || len(recs) != 1 || recs[0].Get("user_name") != name {
					t.Errorf("%s: request %d: %v %v", when, i, recs, err)
				}
			}
			if st := sim.Stats(); st.HTTPRequests != wantHTTP || st.Batches != wantBatches || st.Total != 2 {
				t.Errorf("%s: %d round trips, %d batches, %d requests; want %d, %d, 2", when, st.HTTPRequests, st.Batches, st.Total, wantHTTP, wantBatches)
			}
			sim.ResetStats()
		}

		if !c.Batching() {
			t.Fatal("a new client does not use the Batch API")
		}
		reqs := lookups()
		c.Prefetch(context.Background(), reqs...)
		if reqs[0].Sent() || reqs[1].Sent() {
			t.Error("Prefetch sent requests one by one when the batch was refused")
		}
		c.Batch(context.Background(), reqs...)
		check("refused", reqs, 2, 0) // the refused batch is answered by the wrapper, not the simulator
		if c.Batching() {
			t.Error("still batching after the instance refused it")
		}
		if err := c.CheckBatch(context.Background()); !errors.Is(err, servicenow.ErrNoBatchAPI) || !strings.Contains(err.Error(), "Requested URI does not represent any resource") {
			t.Errorf("CheckBatch: %v, want ErrNoBatchAPI with the instance's answer", err)
		}
		for range 3 {
			reqs = lookups()
			c.Batch(context.Background(), reqs...)
			check("within the hour", reqs, 2, 0)
		}
		w.mu.Lock()
		if len(w.keys) != 1 || w.keys[0] != "batch-unavailable" || !strings.Contains(w.msgs[0], "one by one") {
			t.Errorf("warnings %q %q, want one about the Batch API", w.keys, w.msgs)
		}
		w.mu.Unlock()
		lmu.Lock()
		if n := strings.Count(logs.String(), "refuses the Batch API"); n != 1 {
			t.Errorf("%d log lines about the refusal, want 1:\n%s", n, logs.String())
		}
		lmu.Unlock()

		refuse.Store(false)
		time.Sleep(time.Hour)
		if !c.Batching() {
			t.Fatal("not trying the Batch API again after an hour")
		}
		reqs = lookups()
		c.Batch(context.Background(), reqs...)
		check("served again", reqs, 1, 1)
		if err := c.CheckBatch(context.Background()); err != nil {
			t.Errorf("CheckBatch: %v", err)
		}
	})
}

// TestBatchUnservicedAreSentAlone: a batch that reaches the instance's 30 s
// limit leaves the rest unserviced; those are sent on their own and every
// request gets its result.
func TestBatchUnservicedAreSentAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := snowsim.New(snowsim.Options{Faults: snowsim.Faults{Latency: 12 * time.Second}})
		tr := &inMemory{h: sim}
		defer tr.serving.Wait()
		c, err := servicenow.New(servicenow.Config{Instance: "https://acme.service-now.com", Auth: basic, RequestsPerHour: -1,
			HTTPClient: &http.Client{Transport: tr}, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		names := []string{"jdoe", "asmith", "bwayne", "ckent"}
		var reqs []*servicenow.Request
		for _, n := range names {
			reqs = append(reqs, servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=" + n, Fields: []string{"user_name"}}))
		}
		c.Batch(context.Background(), reqs...)
		for i, r := range reqs {
			if recs, err := r.Records(); err != nil || len(recs) != 1 || recs[0].Get("user_name") != names[i] {
				t.Errorf("%s: %v %v", names[i], recs, err)
			}
		}
		// 12 s each: three fit in the batch's 30 s, the fourth goes alone.
		if st := sim.Stats(); st.Batches != 1 || st.HTTPRequests != 2 || st.Total != 4 {
			t.Errorf("%d batches, %d round trips, %d requests; want 1, 2, 4", st.Batches, st.HTTPRequests, st.Total)
		}
	})
}

// TestBatchTokenRefusalIsNotABatchRefusal: when the OAuth token endpoint
// refuses the client as a batch is about to go, the requests fail as they
// would alone, and the Batch API is still used afterwards.
func TestBatchTokenRefusalIsNotABatchRefusal(t *testing.T) {
	sim := snowsim.New(withoutSessions)
	var refuse atomic.Bool
	refuse.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() && r.URL.Path == "/oauth_token.do" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_request","error_description":"invalid_request"}`)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := servicenow.New(servicenow.Config{Instance: srv.URL, Auth: password, RequestsPerHour: -1,
		Retry: servicenow.RetryPolicy{Base: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []*servicenow.Request{
		servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe"}),
		servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=asmith"}),
	}
	c.Batch(context.Background(), reqs...)
	for i, r := range reqs {
		var se *servicenow.Error
		if _, err := r.Records(); !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Op, "oauth") {
			t.Errorf("request %d: %v, want the token refusal", i, err)
		}
	}
	if !c.Batching() {
		t.Fatal("a refused token taken for a refused Batch API")
	}
	refuse.Store(false)
	reqs = []*servicenow.Request{
		servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=jdoe"}),
		servicenow.ListRequest("sys_user", servicenow.ListOptions{Query: "user_name=asmith"}),
	}
	c.Batch(context.Background(), reqs...)
	if recs, err := reqs[1].Records(); err != nil || len(recs) != 1 || sim.Stats().Batches != 1 {
		t.Errorf("after the token came: %v %v, %d batches; want asmith in one batch", recs, err, sim.Stats().Batches)
	}
}
