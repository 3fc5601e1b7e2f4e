package store

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestGateLetsEventsFirstButNotTwice: on SQLite's write connection, an
// events batch goes before the workers' writes that were waiting longer,
// but never twice in a row while one of them waits, so neither side starves.
func TestGateLetsEventsFirstButNotTwice(t *testing.T) {
	t.Parallel()
	g := &gate{}
	ctx := context.Background()
	if err := g.enter(ctx, false); err != nil { // a worker's write under way
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	waiting := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			g.mu.Lock()
			k := len(g.high) + len(g.low)
			g.mu.Unlock()
			if k == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writers waiting, want %d", k, n)
			}
		}
	}
	enter := func(name string, high bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.enter(ctx, high); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			g.leave()
		}()
	}
	// Arrivals, in this order, while the worker's write is under way.
	for i, w := range []struct {
		name string
		high bool
	}{{"w1", false}, {"w2", false}, {"e1", true}, {"w3", false}, {"e2", true}, {"e3", true}} {
		enter(w.name, w.high)
		waiting(i + 1)
	}
	// A writer that gives up while waiting leaves the line.
	gaveUp, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- g.enter(gaveUp, true) }()
	waiting(7)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a writer that gave up was let in")
	}
	g.leave()
	wg.Wait()
	want := []string{"e1", "w1", "e2", "w2", "e3", "w3"}
	if !slices.Equal(order, want) {
		t.Errorf("writes went in the order %v, want %v", order, want)
	}
	if g.held {
		t.Error("the gate is still held after every writer left")
	}
}
