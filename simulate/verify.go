package simulate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/secret"
)

// verifier reads the ServiceNow simulator a bridge writes to.
type verifier struct {
	base, user string
	password   secret.Secret
	client     *http.Client
}

func (o Options) verifier() *verifier {
	user := o.VerifyUser
	if user == "" {
		user = "admin"
	}
	return &verifier{base: strings.TrimRight(o.Verify, "/"), user: user, password: o.VerifyPassword,
		client: &http.Client{Timeout: 2 * time.Minute}}
}

// get reads path (with its query) into out, or says what the simulator
// answered instead. A busy simulator (429, 503) is asked again after its
// Retry-After, for up to a minute.
func (v *verifier) get(ctx context.Context, path string, out any) (int, error) {
	p, _, _ := strings.Cut(path, "?")
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", v.base+path, nil)
		if err != nil {
			return 0, fmt.Errorf("simulate: --verify %s: %w", v.base, err)
		}
		req.SetBasicAuth(v.user, v.password.Reveal())
		req.Header.Set("Accept", "application/json")
		resp, err := v.client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("simulate: --verify %s: %w", v.base, err)
		}
		code, err := v.read(resp, p, out)
		busy := code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
		if !busy || time.Now().After(deadline) {
			return code, err
		}
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		select {
		case <-ctx.Done():
			return code, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// read decodes a reply; 404 is an answer (no such record), not an error.
func (v *verifier) read(resp *http.Response, path string, out any) (int, error) {
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, fmt.Errorf("simulate: --verify: GET %s: %w", path, err)
		}
		return resp.StatusCode, nil
	case http.StatusNotFound:
		return resp.StatusCode, nil
	}
	var e struct {
		Error struct{ Message, Detail string }
	}
	json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
	hint := ""
	if resp.StatusCode == http.StatusUnauthorized {
		hint = " (check --verify-user and --verify-password: an admin of the simulator)"
	}
	return resp.StatusCode, fmt.Errorf("simulate: --verify: GET %s answered %d %s%s", path, resp.StatusCode,
		strings.TrimSpace(e.Error.Message+" "+e.Error.Detail), hint)
}

// snCounts are the simulator's request counters.
type snCounts struct {
	requests   int64 // Table API requests served, each item of a batch counted
	roundTrips int64 // HTTP requests: a batch is one
}

// requests reads the simulator's request counters.
func (v *verifier) requests(ctx context.Context) (snCounts, error) {
	var st struct {
		Total        *int64 `json:"total"`
		HTTPRequests int64  `json:"httpRequests"`
	}
	code, err := v.get(ctx, "/sim/stats", &st)
	switch {
	case code == 0 || code == http.StatusUnauthorized:
		return snCounts{}, err // unreachable, or the wrong credentials: err says which
	case code != http.StatusOK || st.Total == nil:
		return snCounts{}, fmt.Errorf("simulate: --verify %s: no ServiceNow simulator there (/sim/stats answered %d)", v.base, code)
	}
	return snCounts{*st.Total, st.HTTPRequests}, nil
}

// table lists records: query is an encoded query, fields a comma-separated
// list; references come back as sys_ids.
func (v *verifier) table(ctx context.Context, table, query, fields string, limit, offset int) ([]map[string]string, error) {
	q := url.Values{"sysparm_query": {query}, "sysparm_fields": {fields}, "sysparm_exclude_reference_link": {"true"},
		"sysparm_limit": {strconv.Itoa(limit)}, "sysparm_offset": {strconv.Itoa(offset)}}
	var out struct {
		Result []map[string]string `json:"result"`
	}
	_, err := v.get(ctx, "/api/now/table/"+table+"?"+q.Encode(), &out)
	return out.Result, err
}

const verifyFields = "sys_id,short_description,state,caller_phone_number,opened_for,contact,account,consumer,assigned_to"

// Verify checks every call of a run in the ServiceNow simulator at o.Verify:
// each must have exactly one interaction, found by the sys_id the bridge
// derives from the master contact id and by the CXone contact id in its
// short description, in the state the call ended in (closed_abandoned if
// nobody answered, else closed_complete, or wrap_up on an instance with
// wrap-up), with the caller's number, the caller's records when the number
// is one of the simulator's known callers, and the last agent's user. It
// fills the Result's Verified, Lost, Duplicated, Wrong, FirstWrong and
// SNRequests and SNRoundTrips (the Table API requests and the HTTP requests
// served from the start of the run to now, by every client of the simulator).
func Verify(ctx context.Context, o Options, res *Result) error {
	if o.Verify == "" {
		return fmt.Errorf("simulate: Verify needs the simulator's URL (--verify)")
	}
	if o.Namespace == "" {
		o.Namespace = "ctibridge"
	}
	v := o.verifier()
	after, err := v.requests(ctx)
	if err != nil {
		return err
	}
	res.SNRequests = after.requests - res.snBefore.requests
	res.SNRoundTrips = after.roundTrips - res.snBefore.roundTrips

	// The agents' and the known callers' records, as this instance has them.
	agentIDs := map[string]string{}
	users, err := v.table(ctx, "sys_user", "user_nameIN"+strings.Join(agents, ","), "sys_id,user_name", 100, 0)
	if err != nil {
		return err
	}
	for _, u := range users {
		agentIDs[u["user_name"]] = u["sys_id"]
	}
	knownHere := make([]bool, len(knownCallers))
	for i, k := range knownCallers {
		knownHere[i] = true
		for _, ref := range k.Refs {
			var rec any
			code, err := v.get(ctx, "/api/now/table/"+ref.Table+"/"+ref.SysID+"?sysparm_fields=sys_id", &rec)
			if err != nil {
				return err
			}
			knownHere[i] = knownHere[i] && code == http.StatusOK
		}
	}

	// Every interaction naming one of the run's contact ids, then those
	// found only by their derived sys_id.
	found := make([]map[string]map[string]string, len(res.calls)) // call → sys_id → record
	add := func(n int, rec map[string]string) {
		if found[n] == nil {
			found[n] = map[string]map[string]string{}
		}
		found[n][rec["sys_id"]] = rec
	}
	const page = 10000
	marker := "CXone contact " + res.tag
	for offset := 0; ; offset += page {
		recs, err := v.table(ctx, "interaction", "short_descriptionLIKE"+marker+"^ORDERBYsys_id", verifyFields, page, offset)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			_, cid, ok := strings.Cut(rec["short_description"], marker)
			if n, err := strconv.Atoi(cid); ok && err == nil && len(cid) == 7 && n < len(res.calls) {
				add(n, rec)
			}
		}
		if len(recs) < page {
			break
		}
	}
	bySysID := map[string]int{}
	var missing []string
	for n := range res.calls {
		id := ctibridge.SysID(o.Namespace, o.masterID(n))
		if found[n][id] == nil {
			bySysID[id] = n
			missing = append(missing, id)
		}
	}
	for len(missing) > 0 {
		chunk := missing[:min(100, len(missing))]
		missing = missing[len(chunk):]
		recs, err := v.table(ctx, "interaction", "sys_idIN"+strings.Join(chunk, ","), verifyFields, len(chunk), 0)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			add(bySysID[rec["sys_id"]], rec)
		}
	}

	res.Verified, res.Lost, res.Duplicated, res.Wrong, res.FirstWrong = true, 0, 0, 0, nil
	report := func(format string, args ...any) {
		if len(res.FirstWrong) < 10 {
			res.FirstWrong = append(res.FirstWrong, fmt.Sprintf(format, args...))
		}
	}
	for n, c := range res.calls {
		label := fmt.Sprintf("%s (CXone contact %s)", o.masterID(n), contactID(res.tag, n))
		switch len(found[n]) {
		case 0:
			res.Lost++
			report("lost: %s has no interaction", label)
			continue
		case 1:
		default:
			res.Duplicated++
			var ids []string
			for id := range found[n] {
				ids = append(ids, id)
			}
			report("duplicated: %s has %d interactions: %s", label, len(ids), strings.Join(ids, ", "))
			continue
		}
		var rec map[string]string
		for _, r := range found[n] {
			rec = r
		}
		if why := c.mismatch(rec, agentIDs, knownHere); len(why) > 0 {
			res.Wrong++
			report("wrong: %s, interaction %s: %s", label, rec["sys_id"], strings.Join(why, "; "))
		}
	}
	return nil
}

// mismatch lists how an interaction differs from what the call should have
// left in ServiceNow.
func (c *call) mismatch(rec map[string]string, agentIDs map[string]string, knownHere []bool) []string {
	var why []string
	differ := func(field, want string, ok bool) {
		if !ok {
			why = append(why, fmt.Sprintf("%s %q, want %q", field, rec[field], want))
		}
	}
	switch state := rec["state"]; {
	case c.abandoned:
		differ("state", "closed_abandoned", state == "closed_abandoned")
	default:
		differ("state", "closed_complete", state == "closed_complete" || state == "wrap_up")
	}
	differ("caller_phone_number", c.e164(), rec["caller_phone_number"] == c.e164())
	if c.known >= 0 && knownHere[c.known] {
		want := map[string]string{"opened_for": "", "contact": "", "account": "", "consumer": ""}
		for _, ref := range knownCallers[c.known].Refs {
			want[ref.Field] = ref.SysID
		}
		for _, f := range []string{"opened_for", "contact", "account", "consumer"} {
			differ(f, want[f], rec[f] == want[f])
		}
	}
	agent := agentIDs[c.agentName()] // "" if abandoned or not a user of this instance
	differ("assigned_to", agent, rec["assigned_to"] == agent)
	return why
}
