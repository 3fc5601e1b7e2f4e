// Package agentmap maps CXone agents to ServiceNow users, the classic source of
// broken CTI integrations. Strategies are tried in a configured order: an
// explicit map file (CXone agent id → ServiceNow sys_id or user_name), the
// CXone user name as sys_user.user_name, and the CXone e-mail as
// sys_user.email (case-insensitive). Results, found or not, are cached for a
// TTL so a busy queue costs ServiceNow one lookup per agent per TTL.
//
// With a CXone directory, the cxone strategy fills in the user name and
// e-mail an event lacks (Studio often sends only the agent id) from CXone's
// agent record, for the strategies after it; records are cached for the same
// TTL, and one agent is asked for once at a time.
//
// It only reads sys_user and CXone agents, and never guesses: an agent that
// no strategy maps is reported unmapped.
package agentmap

import (
	"context"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/servicenow"
)

// Strategy names.
const (
	ByMap      = "map"
	ByUserName = "user_name"
	ByEmail    = "email"
	ByCXone    = "cxone" // fills in the user name and e-mail from CXone, maps nothing itself
)

// Directory reads CXone agents by id; *cxone.Client is one.
type Directory interface {
	Agent(ctx context.Context, agentID string) (cxone.Agent, error)
}

// Finder implements ctibridge.AgentFinder.
type Finder struct {
	sn         *servicenow.Client
	strategies []string
	ttl        time.Duration
	file       *MapFile  // nil without a map file
	dir        Directory // nil without CXone
	now        func() time.Time

	mu     sync.Mutex
	cache  map[string]cached
	agents map[string]fromCXone // CXone agent id → its record
	asking singleflight.Group   // CXone agent ids being read

	hits, misses atomic.Int64
}

type cached struct {
	user    ctibridge.AgentUser
	expires time.Time
}

type fromCXone struct {
	agent   cxone.Agent
	known   bool
	expires time.Time
}

// Options configure a Finder.
type Options struct {
	Strategies []string      // default map, user_name, email (map, cxone, user_name, email with a Directory)
	TTL        time.Duration // default 10m
	MapFile    string        // optional CSV or YAML file
	Directory  Directory     // optional: CXone, for events that carry only the agent id
}

// New builds a finder. A map file that cannot be read is an error at start;
// later reload failures keep the last good map.
func New(sn *servicenow.Client, o Options) (*Finder, error) {
	f := &Finder{sn: sn, strategies: o.Strategies, ttl: o.TTL, dir: o.Directory, now: time.Now, cache: map[string]cached{}, agents: map[string]fromCXone{}}
	if len(f.strategies) == 0 {
		f.strategies = []string{ByMap, ByUserName, ByEmail}
		if f.dir != nil {
			f.strategies = []string{ByMap, ByCXone, ByUserName, ByEmail}
		}
	}
	if f.ttl <= 0 {
		f.ttl = 10 * time.Minute
	}
	if o.MapFile != "" {
		mf, err := OpenMapFile(o.MapFile)
		if err != nil {
			return nil, err
		}
		f.file = mf
	}
	return f, nil
}

// Stats reports cache hits and misses.
func (f *Finder) Stats() (hits, misses int64) { return f.hits.Load(), f.misses.Load() }

// MapFileError is why the map file's last edit could not be loaded (the
// previous map stays in use); nil when it loaded or there is no map file.
func (f *Finder) MapFileError() error {
	if f.file == nil {
		return nil
	}
	return f.file.Err()
}

// FindAgent implements ctibridge.AgentFinder.
func (f *Finder) FindAgent(ctx context.Context, a ctibridge.Agent) (ctibridge.AgentUser, error) {
	key := a.Key()
	if f.file != nil && f.file.Changed() {
		f.mu.Lock()
		clear(f.cache) // the map changed: earlier answers may be wrong now
		f.mu.Unlock()
	}
	f.mu.Lock()
	c, ok := f.cache[key]
	f.mu.Unlock()
	if ok && f.now().Before(c.expires) {
		f.hits.Add(1)
		return c.user, nil
	}
	f.misses.Add(1)
	u, err := f.lookup(ctx, a)
	if err != nil {
		return ctibridge.AgentUser{}, err
	}
	f.mu.Lock()
	f.cache[key] = cached{user: u, expires: f.now().Add(f.ttl)}
	f.mu.Unlock()
	return u, nil
}

func (f *Finder) lookup(ctx context.Context, a ctibridge.Agent) (ctibridge.AgentUser, error) {
	for _, s := range f.strategies {
		var (
			u   ctibridge.AgentUser
			err error
		)
		switch s {
		case ByMap:
			if f.file == nil || a.ID == "" {
				continue
			}
			target, ok := f.file.Lookup(a.ID)
			if !ok {
				continue
			}
			if servicenow.IsSysID(target) {
				u, err = f.user(ctx, "sys_id", target)
			} else {
				u, err = f.user(ctx, "user_name", target)
			}
		case ByUserName:
			if a.UserName == "" {
				continue
			}
			u, err = f.user(ctx, "user_name", a.UserName)
		case ByEmail:
			if a.Email == "" {
				continue
			}
			u, err = f.user(ctx, "email", a.Email)
		case ByCXone:
			a, err = f.fillFromCXone(ctx, a)
		}
		if err != nil {
			return ctibridge.AgentUser{}, fmt.Errorf("map agent %s by %s: %w", a.ID, s, err)
		}
		if u.SysID != "" {
			u.How = s
			return u, nil
		}
	}
	return ctibridge.AgentUser{}, nil
}

// fillFromCXone completes an agent with the user name and e-mail of its
// CXone record; what the event carries wins. An id CXone does not know, or
// that is not a CXone id, leaves the agent as it is.
func (f *Finder) fillFromCXone(ctx context.Context, a ctibridge.Agent) (ctibridge.Agent, error) {
	if f.dir == nil || (a.UserName != "" && a.Email != "") || !cxone.ValidAgentID(a.ID) {
		return a, nil
	}
	rec, err := f.cxoneAgent(ctx, a.ID)
	if err != nil || !rec.known {
		return a, err
	}
	if a.UserName == "" {
		a.UserName = rec.agent.UserName
	}
	if a.Email == "" {
		a.Email = rec.agent.EmailAddress
	}
	return a, nil
}

// cxoneAgent reads an agent's CXone record through the cache; callers that
// need the same agent at once share one request.
func (f *Finder) cxoneAgent(ctx context.Context, id string) (fromCXone, error) {
	f.mu.Lock()
	e, ok := f.agents[id]
	f.mu.Unlock()
	if ok && f.now().Before(e.expires) {
		return e, nil
	}
	v, err, _ := f.asking.Do(id, func() (any, error) {
		f.mu.Lock()
		e, ok := f.agents[id]
		f.mu.Unlock()
		if ok && f.now().Before(e.expires) {
			return e, nil // read while this caller was on its way
		}
		rec, err := f.dir.Agent(ctx, id)
		if err != nil && !cxone.IsNotFound(err) {
			return nil, err // not cached: the next call asks again
		}
		e = fromCXone{agent: rec, known: err == nil, expires: f.now().Add(f.ttl)}
		f.mu.Lock()
		f.agents[id] = e
		f.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return fromCXone{}, err
	}
	return v.(fromCXone), nil
}

// user finds one active sys_user by a field. More than one match is treated as
// no match: assigning the call to the wrong person is worse than to no one.
func (f *Finder) user(ctx context.Context, field, value string) (ctibridge.AgentUser, error) {
	q := servicenow.Query().Eq("active", "true")
	if field == "email" {
		// Table API equality is case-insensitive on most instances, but not
		// all; ask for the two usual spellings.
		q = q.Eq(field, value).OrEq(field, strings.ToLower(value))
	} else {
		q = q.Eq(field, value)
	}
	qs, err := q.Encode()
	if err != nil {
		return ctibridge.AgentUser{}, err
	}
	recs, err := f.sn.List(ctx, "sys_user", servicenow.ListOptions{
		Query: qs, Fields: []string{"sys_id", "user_name", "name", "email"}, Limit: 2, NoCount: true,
	})
	if err != nil {
		return ctibridge.AgentUser{}, err
	}
	if len(recs) != 1 {
		return ctibridge.AgentUser{}, nil
	}
	name := recs[0].Get("name")
	if name == "" {
		name = recs[0].Get("user_name")
	}
	return ctibridge.AgentUser{SysID: recs[0].SysID(), Name: name}, nil
}
