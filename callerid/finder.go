package callerid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ctibridge/ctibridge"

	"golang.org/x/sync/singleflight"

	"github.com/ctibridge/ctibridge/servicenow"
)

// Source is one table searched for a caller, with its phone fields.
type Source struct {
	Table  string
	Fields []string
}

// DefaultSources is the lookup order when none is configured.
func DefaultSources() []Source {
	return []Source{
		{Table: "sys_user", Fields: []string{"phone", "mobile_phone", "home_phone"}},
		{Table: "customer_contact", Fields: []string{"phone", "mobile_phone", "home_phone"}},
		{Table: "csm_consumer", Fields: []string{"business_phone", "mobile_phone", "home_phone"}},
	}
}

// Policies for a number that matches several records.
const (
	PolicyNone   = "none"   // choose no one; list the candidates (default)
	PolicyLatest = "latest" // take the most recently updated record
)

// FinderOptions configure a Finder.
type FinderOptions struct {
	Region string        // default region for national numbers (default US)
	TTL    time.Duration // cache lifetime (default 5m); a hit costs no request
	// UnknownTTL is how long a number that no source matches is remembered
	// as unknown (default 1m, at most TTL; negative: not remembered). It is
	// shorter than TTL so that a caller added to ServiceNow is found soon,
	// and long enough that a repeated unknown caller does not cost a lookup
	// in every source each time.
	UnknownTTL time.Duration
	Policy     string   // PolicyNone (default) or PolicyLatest
	Related    int      // open incidents and cases to link (default 5; -1 none)
	Sources    []Source // default DefaultSources()
	// Warner, if set, is told once per window when a table cannot be read
	// and is skipped.
	Warner     ctibridge.Warner
	WarnWindow time.Duration // default 1h; also how long a refused table is skipped
}

// Finder implements ctibridge.CallerFinder over the Table API.
type Finder struct {
	sn   *servicenow.Client
	o    FinderOptions
	now  func() time.Time
	hits atomic.Int64
	miss atomic.Int64

	flight singleflight.Group // one lookup per number (and per caller's tasks) at a time

	mu       sync.Mutex
	cache    map[string]cached    // by E.164 number, and "tasks:" + caller for open tasks
	disabled map[string]time.Time // table → skipped until
	parsed   map[string]Number    // ANIs as received, parsed (libphonenumber's parse costs more than a cache hit)
}

type cached struct {
	c       ctibridge.Caller
	expires time.Time
}

// NewFinder builds a finder.
func NewFinder(sn *servicenow.Client, o FinderOptions) *Finder {
	if o.Region == "" {
		o.Region = "US"
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.UnknownTTL == 0 {
		o.UnknownTTL = time.Minute
	}
	o.UnknownTTL = min(o.UnknownTTL, o.TTL)
	if o.Policy == "" {
		o.Policy = PolicyNone
	}
	if o.Related == 0 {
		o.Related = 5
	}
	if len(o.Sources) == 0 {
		o.Sources = DefaultSources()
	}
	if o.WarnWindow <= 0 {
		o.WarnWindow = time.Hour
	}
	return &Finder{sn: sn, o: o, now: time.Now, cache: map[string]cached{}, disabled: map[string]time.Time{}, parsed: map[string]Number{}}
}

// Stats returns cache hits and misses since start.
func (f *Finder) Stats() (hits, misses int64) { return f.hits.Load(), f.miss.Load() }

// FindCaller identifies the caller behind ani (without their open tasks:
// see OpenTasks). A withheld or unusable number is not an error: it yields
// a Caller with Withheld set and no request. Concurrent lookups of one
// number share one request.
func (f *Finder) FindCaller(ctx context.Context, ani string) (ctibridge.Caller, error) {
	f.mu.Lock()
	n, ok := f.parsed[ani]
	f.mu.Unlock()
	if !ok {
		n = Parse(ani, f.o.Region)
		f.mu.Lock()
		if len(f.parsed) >= maxCached {
			clear(f.parsed) // a parse is the same tomorrow: no need to pick what goes
		}
		f.parsed[ani] = n
		f.mu.Unlock()
	}
	if n.Withheld {
		return ctibridge.Caller{Number: n.Raw, Withheld: true}, nil
	}
	return f.cached(ctx, n.E164, &f.hits, &f.miss, func(ctx context.Context) (ctibridge.Caller, time.Duration, error) {
		c, err := f.lookup(ctx, n)
		if unknown(c) {
			return c, f.o.UnknownTTL, err
		}
		return c, f.o.TTL, err
	})
}

// unknown reports whether a lookup matched no one: no record, and not
// several either.
func unknown(c ctibridge.Caller) bool {
	return c.User == "" && c.Contact == "" && c.Consumer == "" && len(c.Candidates) == 0
}

// OpenTasks finds the caller's active incidents and cases, most recent
// first, up to the configured number.
func (f *Finder) OpenTasks(ctx context.Context, c ctibridge.Caller) ([]ctibridge.Related, error) {
	if f.o.Related <= 0 || c.User == "" && c.Contact == "" && c.Consumer == "" {
		return nil, nil
	}
	var hits, misses atomic.Int64 // Stats counts caller lookups only
	t, err := f.cached(ctx, "tasks:"+c.User+"|"+c.Contact+"|"+c.Consumer, &hits, &misses, func(ctx context.Context) (ctibridge.Caller, time.Duration, error) {
		rel, err := f.related(ctx, c)
		return ctibridge.Caller{Related: rel}, f.o.TTL, err
	})
	return t.Related, err
}

// cached answers from the cache, or runs lookup once for all who ask
// meanwhile and caches its result for as long as lookup says (not at all
// when that is not positive).
func (f *Finder) cached(ctx context.Context, key string, hits, misses *atomic.Int64, lookup func(context.Context) (ctibridge.Caller, time.Duration, error)) (ctibridge.Caller, error) {
	f.mu.Lock()
	if e, ok := f.cache[key]; ok && f.now().Before(e.expires) {
		f.mu.Unlock()
		hits.Add(1)
		return clone(e.c), nil
	}
	f.mu.Unlock()
	v, err, _ := f.flight.Do(key, func() (any, error) {
		misses.Add(1)
		c, ttl, err := lookup(ctx)
		if err != nil {
			return nil, err
		}
		if ttl > 0 {
			f.mu.Lock()
			f.cache[key] = cached{c: c, expires: f.now().Add(ttl)}
			if len(f.cache) > maxCached {
				f.evict()
			}
			f.mu.Unlock()
		}
		return c, nil
	})
	if err != nil {
		return ctibridge.Caller{}, err
	}
	return clone(v.(ctibridge.Caller)), nil
}

func clone(c ctibridge.Caller) ctibridge.Caller {
	c.Candidates = slices.Clone(c.Candidates)
	c.Related = slices.Clone(c.Related)
	return c
}

// maxCached bounds the cache: numbers and callers' tasks remembered at once.
const maxCached = 50000

// evict drops expired entries and then, if the cache is still full (a busy
// day's distinct numbers within one TTL), entries at random until a tenth
// of it is free, so memory does not grow with the number of callers.
// Caller holds mu.
func (f *Finder) evict() {
	now := f.now()
	for k, e := range f.cache {
		if now.After(e.expires) {
			delete(f.cache, k)
		}
	}
	for k := range f.cache { // map order is random
		if len(f.cache) <= maxCached*9/10 {
			break
		}
		delete(f.cache, k)
	}
}

func (f *Finder) lookup(ctx context.Context, n Number) (ctibridge.Caller, error) {
	c := ctibridge.Caller{Number: n.E164}
	spell := Spellings(n)
	type search struct {
		src Source
		req *servicenow.Request
		err error // the query could not be written
	}
	var searches []search
	var reqs []*servicenow.Request
	for _, src := range f.o.Sources {
		if f.skipped(src.Table) {
			continue
		}
		q := servicenow.Query().Eq("active", "true")
		for i, field := range src.Fields {
			if i == 0 {
				q.In(field, spell...)
			} else {
				q.OrIn(field, spell...)
			}
		}
		fields := append([]string{"sys_id", "name", "sys_updated_on"}, src.Fields...)
		switch src.Table {
		case "sys_user":
			// customer_contact and csm_consumer_user extend sys_user: leave
			// their rows to the sources that read them with their own fields.
			if other := f.subclassSources(); len(other) > 0 {
				q.NotIn("sys_class_name", other...)
			}
			fields = append(fields, "sys_class_name")
		case "customer_contact":
			fields = append(fields, "account")
		}
		q.OrderByDesc("sys_updated_on")
		qs, err := q.Encode()
		if err != nil {
			searches = append(searches, search{src: src, err: err})
			continue
		}
		// Counted, so that matches hidden by ACLs show (200, a count, no rows).
		req := servicenow.ListRequest(src.Table, servicenow.ListOptions{Query: qs, Fields: fields, Limit: 10, ExcludeReferenceLink: true})
		searches = append(searches, search{src: src, req: req})
		reqs = append(reqs, req)
	}
	// Every source in one round trip where the instance serves batches;
	// else one source at a time, up to the first that matches. Either way
	// the answers are read in the sources' order, and the first source that
	// matches wins.
	f.sn.Prefetch(ctx, reqs...)
	for _, s := range searches {
		src := s.src
		if s.err != nil {
			return c, s.err
		}
		f.sn.Batch(ctx, s.req) // unless prefetched
		recs, err := s.req.Records()
		if f.refused(ctx, src.Table, string(ctibridge.StepIdentify), err) || f.hidden(ctx, src.Table, err) {
			continue
		}
		if err != nil {
			return c, err
		}
		// Keep only records whose stored number really is this one.
		recs = slices.DeleteFunc(recs, func(r servicenow.Record) bool {
			return !slices.ContainsFunc(src.Fields, func(field string) bool { return Same(r.Get(field), n, f.o.Region) })
		})
		if len(recs) == 0 {
			continue
		}
		if len(recs) > 1 && f.o.Policy != PolicyLatest {
			for _, r := range recs {
				c.Candidates = append(c.Candidates, fmt.Sprintf("%s (%s %s)", r.Get("name"), src.Table, r.SysID()))
			}
			return c, nil
		}
		r := recs[0] // the most recently updated
		c.Name = r.Get("name")
		switch {
		case src.Table == "customer_contact":
			c.Contact, c.Account = r.SysID(), r.Get("account")
		case src.Table == "csm_consumer":
			c.Consumer = r.SysID()
		case r.Get("sys_class_name") == "customer_contact":
			// A contact found through sys_user (no customer_contact source):
			// a contact, not a user; its account is on its own table.
			c.Contact = r.SysID()
			acc, err := f.sn.Get(ctx, "customer_contact", r.SysID())
			if err == nil {
				c.Account = acc.Get("account")
			} else if !f.refused(ctx, "customer_contact", string(ctibridge.StepIdentify), err) {
				return c, err
			}
		default:
			c.User = r.SysID()
		}
		break
	}
	return c, nil
}

// subclassSources lists the sys_user classes that have a source of their
// own: customer_contact, and csm_consumer_user when csm_consumer is searched.
func (f *Finder) subclassSources() []string {
	var out []string
	for _, src := range f.o.Sources {
		switch src.Table {
		case "customer_contact":
			out = append(out, "customer_contact")
		case "csm_consumer":
			out = append(out, "csm_consumer_user")
		}
	}
	return out
}

// related finds the caller's active incidents and cases, most recent first.
func (f *Finder) related(ctx context.Context, c ctibridge.Caller) ([]ctibridge.Related, error) {
	type search struct {
		table string
		q     *servicenow.QueryBuilder
		req   *servicenow.Request
	}
	var searches []*search
	if c.User != "" {
		searches = append(searches, &search{table: "incident", q: servicenow.Query().Eq("active", "true").Eq("caller_id", c.User)})
	}
	switch {
	case c.Contact != "":
		searches = append(searches, &search{table: "sn_customerservice_case", q: servicenow.Query().Eq("active", "true").Eq("contact", c.Contact)})
	case c.Consumer != "":
		searches = append(searches, &search{table: "sn_customerservice_case", q: servicenow.Query().Eq("active", "true").Eq("consumer", c.Consumer)})
	}
	var reqs []*servicenow.Request
	for _, s := range searches {
		if f.skipped(s.table) {
			continue
		}
		qs, err := s.q.OrderByDesc("sys_updated_on").Encode()
		if err != nil {
			return nil, err
		}
		s.req = servicenow.ListRequest(s.table, servicenow.ListOptions{Query: qs, Fields: []string{"sys_id", "number", "sys_updated_on"},
			Limit: f.o.Related, NoCount: true})
		reqs = append(reqs, s.req)
	}
	f.sn.Batch(ctx, reqs...) // incidents and cases in one round trip
	var out []ctibridge.Related
	var updated []string
	for _, s := range searches {
		if s.req == nil {
			continue // skipped
		}
		recs, err := s.req.Records()
		if f.refused(ctx, s.table, string(ctibridge.StepLink), err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			out = append(out, ctibridge.Related{Table: s.table, SysID: r.SysID(), Number: r.Get("number")})
			updated = append(updated, r.Get("sys_updated_on"))
		}
	}
	// Merge incidents and cases, most recent first, up to the limit.
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case updated[a] > updated[b]:
			return -1
		case updated[a] < updated[b]:
			return 1
		}
		return 0
	})
	sorted := make([]ctibridge.Related, 0, min(len(idx), f.o.Related))
	for _, i := range idx[:min(len(idx), f.o.Related)] {
		sorted = append(sorted, out[i])
	}
	return sorted, nil
}

func (f *Finder) skipped(table string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now().Before(f.disabled[table])
}

// hidden handles a lookup whose matches ACLs hide from the integration
// user: the caller goes unidentified in that table, with one warning per
// window.
func (f *Finder) hidden(ctx context.Context, table string, err error) bool {
	if !errors.Is(err, servicenow.ErrRowsHidden) {
		return false
	}
	if f.o.Warner != nil {
		f.o.Warner.Warn(ctx, "hidden:"+table, string(ctibridge.StepIdentify), fmt.Sprintf(
			"Records in %s match a caller's number, but ACLs hide them from the integration user, so callers there go unidentified. "+
				"Grant the integration user read access to the rows of %s (not only the table).", table, table), f.o.WarnWindow)
	}
	return true
}

// refused handles a 403 on a table: the table is skipped for a while, with
// one warning, instead of failing every call.
func (f *Finder) refused(ctx context.Context, table, what string, err error) bool {
	var se *servicenow.Error
	if !errors.As(err, &se) || se.Status != http.StatusForbidden {
		return false
	}
	f.mu.Lock()
	f.disabled[table] = f.now().Add(f.o.WarnWindow)
	f.mu.Unlock()
	if f.o.Warner != nil {
		f.o.Warner.Warn(ctx, "unreadable:"+table, what, fmt.Sprintf(
			"ServiceNow refused to let the integration user read %s (%s); calls go on without it and it is tried again in %s. Grant read access to %s to use it.",
			table, se.Message, f.o.WarnWindow, table), f.o.WarnWindow)
	}
	return true
}
