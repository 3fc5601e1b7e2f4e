// Configuration of the lifecycle and what the reconciler is built from.

package lifecycle

import (
	"log/slog"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// Config tunes the lifecycle.
type Config struct {
	Namespace string            // sys_id namespace; distinct per deployment writing to one instance
	Table     string            // "interaction"
	States    ctibridge.States  // state names written
	KeepOpen  bool              // leave answered interactions open on release
	FieldMap  map[string]string // call attribute → interaction field

	Workers      int           // concurrent reconcilers (default 8; the bridge gives one per request the client may have in flight)
	Lease        time.Duration // how long a worker owns a contact (default 2m)
	JobTimeout   time.Duration // bound on one attempt (default 1m, below Lease)
	PollInterval time.Duration // how often idle workers look for due work (default 1s)
	MinBackoff   time.Duration // first retry delay (default 1s)
	MaxBackoff   time.Duration // retry delay cap (default 5m)
	AlertAfter   int           // failed attempts before a transient failure enters the error log (default 3)
	GiveUpAfter  time.Duration // stop retrying a call that has failed for this long (default 24h)
	// ShutdownGrace is how long running attempts may go on once Run's
	// context ends; then they are cancelled and their calls released for
	// the next start or another bridge (default 10s).
	ShutdownGrace time.Duration
	WarnWindow    time.Duration // one warning per key per window (default 1h)
	// LookupWait bounds how long the caller and agent lookups may hold up
	// a create or update (default 1s): what has not answered by then comes
	// in a later update.
	LookupWait time.Duration
	// Retention is how long finished calls and resolved error entries are
	// kept (default 30 days; negative = forever). Unfinished work is kept.
	Retention time.Duration
}

func (c *Config) defaults() {
	if c.Table == "" {
		c.Table = "interaction"
	}
	if c.States == (ctibridge.States{}) {
		c.States = ctibridge.DefaultStates()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	def(&c.Lease, 2*time.Minute)
	def(&c.JobTimeout, time.Minute)
	def(&c.PollInterval, time.Second)
	def(&c.MinBackoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	def(&c.GiveUpAfter, 24*time.Hour)
	def(&c.WarnWindow, time.Hour)
	def(&c.LookupWait, time.Second)
	def(&c.ShutdownGrace, 10*time.Second)
	if c.Retention == 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.AlertAfter <= 0 {
		c.AlertAfter = 3
	}
}

// Observer receives job outcomes for metrics. Any method may be nil-safe no-op.
type Observer interface {
	JobDone(outcome string, d time.Duration) // outcome: "synced", "retry", "parked"
}

// Deps are the reconciler's collaborators. Callers may be nil (no caller
// identification); Agents is required.
type Deps struct {
	DB       *store.DB
	SN       *servicenow.Client
	Callers  ctibridge.CallerFinder
	Agents   ctibridge.AgentFinder
	Logger   *slog.Logger
	Observer Observer
	// Normalize turns an ANI into E.164 without asking ServiceNow ("" when
	// it is withheld or not a number), so the first write carries the
	// number even before the caller is identified. Nil: ANIs are written
	// only when already in E.164.
	Normalize func(ani string) string
}
