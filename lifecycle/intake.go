// The intake: accepting Studio's events durably.

package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/store"
)

// Intake accepts Studio's events: it makes each durable and wakes the
// reconciler, and never waits for ServiceNow unless asked to.
type Intake struct {
	db        *store.DB
	namespace string
	pop       ctibridge.ScreenPop
	rec       *Reconciler
	states    ctibridge.States
	keepOpen  bool
	now       func() time.Time
}

// NewIntake builds the intake. rec may be nil (a bridge that only accepts).
func NewIntake(db *store.DB, cfg Config, pop ctibridge.ScreenPop, rec *Reconciler) *Intake {
	cfg.defaults()
	return &Intake{db: db, namespace: cfg.Namespace, pop: pop, rec: rec, states: cfg.States, keepOpen: cfg.KeepOpen, now: time.Now}
}

// Accepted is the answer to an event: enough for Studio's screen pop.
type Accepted struct {
	InteractionSysID string
	ScreenPopURL     string
	Duplicate        bool   // the same event had been accepted before
	Number           string // set when known (after a wait)
}

// Accept stores an event durably. When it returns without error, the event
// will reach ServiceNow whatever happens to the process.
func (in *Intake) Accept(ctx context.Context, masterID string, ev ctibridge.Event) (Accepted, error) {
	if err := ctibridge.ValidateMasterID(masterID); err != nil {
		return Accepted{}, err
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return Accepted{}, fmt.Errorf("encode event: %w", err)
	}
	sysID := ctibridge.SysID(in.namespace, masterID)
	now := in.now()
	c, added, err := in.db.AddEvent(ctx, store.Event{
		MasterID: masterID, Kind: string(ev.Kind), DedupeKey: ev.DedupeKey(),
		OccurredAt: ev.OccurredAt, ReceivedAt: now, Payload: payload,
	}, sysID)
	if err != nil {
		return Accepted{}, err
	}
	if added && in.rec != nil {
		in.rec.Wake()
	}
	return Accepted{InteractionSysID: c.SysID, ScreenPopURL: in.pop.URL(c.SysID), Duplicate: !added}, nil
}

// Wait waits until the interaction exists in ServiceNow (its number is known)
// or ctx ends, and returns the number, "" if it is not there yet.
func (in *Intake) Wait(ctx context.Context, masterID string) string {
	var woken <-chan struct{}
	if in.rec != nil {
		ch, done := in.rec.synced.add(masterID)
		defer done()
		woken = ch
	}
	// This bridge's workers wake us; another bridge sharing the database
	// is noticed by the poll.
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		c, _, err := in.db.Contact(ctx, masterID)
		if err == nil {
			if s, err := decodeSynced(c.Synced); err == nil && s.Number != "" {
				return s.Number
			}
		}
		select {
		case <-ctx.Done():
			return ""
		case <-woken:
		case <-t.C:
		}
	}
}

// ScreenPopURL is where an agent's browser opens the call's interaction,
// known from the master contact id alone (the sys_id is derived from it), so
// a desktop that never saw Studio's reply can open it too.
func (in *Intake) ScreenPopURL(masterID string) string {
	return in.pop.URL(ctibridge.SysID(in.namespace, masterID))
}
