package store

import (
	"context"
	"slices"
	"sync"
)

// gate orders the writes on SQLite's one write connection. Left to
// database/sql, whoever waits for the connection is picked at random, so an
// event Studio waits for could queue behind every worker's claim and
// release (each a transaction and an fsync of its own). The gate lets the
// events' batches go first, but never twice in a row while other writes
// wait: a batch waits for at most the write under way and one other, and
// the workers' writes still get every other turn.
type gate struct {
	mu       sync.Mutex
	held     bool
	lastHigh bool // the holder, or the last one, was an events batch
	high     []chan struct{}
	low      []chan struct{}
}

// enter waits for the gate; high is an events batch. It returns ctx's error
// if ctx ends first, holding nothing.
func (g *gate) enter(ctx context.Context, high bool) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	if !g.held {
		g.held, g.lastHigh = true, high
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if high {
		g.high = append(g.high, ch)
	} else {
		g.low = append(g.low, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		q := &g.low
		if high {
			q = &g.high
		}
		if i := slices.Index(*q, ch); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
			g.mu.Unlock()
			return ctx.Err()
		}
		g.mu.Unlock()
		// Let in as ctx ended: pass the turn on.
		g.leave()
		return ctx.Err()
	}
}

// leave hands the gate to the next writer: an events batch if one waits,
// unless the last holder was one too and another write waits.
func (g *gate) leave() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var next chan struct{}
	switch {
	case len(g.high) > 0 && (!g.lastHigh || len(g.low) == 0):
		next, g.high, g.lastHigh = g.high[0], g.high[1:], true
	case len(g.low) > 0:
		next, g.low, g.lastHigh = g.low[0], g.low[1:], false
	default:
		g.held = false
		return
	}
	close(next)
}
