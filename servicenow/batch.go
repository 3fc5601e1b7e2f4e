package servicenow

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The Batch API (POST /api/now/v1/batch) carries several Table API requests
// in one HTTP round trip; the instance runs them one after another, as the
// user the batch authenticated as, with the same ACLs, and answers each in
// its own entry (status, headers, Base64 body) or leaves it unserviced when
// the batch reached a size or time limit.
//
// The budget counts each item of a batch as one request. The reference
// ("Batch API", and "Inbound REST API rate limiting" with its rate limit
// rules) says rules apply per REST API resource (GET /now/table/incident,
// ...) per user and hour, that a batch applies existing ACLs to each call it
// carries, and nothing of how a rule counts a batch or its items. So the
// client takes the side that cannot overrun the instance: every item is
// counted as the request it stands for, as the simulator counts it. A
// batch still takes one place under the concurrency limit: it is one
// transaction on the instance, which runs its items one after another.

// ErrNoBatchAPI: the instance does not serve the Batch API to the
// integration user (it answers the path as one that does not exist, or
// forbids it). The client then sends requests one by one.
var ErrNoBatchAPI = errors.New("servicenow: the instance does not serve the Batch API")

// batchRecheck is how long the client sends requests one by one after the
// instance refused the Batch API, before it tries the Batch API again.
const batchRecheck = time.Hour

// batchState remembers a refusal of the Batch API.
type batchState struct {
	mu    sync.Mutex
	until time.Time // requests go one by one until then
	seq   atomic.Uint64
}

type batchRequest struct {
	BatchRequestID string             `json:"batch_request_id"`
	RestRequests   []batchRequestItem `json:"rest_requests"`
}

type batchRequestItem struct {
	ID                     string        `json:"id"`
	Method                 string        `json:"method"`
	URL                    string        `json:"url"`
	Headers                []batchHeader `json:"headers"`
	Body                   string        `json:"body,omitempty"`
	ExcludeResponseHeaders bool          `json:"exclude_response_headers"`
}

type batchHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type batchReply struct {
	ServicedRequests []struct {
		ID         string        `json:"id"`
		StatusCode int           `json:"status_code"`
		Body       string        `json:"body"`
		Headers    []batchHeader `json:"headers"`
	} `json:"serviced_requests"`
	UnservicedRequests []string `json:"unserviced_requests"`
}

// Batching reports whether Batch sends several requests in one round trip
// now: unless the Batch API is turned off (Config.NoBatch) or the instance
// refused it in the last hour.
func (c *Client) Batching() bool {
	if c.cfg.NoBatch {
		return false
	}
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	return !time.Now().Before(c.batch.until)
}

// Batch sends reqs, in one round trip when it can (Batching) and one by one
// otherwise, and returns when every request has its result. Each result is
// what the request would have had alone: the same records and errors, the
// client's short retries included. A request the batch left unserviced is
// sent on its own; one whose outcome the batch left unknown (its reply was
// lost) may have been applied, and goes on as such (a create with a chosen
// sys_id is read back, never made twice). When the instance refuses the
// Batch API, every request is sent on its own, and requests go one by one
// for an hour, with one warning (Config.Warner) and a log line.
func (c *Client) Batch(ctx context.Context, reqs ...*Request) {
	c.Prefetch(ctx, reqs...)
	for _, r := range reqs {
		c.send(ctx, r)
	}
}

// Prefetch is Batch for a caller that may not need every answer: it sends
// reqs in one round trip when it can, and otherwise leaves them unsent, for
// the caller to send one at a time (Batch) only those it comes to need.
func (c *Client) Prefetch(ctx context.Context, reqs ...*Request) {
	var todo []*Request
	for _, r := range reqs {
		if !r.done {
			todo = append(todo, r)
		}
	}
	if len(todo) > 1 && c.Batching() {
		c.sendBatch(ctx, todo)
	}
}

// CheckBatch finds out whether the instance serves the Batch API, with a
// batch of one harmless read (one sys_id of sys_user, uncounted). It
// returns nil when it does, an error matching ErrNoBatchAPI when the
// instance refuses it (which Batch then remembers for an hour), and another
// error when the batch failed for another reason and tells nothing.
func (c *Client) CheckBatch(ctx context.Context) error {
	return c.sendBatch(ctx, []*Request{ListRequest("sys_user", ListOptions{Fields: []string{"sys_id"}, Limit: 1, NoCount: true})})
}

// sendBatch sends reqs in one batch and settles each, but those the batch
// left unserviced. It returns the batch's own failure, if any: one matching
// ErrNoBatchAPI leaves every request unsent; after any other, each request
// went on alone.
func (c *Client) sendBatch(ctx context.Context, reqs []*Request) error {
	batch := batchRequest{BatchRequestID: strconv.FormatUint(c.batch.seq.Add(1), 10)}
	var items []*Request
	for _, r := range reqs {
		rel, body, err := r.cl.target()
		if err != nil {
			c.settle(ctx, r, err)
			continue
		}
		it := batchRequestItem{ID: strconv.Itoa(len(items)), Method: r.cl.method, URL: rel.String(),
			Headers: []batchHeader{{Name: "Accept", Value: "application/json"}}}
		if body != nil {
			it.Body = base64.StdEncoding.EncodeToString(body)
			it.Headers = append(it.Headers, batchHeader{Name: "Content-Type", Value: "application/json"})
		}
		batch.RestRequests = append(batch.RestRequests, it)
		items = append(items, r)
	}
	if len(items) == 0 {
		return nil
	}
	payload, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	u := *c.base
	u.Path = "/api/now/v1/batch"
	results := make([]error, len(items))
	unserviced := make([]bool, len(items))
	err = c.exchange(ctx, exchange{op: "batch", table: "batch", method: http.MethodPost, url: u.String(), body: payload,
		requests: len(items), timeout: c.cfg.Timeout * time.Duration(len(items)), batch: true,
		read: func(r reply) (bool, error) { return c.readBatch(r, items, results, unserviced) }})
	if err != nil {
		var se *Error
		if errors.As(err, &se) && se.Op == "batch" && refusesBatch(se.Status) { // the batch's own reply, not a token's
			refusal := &Error{Op: "batch", Status: se.Status, Message: se.Message, Detail: se.Detail, Err: ErrNoBatchAPI}
			c.batchRefused(ctx, refusal)
			return refusal
		}
		for i, r := range items {
			results[i], unserviced[i] = itemError(err, r.cl), false
		}
	}
	for i, r := range items {
		switch {
		case unserviced[i]: // not run: left to be sent alone
		case results[i] == nil:
			c.settle(ctx, r, nil)
		default:
			c.settle(ctx, r, c.resume(ctx, r.cl, results[i]))
		}
	}
	return err
}

// readBatch reads a batch's reply into each item's outcome, as its own
// reply would have been read, and says whether an item was refused for
// overload.
func (c *Client) readBatch(r reply, items []*Request, results []error, unserviced []bool) (busy bool, err error) {
	if err := c.outcome(&call{op: "batch", table: "batch"}, r); err != nil {
		return false, err
	}
	unreadable := func(status int, detail string) *Error {
		return &Error{Op: "batch", Table: "batch", Status: status, Message: "unreadable reply", Detail: detail, Err: errUnreadableReply, unsure: true}
	}
	var out batchReply
	if err := json.Unmarshal(r.body, &out); err != nil || out.ServicedRequests == nil && out.UnservicedRequests == nil {
		return false, unreadable(r.status, snippet(r.body))
	}
	answered := make([]bool, len(items))
	index := func(id string) (int, bool) {
		i, err := strconv.Atoi(id)
		return i, err == nil && i >= 0 && i < len(items) && !answered[i] && strconv.Itoa(i) == id
	}
	for _, s := range out.ServicedRequests {
		i, ok := index(s.ID)
		if !ok {
			continue
		}
		answered[i] = true
		body, err := base64.StdEncoding.DecodeString(s.Body)
		if err != nil || s.StatusCode < 100 || s.StatusCode > 599 {
			results[i] = itemError(unreadable(s.StatusCode, "the batch's entry for this request is not a reply"), items[i].cl)
			continue
		}
		h := http.Header{}
		for _, kv := range s.Headers {
			h.Add(kv.Name, kv.Value)
		}
		results[i] = c.outcome(items[i].cl, reply{status: s.StatusCode, header: h, body: body, gen: r.gen})
		busy = busy || overload(s.StatusCode)
	}
	for _, id := range out.UnservicedRequests {
		if i, ok := index(id); ok {
			answered[i], unserviced[i] = true, true
		}
	}
	for i, ok := range answered {
		if !ok {
			results[i] = itemError(unreadable(r.status, "the batch's reply does not mention this request"), items[i].cl)
		}
	}
	return busy, nil
}

// refusesBatch reports whether a batch's status says the instance does not
// serve the Batch API to this user: instances that restrict it answer its
// path as one that does not exist (400 "Requested URI does not represent
// any resource", or 404), or forbid it.
func refusesBatch(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}

// itemError is a batch's failure as the failure of one of its requests.
func itemError(err error, cl *call) error {
	var se *Error
	if !errors.As(err, &se) {
		return err
	}
	e := *se
	e.Op, e.Table = cl.op, cl.table
	if strings.HasSuffix(se.Op, " (oauth)") {
		e.Op += " (oauth)"
	}
	return &e
}

// batchRefused remembers that the instance refused the Batch API: requests
// go one by one for batchRecheck. The first refusal in a while is logged
// and warned about.
func (c *Client) batchRefused(ctx context.Context, refusal *Error) {
	now := time.Now()
	c.batch.mu.Lock()
	first := !now.Before(c.batch.until)
	c.batch.until = now.Add(batchRecheck)
	c.batch.mu.Unlock()
	if !first {
		return
	}
	c.log.Warn("servicenow: the instance refuses the Batch API; sending requests one by one", "error", refusal, "recheck", batchRecheck)
	if c.cfg.Warner != nil {
		c.cfg.Warner.Warn(ctx, "batch-unavailable", "batch requests", fmt.Sprintf(
			"ServiceNow refuses the Batch API (%s), so ctibridge sends its requests one by one: caller lookups and related-record links take "+
				"a round trip each instead of one for all. It tries the Batch API again every %s. Allow the integration user to POST "+
				"/api/now/v1/batch for fewer round trips, or set the environment's batch: off to stop trying.", refusal, batchRecheck), batchRecheck)
	}
}
