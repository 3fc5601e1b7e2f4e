package lifecycle

import "sync"

// waiters lets requests that wait for a call's interaction (?wait=) sleep
// until a worker of this bridge has synced the call, instead of polling the
// store. A call synced by another bridge sharing the database is still
// found by Wait's slower poll.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

// add registers interest in masterID; call the returned func when done.
func (w *waiters) add(masterID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string][]chan struct{}{}
	}
	w.m[masterID] = append(w.m[masterID], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[masterID]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, masterID)
		} else {
			w.m[masterID] = list
		}
	}
}

// notify wakes whoever waits for masterID.
func (w *waiters) notify(masterID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ch := range w.m[masterID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
