package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit.
//
// Every Studio request waits for its event to be committed, and a commit
// costs a transaction and, on SQLite, an fsync. One writer goroutine per
// store takes every event waiting when it becomes free and commits them
// together: one transaction, one fsync, a handful of statements whatever the
// number of events. While a batch commits, the next one gathers, so a lone
// event is written at once and a crowd shares the cost.
//
// A single writer rather than a leader chosen among the callers: SQLite has
// one write connection anyway, so one goroutine owning the batching is the
// simplest shape that keeps it busy; and a batch is not tied to any one
// caller's context, so a caller that gives up (Studio's 2-second timeout)
// never aborts the others' transaction. Callers only stop waiting.
//
// Each caller still gets its own result. If a batch fails (one event the
// database refuses, a deadlock with another bridge), it is rolled back and
// every event in it is tried again in a transaction of its own, so one bad
// event fails only its own request.

// maxBatch bounds the events committed in one transaction (and the
// parameters of one statement: 7 per event).
const maxBatch = 256

// batchTimeout bounds one round of the writer: the batch and, if it fails,
// the events tried one by one. A caller's own context ends its wait sooner.
const batchTimeout = 30 * time.Second

// ErrClosed is returned for writes asked of a store that has been closed.
var ErrClosed = errors.New("store closed")

// writeReq is one caller waiting for the writer: an event to add, or a ping.
type writeReq struct {
	ctx   context.Context
	ping  bool
	ev    Event
	sysID string
	done  chan writeRes // buffered: the writer never blocks on a caller that left

	res writeRes // set by a successful batch
}

type writeRes struct {
	c     Contact
	added bool
	err   error
}

type writer struct {
	mu      sync.Mutex
	queue   []*writeReq
	closed  bool
	wake    chan struct{} // capacity 1: "the queue is not empty"
	stop    context.CancelFunc
	stopped chan struct{}

	busy    atomic.Bool  // a batch is being written (for tests)
	commits atomic.Int64 // transactions committed (for tests and benchmarks)
}

// startWriter starts the store's writer goroutine.
func (s *DB) startWriter() {
	ctx, cancel := context.WithCancel(context.Background())
	s.w = &writer{wake: make(chan struct{}, 1), stop: cancel, stopped: make(chan struct{})}
	go s.runWriter(ctx)
}

// submit queues r for the writer and waits for its result or for r.ctx to end.
// A caller that stops waiting may still have its event committed (Studio's
// retry then finds a duplicate); an event not yet taken into a batch when its
// caller gives up is not written.
func (s *DB) submit(r *writeReq) writeRes {
	if err := r.ctx.Err(); err != nil {
		return writeRes{err: err}
	}
	r.done = make(chan writeRes, 1)
	w := s.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return writeRes{err: ErrClosed}
	}
	w.queue = append(w.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case res := <-r.done:
		return res
	case <-r.ctx.Done():
		return writeRes{err: r.ctx.Err()}
	}
}

// queued reports how many requests wait for the writer (for tests).
func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// close stops the writer: requests still queued fail with ErrClosed, a batch
// being written is cancelled, and close returns once the writer has stopped.
func (w *writer) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.stopped
		return
	}
	w.closed = true
	left := w.queue
	w.queue = nil
	w.mu.Unlock()
	for _, r := range left {
		r.done <- writeRes{err: ErrClosed}
	}
	w.stop()
	<-w.stopped
}

func (s *DB) runWriter(ctx context.Context) {
	w := s.w
	defer close(w.stopped)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxBatch)
			batch := slices.Clone(w.queue[:n])
			w.queue = w.queue[n:]
			if len(w.queue) == 0 {
				w.queue = nil // let the backing array go
			}
			w.mu.Unlock()
			if n == 0 {
				break
			}
			w.busy.Store(true)
			s.writeRound(ctx, batch)
			w.busy.Store(false)
		}
	}
}

// writeRound commits batch, falling back to one transaction per request if
// the batch as a whole fails, and answers every caller still waiting.
func (s *DB) writeRound(ctx context.Context, batch []*writeReq) {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- writeRes{err: err} // nobody reads it; the caller has gone
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	err := s.writeBatch(ctx, live)
	if err == nil {
		s.w.commits.Add(1)
		for _, r := range live {
			r.done <- r.res
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- writeRes{err: err}
		return
	}
	for _, r := range live {
		if err := r.ctx.Err(); err != nil {
			r.done <- writeRes{err: err}
			continue
		}
		one := []*writeReq{r}
		if err := s.writeBatch(ctx, one); err != nil {
			r.done <- writeRes{err: err}
			continue
		}
		s.w.commits.Add(1)
		r.done <- r.res
	}
}

// writeBatch writes the requests of batch in one transaction and, if it
// commits, sets each request's result. The result is what the same events
// added one after the other, in queue order, would have given: an event is
// added unless an identical one (same call, same dedupe key) was stored
// before or comes earlier in the batch; each added event bumps its call's
// version by one, makes the call due now and un-parks it; each caller gets
// the call as it stood just after its own event.
func (s *DB) writeBatch(ctx context.Context, batch []*writeReq) error {
	at := s.now()
	now := ms(at)
	var evs []*writeReq
	ping := false
	for _, r := range batch {
		if r.ping {
			ping = true
		} else {
			evs = append(evs, r)
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if ping {
			if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = 'last_ping'`, strconv.FormatInt(now, 10)); err != nil {
				return fmt.Errorf("write check: %w", err)
			}
		}
		if len(evs) == 0 {
			return nil
		}
		return s.addEvents(ctx, tx, at, evs)
	})
}

type eventKey struct{ master, dedupe string }

func (s *DB) addEvents(ctx context.Context, tx *sql.Tx, at time.Time, reqs []*writeReq) error {
	now := ms(at)
	// The calls of the batch, sorted: rows are inserted and locked in the
	// same order by every bridge, which keeps two bridges' batches from
	// deadlocking on PostgreSQL.
	sysIDs := map[string]string{}
	for _, r := range reqs {
		if _, ok := sysIDs[r.ev.MasterID]; !ok {
			sysIDs[r.ev.MasterID] = r.sysID // the first event of a new call names its sys_id
		}
	}
	masters := make([]string, 0, len(sysIDs))
	for m := range sysIDs {
		masters = append(masters, m)
	}
	slices.Sort(masters)

	var q strings.Builder
	args := []any{now}
	q.WriteString(`INSERT INTO contacts (master_id, sys_id, version, created_at, updated_at) VALUES `)
	for i, m := range masters {
		if i > 0 {
			q.WriteString(", ")
		}
		args = append(args, m, sysIDs[m])
		fmt.Fprintf(&q, "($%d, $%d, 0, $1, $1)", len(args)-1, len(args))
	}
	q.WriteString(` ON CONFLICT (master_id) DO NOTHING RETURNING master_id`)
	created, err := collect(ctx, tx, scanString, q.String(), args...)
	if err != nil {
		return fmt.Errorf("insert contacts: %w", err)
	}

	// The first occurrence of each event in the batch is inserted; the
	// database says which of them were new.
	first := map[eventKey]int{}
	q.Reset()
	args = args[:0]
	q.WriteString(`INSERT INTO events (master_id, kind, dedupe_key, occurred_at, received_at, payload) VALUES `)
	for i, r := range reqs {
		k := eventKey{r.ev.MasterID, r.ev.DedupeKey}
		if _, seen := first[k]; seen {
			continue
		}
		first[k] = i
		if len(args) > 0 {
			q.WriteString(", ")
		}
		args = append(args, r.ev.MasterID, r.ev.Kind, r.ev.DedupeKey, ms(r.ev.OccurredAt), ms(r.ev.ReceivedAt), string(r.ev.Payload))
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d)", n-5, n-4, n-3, n-2, n-1, n)
	}
	q.WriteString(` ON CONFLICT (master_id, dedupe_key) DO NOTHING RETURNING master_id, dedupe_key`)
	inserted, err := collect(ctx, tx, func(row interface{ Scan(...any) error }) (eventKey, error) {
		var k eventKey
		err := row.Scan(&k.master, &k.dedupe)
		return k, err
	}, q.String(), args...)
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	isNew := make(map[eventKey]bool, len(inserted))
	bumps := map[string]int64{}
	for _, k := range inserted {
		isNew[k] = true
		bumps[k.master]++
	}

	// The calls as they stood before this batch's events (locked on
	// PostgreSQL until the commit, so the bumps below apply to them).
	q.Reset()
	args = args[:0]
	q.WriteString(`SELECT ` + contactCols + ` FROM contacts WHERE master_id IN (`)
	for i, m := range masters {
		if i > 0 {
			q.WriteString(", ")
		}
		args = append(args, m)
		fmt.Fprintf(&q, "$%d", len(args))
	}
	q.WriteString(`) ORDER BY master_id`)
	if s.dialect == postgres {
		q.WriteString(` FOR UPDATE`)
	}
	rows, err := collect(ctx, tx, scanContact, q.String(), args...)
	if err != nil {
		return fmt.Errorf("read contacts: %w", err)
	}
	before := make(map[string]Contact, len(rows))
	for _, c := range rows {
		before[c.MasterID] = c
	}

	after := map[string]Contact{}
	if len(bumps) > 0 {
		q.Reset()
		args = args[:0]
		q.WriteString(`UPDATE contacts SET version = contacts.version + v.column2, next_attempt_at = {{now}},
			parked = 0, attempts = 0, updated_at = $1 FROM (VALUES `)
		args = append(args, now)
		for _, m := range masters {
			if bumps[m] == 0 {
				continue
			}
			if len(args) > 1 {
				q.WriteString(", ")
			}
			args = append(args, m, bumps[m])
			fmt.Fprintf(&q, "($%d, CAST($%d AS BIGINT))", len(args)-1, len(args))
		}
		q.WriteString(`) AS v WHERE contacts.master_id = v.column1 RETURNING ` + contactCols)
		text, args := s.withClock(q.String(), at, args...)
		rows, err := collect(ctx, tx, scanContact, text, args...)
		if err != nil {
			return fmt.Errorf("bump contacts: %w", err)
		}
		for _, c := range rows {
			after[c.MasterID] = c
		}
	}

	// Last, so that on PostgreSQL the one row every bridge updates is
	// locked only for the commit.
	if len(created) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE counters SET value = value + $1 WHERE name = 'contacts'`, len(created)); err != nil {
			return fmt.Errorf("count contacts: %w", err)
		}
	}

	// Each caller's answer, replaying the batch in queue order.
	seen := map[string]int64{} // added events of each call so far
	for i, r := range reqs {
		k := eventKey{r.ev.MasterID, r.ev.DedupeKey}
		r.res.added = first[k] == i && isNew[k]
		if r.res.added {
			seen[k.master]++
		}
		c, ok := before[k.master]
		if !ok {
			return fmt.Errorf("contact %s vanished during its own transaction", k.master)
		}
		if seen[k.master] > 0 {
			c = after[k.master]
			c.Version -= bumps[k.master] - seen[k.master]
		}
		r.res.c = c
	}
	return nil
}

func scanString(row interface{ Scan(...any) error }) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}
