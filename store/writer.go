package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
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
// costs a transaction and, on SQLite, an fsync. Events that arrive while a
// transaction is being written wait in a queue; the next transaction takes
// all of them: one transaction, one fsync, a handful of statements whatever
// the number of events. A lone event is written at once; a crowd shares the
// cost.
//
// Leader and followers rather than a writer goroutine: the caller that finds
// no transaction under way writes the queue itself (it leads), so a lone
// event costs what it cost before group commit, with no hand-over to
// another goroutine and back (two wake-ups that, on a busy machine, cost
// more than the statements). Callers that arrive meanwhile follow: they
// queue and wait. A leader writes one batch and then hands the lead to the
// first caller waiting, so no caller writes other callers' batches for
// long. A batch is written under the store's context, not the leader's: a
// caller that gives up (Studio's 2-second timeout) never aborts the others'
// transaction; callers only stop waiting.
//
// SQLite has one writer, so it has one leader at a time. PostgreSQL has a
// few (maxLeaders): there a batch spends most of its time in round trips,
// and a single leader would be one server process against the workers'
// eight, served that much less often when the database is busy.
//
// Each caller still gets its own result. If a batch fails (one event the
// database refuses, a deadlock with another bridge), it is rolled back and
// every event in it is tried again in a transaction of its own, so one bad
// event fails only its own request.

// maxBatch bounds the events committed in one transaction (and the
// parameters of one statement: 6 per event).
const maxBatch = 256

// batchTimeout bounds one round of the writer: the batch and, if it fails,
// the events tried one by one. A caller's own context ends its wait sooner.
const batchTimeout = 30 * time.Second

// ErrClosed is returned for writes asked of a store that has been closed.
var ErrClosed = errors.New("store closed")

// writeReq is one caller waiting for the writer: an event to add, a ping,
// or (on SQLite) a worker's write, op.
type writeReq struct {
	ctx   context.Context
	ping  bool
	ev    Event
	sysID string
	// op is a worker's write (claim, checkpoint, release): run in the
	// batch's transaction after its events. It may run more than once (in a
	// batch that fails, then alone), so it sets what it reports afresh each
	// time; an error it returns fails the transaction it runs in.
	op     func(ctx context.Context, q *writerTx) error
	done   chan writeRes // buffered: a leader never blocks on a caller that left
	lead   chan struct{} // buffered: this caller is to write the next batch
	handed bool          // set under writer.mu when the lead is handed to it

	res writeRes // set by a successful batch
}

type writeRes struct {
	c     Contact
	added bool
	err   error
}

type writer struct {
	mu         sync.Mutex
	idle       *sync.Cond // signalled when a caller stops writing
	queue      []*writeReq
	maxLeaders int
	leaders    int // callers writing, or handed the lead
	running    int // callers writing
	closed     bool
	ctx        context.Context // cancelled by close: batches under way fail
	cancel     context.CancelFunc

	busy    atomic.Int32 // batches being written (for tests)
	commits atomic.Int64 // transactions committed (for tests and benchmarks)
}

func newWriter(maxLeaders int) *writer {
	w := &writer{maxLeaders: maxLeaders}
	w.idle = sync.NewCond(&w.mu)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w
}

// submit queues r and waits for its result or for r.ctx to end, writing
// the queue itself when no one else is. A caller that stops waiting may
// still have its event committed (Studio's retry then finds a duplicate);
// an event not yet taken into a batch when its caller gives up is not
// written.
func (s *DB) submit(r *writeReq) writeRes {
	if err := r.ctx.Err(); err != nil {
		return writeRes{err: err}
	}
	r.done = make(chan writeRes, 1)
	r.lead = make(chan struct{}, 1)
	w := s.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return writeRes{err: ErrClosed}
	}
	w.queue = append(w.queue, r)
	leader := w.leaders < w.maxLeaders
	if leader {
		w.leaders++
	}
	w.mu.Unlock()
	if leader {
		s.lead()
	}
	for {
		select {
		case res := <-r.done:
			// Handed the lead while queued, then written in another
			// leader's batch: still lead once, or the lead is lost.
			select {
			case <-r.lead:
				s.lead()
			default:
			}
			return res
		case <-r.lead:
			s.lead()
		case <-r.ctx.Done():
			w.mu.Lock()
			handed := r.handed
			if !handed {
				if i := slices.Index(w.queue, r); i >= 0 {
					w.queue = slices.Delete(w.queue, i, i+1)
				}
			}
			w.mu.Unlock()
			if handed {
				// Handed the lead as it gave up: write the batch anyway
				// (it skips this caller), or the queue would stall.
				select {
				case <-r.lead:
					s.lead()
				default: // already written
				}
			}
			return writeRes{err: r.ctx.Err()}
		}
	}
}

// lead writes one batch from the queue, then hands the lead to the first
// caller still queued, or gives it up when none is.
func (s *DB) lead() {
	w := s.w
	w.mu.Lock()
	w.running++
	n := min(len(w.queue), maxBatch)
	batch := slices.Clone(w.queue[:n])
	w.queue = slices.Delete(w.queue, 0, n)
	w.mu.Unlock()
	if n > 0 {
		w.busy.Add(1)
		s.writeRound(w.ctx, batch)
		w.busy.Add(-1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running--
	w.idle.Broadcast()
	for _, next := range w.queue {
		if !next.handed { // another leader's successor leads its own batch
			next.handed = true
			next.lead <- struct{}{}
			return
		}
	}
	w.leaders--
}

// queued reports how many requests wait for a batch (for tests).
func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// close stops the writer: requests still queued fail with ErrClosed, a batch
// being written is cancelled, and close returns once no one writes. A caller
// handed the lead after close finds the queue empty and writes nothing.
func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, r := range w.queue {
		r.done <- writeRes{err: ErrClosed}
	}
	w.queue = nil
	w.cancel()
	for w.running > 0 {
		w.idle.Wait()
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
	var evs, ops []*writeReq
	ping := false
	for _, r := range batch {
		switch {
		case r.ping:
			ping = true
		case r.op != nil:
			ops = append(ops, r)
		default:
			evs = append(evs, r)
		}
	}
	q := &writerTx{s: s}
	err := s.writeTx(ctx, true, func(tx *sql.Tx) error {
		q.tx = tx
		if ping {
			if _, err := q.ExecContext(ctx, pingSQL, strconv.FormatInt(now, 10)); err != nil {
				return fmt.Errorf("write check: %w", err)
			}
		}
		if len(evs) > 0 {
			if err := s.addEvents(ctx, q, at, evs); err != nil {
				return err
			}
		}
		for _, r := range ops {
			if err := r.op(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	s.prepare(ctx, q.unprepared)
	return err
}

// write runs fn in a write transaction. On SQLite it joins the writer's
// next batch: the workers' claims and releases share the events'
// transaction and fsync, which on a busy bridge cost more than all their
// statements. On PostgreSQL, which commits concurrent transactions
// together itself, it is a transaction of its own.
func (s *DB) write(ctx context.Context, fn func(ctx context.Context, q *writerTx) error) error {
	if s.dialect == sqlite {
		return s.submit(&writeReq{ctx: ctx, op: fn}).err
	}
	return s.tx(ctx, func(tx *sql.Tx) error { return fn(ctx, &writerTx{s: s, tx: tx}) })
}

// write1 is write for one statement: on PostgreSQL it runs on its own,
// without a transaction around it (one round trip, not three).
func (s *DB) write1(ctx context.Context, fn func(ctx context.Context, q *writerTx) error) error {
	if s.dialect == sqlite {
		return s.write(ctx, fn)
	}
	return fn(ctx, &writerTx{s: s, db: s.db})
}

// The writer's statements. Those taking rows are written for n rows (see
// rowsPerStatement); on SQLite they are prepared once, for a few sizes.
const (
	pingSQL       = `UPDATE meta SET value = $1 WHERE key = 'last_ping'`
	countCallsSQL = `UPDATE call_counts SET calls = calls + $1 WHERE shard = $2`
)

// callCountShards is the number of rows of call_counts (see the schema).
const callCountShards = 16

// param is the placeholder of argument k in the writer's statements for
// many rows. On PostgreSQL it is $k. On SQLite it is a bare ?, which takes
// the next argument: a numbered placeholder is a name there, and binding
// a statement of 64 rows looked each of its hundreds of names up in a list,
// one after the other, and allocated it. A ? is argument k when k-1
// distinct placeholders come before it in the text: the statements below
// put their shared argument ($1) first and the rows' after it.
func (s *DB) param(k int) string {
	if s.dialect == sqlite {
		return "?"
	}
	return "$" + strconv.Itoa(k)
}

// insertContactsSQL: args now, then master_id and sys_id for each row. A
// call already stored is left out before the insert, not by the conflict:
// on PostgreSQL the unique check of an insert waits for every transaction
// that has written a new version of the call's row (a worker's claim or
// release), where a read of the row waits for none.
func (s *DB) insertContactsSQL(n int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO contacts (master_id, sys_id, version, created_at, updated_at)
		SELECT v.column1, v.column2, 0, CAST($1 AS BIGINT), CAST($1 AS BIGINT) FROM (VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "(%s, %s)", s.param(2*i+2), s.param(2*i+3))
	}
	q.WriteString(`) AS v WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.master_id = v.column1)
		ON CONFLICT (master_id) DO NOTHING RETURNING master_id`)
	return q.String()
}

// insertEventsSQL: args the six columns of each row.
func (s *DB) insertEventsSQL(n int) string {
	var q strings.Builder
	q.WriteString(`INSERT INTO events (master_id, kind, dedupe_key, occurred_at, received_at, payload) VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		k := 6 * i
		fmt.Fprintf(&q, "(%s, %s, %s, %s, %s, %s)", s.param(k+1), s.param(k+2), s.param(k+3), s.param(k+4), s.param(k+5), s.param(k+6))
	}
	q.WriteString(` ON CONFLICT (master_id, dedupe_key) DO NOTHING RETURNING master_id, dedupe_key`)
	return q.String()
}

// readContactsSQL: args the master ids, sorted (rows are locked in that
// order on PostgreSQL).
func (s *DB) readContactsSQL(n int) string {
	var q strings.Builder
	q.WriteString(`SELECT ` + contactCols + ` FROM contacts WHERE master_id IN (`)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(s.param(i + 1))
	}
	q.WriteString(`) ORDER BY master_id`)
	if s.dialect == postgres {
		q.WriteString(` FOR NO KEY UPDATE`) // the keys stay: other batches' events for these calls need not wait
	}
	return q.String()
}

// bumpSQL: args updated_at, then master_id and the number of events added
// for each row; on PostgreSQL withClock adds the clock. On SQLite the clock
// is this process's, the time updated_at is set to ($1), which keeps the
// rows' placeholders in order (see param).
func (s *DB) bumpSQL(n int) string {
	due := "{{now}}"
	if s.dialect == sqlite {
		due = "$1"
	}
	var q strings.Builder
	q.WriteString(`UPDATE contacts SET version = contacts.version + v.column2, next_attempt_at = ` + due + `,
		parked = 0, attempts = 0, updated_at = $1 FROM (VALUES `)
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "(%s, CAST(%s AS BIGINT))", s.param(2*i+2), s.param(2*i+3))
	}
	q.WriteString(`) AS v WHERE contacts.master_id = v.column1 RETURNING ` + contactCols)
	return q.String()
}

// prepare prepares, on SQLite, the writer's statements that ran without a
// prepared form (texts), so that they are parsed once, not on every run:
// parsing a statement costs more than a lone event's write. It runs after
// the transaction, which holds SQLite's one write connection. The writer's
// statements are a fixed set (the rows of a statement come in the sizes
// of preparedRows), so the cache is bounded. On PostgreSQL, pgx caches
// prepared statements itself.
func (s *DB) prepare(ctx context.Context, texts []string) {
	if s.dialect != sqlite || len(texts) == 0 {
		return
	}
	for _, q := range texts {
		s.prepMu.Lock()
		_, done := s.prepared[q]
		s.prepMu.Unlock()
		if done {
			continue
		}
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			continue // run unprepared, and tried again next time
		}
		s.prepMu.Lock()
		if s.prepared == nil {
			s.prepared = map[string]*sql.Stmt{}
		}
		if _, dup := s.prepared[q]; dup {
			st.Close()
		} else {
			s.prepared[q] = st
		}
		s.prepMu.Unlock()
	}
}

// writerTx runs the writer's statements in a transaction, through their
// prepared form when there is one, and notes those without one.
type writerTx struct {
	s          *DB
	tx         *sql.Tx
	db         *sql.DB // instead of tx, for a statement on its own (write1)
	unprepared []string
}

func (w *writerTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if w.s.dialect != sqlite {
		return nil
	}
	w.s.prepMu.Lock()
	st := w.s.prepared[q]
	w.s.prepMu.Unlock()
	if st == nil {
		w.unprepared = append(w.unprepared, q)
		return nil
	}
	return w.tx.StmtContext(ctx, st)
}

// sqlRunner is what a *sql.Tx and a *sql.DB have in common.
type sqlRunner interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func (w *writerTx) runner() sqlRunner {
	if w.tx == nil {
		return w.db
	}
	return w.tx
}

func (w *writerTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := w.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return w.runner().QueryContext(ctx, q, args...)
}

func (w *writerTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := w.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return w.runner().QueryRowContext(ctx, q, args...)
}

func (w *writerTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := w.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return w.runner().ExecContext(ctx, q, args...)
}

type eventKey struct{ master, dedupe string }

func (s *DB) addEvents(ctx context.Context, tx *writerTx, at time.Time, reqs []*writeReq) error {
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

	created, err := chunks(ctx, s, tx, len(masters), scanString, func(lo, hi int) (string, []any) {
		args := []any{now}
		for _, m := range masters[lo:hi] {
			args = append(args, m, sysIDs[m])
		}
		return s.insertContactsSQL(hi - lo), args
	})
	if err != nil {
		return fmt.Errorf("insert contacts: %w", err)
	}

	// The first occurrence of each event in the batch is inserted; the
	// database says which of them were new.
	first := map[eventKey]int{}
	var firsts []*writeReq
	for i, r := range reqs {
		k := eventKey{r.ev.MasterID, r.ev.DedupeKey}
		if _, seen := first[k]; !seen {
			first[k] = i
			firsts = append(firsts, r)
		}
	}
	inserted, err := chunks(ctx, s, tx, len(firsts), func(row interface{ Scan(...any) error }) (eventKey, error) {
		var k eventKey
		err := row.Scan(&k.master, &k.dedupe)
		return k, err
	}, func(lo, hi int) (string, []any) {
		args := make([]any, 0, 6*(hi-lo))
		for _, r := range firsts[lo:hi] {
			args = append(args, r.ev.MasterID, r.ev.Kind, r.ev.DedupeKey, ms(r.ev.OccurredAt), ms(r.ev.ReceivedAt), string(r.ev.Payload))
		}
		return s.insertEventsSQL(hi - lo), args
	})
	if err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	isNew := make(map[eventKey]bool, len(inserted))
	bumps := map[string]int64{}
	for _, k := range inserted {
		isNew[k] = true
		bumps[k.master]++
	}

	// A caller whose event is a duplicate, before any event of its call
	// was added in this batch, is answered with the call as it stood
	// before the batch: read those calls (locked on PostgreSQL until the
	// commit, so the bumps below apply to what was read). Every other
	// caller is answered from what the bump returns.
	var needBefore []string
	bumped := map[string]bool{}
	for i, r := range reqs {
		k := eventKey{r.ev.MasterID, r.ev.DedupeKey}
		if first[k] == i && isNew[k] {
			bumped[k.master] = true
		} else if !bumped[k.master] && !slices.Contains(needBefore, k.master) {
			needBefore = append(needBefore, k.master)
		}
	}
	slices.Sort(needBefore)
	rows, err := chunks(ctx, s, tx, len(needBefore), scanContact, func(lo, hi int) (string, []any) {
		args := make([]any, 0, hi-lo)
		for _, m := range needBefore[lo:hi] {
			args = append(args, m)
		}
		return s.readContactsSQL(hi - lo), args
	})
	if err != nil {
		return fmt.Errorf("read contacts: %w", err)
	}
	before := make(map[string]Contact, len(rows))
	for _, c := range rows {
		before[c.MasterID] = c
	}

	var bumpedMasters []string
	for _, m := range masters {
		if bumps[m] > 0 {
			bumpedMasters = append(bumpedMasters, m)
		}
	}
	rows, err = chunks(ctx, s, tx, len(bumpedMasters), scanContact, func(lo, hi int) (string, []any) {
		args := []any{now}
		for _, m := range bumpedMasters[lo:hi] {
			args = append(args, m, bumps[m])
		}
		return s.withClock(s.bumpSQL(hi-lo), at, args...)
	})
	if err != nil {
		return fmt.Errorf("bump contacts: %w", err)
	}
	after := make(map[string]Contact, len(rows))
	for _, c := range rows {
		after[c.MasterID] = c
	}

	// Last, so that on PostgreSQL the count's row is locked only for the
	// commit.
	if len(created) > 0 {
		if _, err := tx.ExecContext(ctx, countCallsSQL, len(created), rand.IntN(callCountShards)); err != nil {
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
		var c Contact
		var ok bool
		if seen[k.master] > 0 {
			c, ok = after[k.master]
			c.Version -= bumps[k.master] - seen[k.master]
		} else {
			c, ok = before[k.master]
		}
		if !ok {
			return fmt.Errorf("contact %s vanished during its own transaction", k.master)
		}
		r.res.c = c
	}
	return nil
}

// preparedRows are the statement sizes used on SQLite, largest first.
var preparedRows = []int{64, 16, 4, 1}

// rowsPerStatement is how many of n rows left the writer puts in its next
// statement. On PostgreSQL, all of them: each statement is a round trip. On
// SQLite, the largest prepared size that fits (see prepare): a
// statement costs no round trip there, but parsing one costs more than
// writing a lone event.
func (s *DB) rowsPerStatement(n int) int {
	if s.dialect == sqlite {
		for _, k := range preparedRows {
			if k <= n {
				return k
			}
		}
	}
	return n
}

// chunks runs, for n rows, the statements stmt gives for rows [lo, hi), as
// many rows at a time as rowsPerStatement says, and collects what they
// return.
func chunks[T any](ctx context.Context, s *DB, q querier, n int, scan func(interface{ Scan(...any) error }) (T, error), stmt func(lo, hi int) (string, []any)) ([]T, error) {
	var out []T
	for lo := 0; lo < n; {
		hi := lo + s.rowsPerStatement(n-lo)
		text, args := stmt(lo, hi)
		rows, err := collect(ctx, q, scan, text, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		lo = hi
	}
	return out, nil
}

func scanString(row interface{ Scan(...any) error }) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}
