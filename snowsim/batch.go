package snowsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Batch API (POST /api/now/v1/batch), as the ServiceNow REST API
// reference documents it: one request carrying several REST requests, each
// with its own id, method, relative URL, headers and Base64 body, answered
// with one serviced_requests entry per request run (status, Base64 body,
// headers, execution time in milliseconds) and the ids of those not run in
// unserviced_requests. Only the versioned path exists: /api/now/batch and
// /api/now/v2/batch answer 400 "Requested URI does not represent any
// resource", as instances do despite the reference naming them.
//
// Sub-requests run one after another through the Table API handler, as the
// user the batch authenticated as: the same ACLs, hardening, latency,
// scripted and random faults, and the same hourly rate limit, which counts
// each sub-request (the reference says rate-limit rules apply to REST API
// resources and is silent on batches; counting each sub-request is never
// kinder than an instance). The batch itself is one transaction: it takes
// one Options.Capacity slot for its whole run. A reply dropped by a fault
// drops the whole batch's reply, after every sub-request has run. The
// simulator has only the Table API: a sub-request for any other API is
// answered 400 "Requested URI does not represent any resource" in its
// serviced entry. Limits: an item body over 5 MB (glide.rest.batch.max.inputSize),
// an item reply over 10 MB (glide.rest.batch.max.outputSize, lowered by
// X-BATCHREQUEST-MAX-OUTPUT-SIZE) or a batch running over 30 seconds (the
// "REST Batch API request timeout" quota rule) leaves that item and the
// rest unserviced.

const (
	batchMaxInput   = 5 << 20
	batchMaxOutput  = 10 << 20
	batchTimeout    = 30 * time.Second
	batchMaxRequest = 64 << 20 // the whole batch request, Base64 included
)

type batchRequest struct {
	BatchRequestID string      `json:"batch_request_id"`
	RestRequests   []batchItem `json:"rest_requests"`
}

type batchItem struct {
	ID                     string        `json:"id"`
	Method                 string        `json:"method"`
	URL                    string        `json:"url"`
	Headers                []batchHeader `json:"headers"`
	Body                   string        `json:"body"`
	ExcludeResponseHeaders bool          `json:"exclude_response_headers"`
}

type batchHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type batchReply struct {
	BatchRequestID     string          `json:"batch_request_id"`
	ServicedRequests   []servicedReply `json:"serviced_requests"`
	UnservicedRequests []string        `json:"unserviced_requests"`
}

type servicedReply struct {
	ID            string        `json:"id"`
	Body          string        `json:"body"`
	StatusCode    int           `json:"status_code"`
	StatusText    string        `json:"status_text"`
	Headers       []batchHeader `json:"headers"`
	ExecutionTime int64         `json:"execution_time"`
}

// serveBatch answers POST /api/now/v1/batch.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	if s.opts.NoBatchAPI {
		writeError(w, http.StatusBadRequest, "Requested URI does not represent any resource", r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not Supported", fmt.Sprintf("%s is not supported on this resource", r.Method))
		return
	}
	release, ok := s.admit(w, r, s.countBatch)
	if !ok {
		return
	}
	defer release()
	s.countBatch()
	if s.Faults().Down {
		writeError(w, http.StatusServiceUnavailable, "Service Unavailable", "The instance is not available")
		return
	}
	user := s.user(r)
	if s.hard.Sessions {
		user = s.useSession(w, r, user)
	}
	if user == "" {
		writeError(w, http.StatusUnauthorized, "User Not Authenticated", "Required to provide Auth information")
		return
	}
	maxOutput := batchMaxOutput
	if v := r.Header.Get("X-BATCHREQUEST-MAX-OUTPUT-SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "Invalid header", "X-BATCHREQUEST-MAX-OUTPUT-SIZE must be a positive number of bytes")
			return
		}
		maxOutput = min(n, batchMaxOutput)
	}
	batch, bodies, err := readBatch(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Invalid batch request", err.Error())
		return
	}
	reply := batchReply{BatchRequestID: batch.BatchRequestID, ServicedRequests: []servicedReply{}, UnservicedRequests: []string{}}
	start := s.now()
	drop := false
	for i, it := range batch.RestRequests {
		if len(bodies[i]) > batchMaxInput || s.now().Sub(start) >= batchTimeout {
			reply.unserviced(batch.RestRequests[i:])
			break
		}
		began := s.now()
		rec := &subReply{header: http.Header{}, status: http.StatusOK}
		sub, err := http.NewRequestWithContext(r.Context(), strings.ToUpper(it.Method), it.URL, bytes.NewReader(bodies[i]))
		if err != nil { // checked by readBatch; kept for safety
			writeError(rec, http.StatusBadRequest, "Invalid batch request", err.Error())
		} else {
			for _, h := range it.Headers {
				if !strings.EqualFold(h.Name, "Authorization") && !strings.EqualFold(h.Name, "Cookie") {
					sub.Header.Add(h.Name, h.Value)
				}
			}
			sub.Host, sub.TLS = r.Host, r.TLS
			if tableName, sysID, ok := tablePath(sub.URL.Path); ok {
				drop = s.tableRequest(rec, sub, tableName, sysID, user) || drop
			} else {
				writeError(rec, http.StatusBadRequest, "Requested URI does not represent any resource", sub.URL.Path)
			}
		}
		if rec.body.Len() > maxOutput {
			reply.unserviced(batch.RestRequests[i:])
			break
		}
		out := servicedReply{ID: it.ID, Body: base64.StdEncoding.EncodeToString(rec.body.Bytes()), StatusCode: rec.status,
			StatusText: http.StatusText(rec.status), Headers: []batchHeader{}, ExecutionTime: s.now().Sub(began).Milliseconds()}
		if !it.ExcludeResponseHeaders {
			out.Headers = headerList(rec.header)
		}
		reply.ServicedRequests = append(reply.ServicedRequests, out)
	}
	if drop {
		dropConnection(w)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	json.NewEncoder(w).Encode(reply)
}

func (b *batchReply) unserviced(items []batchItem) {
	for _, it := range items {
		b.UnservicedRequests = append(b.UnservicedRequests, it.ID)
	}
}

func (s *Server) countBatch() {
	s.mu.Lock()
	s.stats.Batches++
	s.mu.Unlock()
}

// readBatch decodes and checks a batch request, naming what is wrong, and
// returns the items' decoded bodies.
func readBatch(r *http.Request) (batchRequest, [][]byte, error) {
	var b batchRequest
	raw, err := io.ReadAll(io.LimitReader(r.Body, batchMaxRequest+1))
	if err != nil {
		return b, nil, fmt.Errorf("reading the request: %v", err)
	}
	if len(raw) > batchMaxRequest {
		return b, nil, fmt.Errorf("the request is over %d MB", batchMaxRequest>>20)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, nil, fmt.Errorf("the body is not a batch request: %v", err)
	}
	if b.RestRequests == nil {
		return b, nil, fmt.Errorf("rest_requests is required")
	}
	bodies := make([][]byte, len(b.RestRequests))
	seen := map[string]bool{}
	for i, it := range b.RestRequests {
		at := fmt.Sprintf("rest_requests[%d]", i)
		switch {
		case it.ID == "":
			return b, nil, fmt.Errorf("%s.id is required", at)
		case seen[it.ID]:
			return b, nil, fmt.Errorf("%s.id %q is used twice", at, it.ID)
		case it.Method == "":
			return b, nil, fmt.Errorf("%s.method is required", at)
		case it.URL == "":
			return b, nil, fmt.Errorf("%s.url is required", at)
		}
		seen[it.ID] = true
		if u, err := url.Parse(it.URL); err != nil || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return b, nil, fmt.Errorf("%s.url %q must be a path on the instance, such as /api/now/table/incident", at, it.URL)
		}
		if _, err := http.NewRequest(strings.ToUpper(it.Method), it.URL, nil); err != nil {
			return b, nil, fmt.Errorf("%s.method %q: %v", at, it.Method, err)
		}
		if it.Body != "" {
			body, err := base64.StdEncoding.DecodeString(it.Body)
			if err != nil {
				return b, nil, fmt.Errorf("%s.body must be Base64: %v", at, err)
			}
			bodies[i] = body
		}
	}
	return b, bodies, nil
}

// headerList turns a header into the Batch API's name/value list, in a
// stable order.
func headerList(h http.Header) []batchHeader {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	out := []batchHeader{}
	for _, k := range names {
		for _, v := range h[k] {
			out = append(out, batchHeader{Name: k, Value: v})
		}
	}
	return out
}

// subReply records a sub-request's reply.
type subReply struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (s *subReply) Header() http.Header { return s.header }

func (s *subReply) WriteHeader(status int) {
	if !s.wrote {
		s.status, s.wrote = status, true
	}
}

func (s *subReply) Write(b []byte) (int, error) {
	s.WriteHeader(http.StatusOK)
	return s.body.Write(b)
}
