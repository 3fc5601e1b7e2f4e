// Package filewatch keeps a value loaded from files and loads it again when
// they change, so operators can replace a file (an agent map, a renewed TLS
// certificate) without a restart.
//
// Files are checked on use, at most once per recheck interval, by their
// modification time. A load that fails keeps the last good value in
// service and is reported by Err. It never watches in the background and
// never writes.
package filewatch

import (
	"os"
	"sync"
	"time"
)

// Value is a value loaded from files.
type Value[T any] struct {
	files   []string
	load    func() (T, error)
	recheck time.Duration
	now     func() time.Time

	mu      sync.Mutex
	v       T
	mod     time.Time // newest modification time of the files when v was loaded
	checked time.Time
	changed bool
	err     error
}

// New loads the value with load, which reads files, and returns the error
// of that first load.
func New[T any](recheck time.Duration, load func() (T, error), files ...string) (*Value[T], error) {
	w := &Value[T]{files: files, load: load, recheck: recheck, now: time.Now}
	mod := w.modTime()
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.v, w.mod, w.checked = v, mod, w.now()
	return w, nil
}

// Get returns the value, loading it again first if a file changed since the
// last load and the recheck interval has passed since the last check.
func (w *Value[T]) Get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refresh()
	return w.v
}

// Changed reports, once, whether the value was loaded again since the last
// call.
func (w *Value[T]) Changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.refresh()
	c := w.changed
	w.changed = false
	return c
}

// Err is why the last reload failed (the previous value stays in use); nil
// when the files in use loaded.
func (w *Value[T]) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// CheckNow makes the next use check the files, whatever the interval (for
// a reload signal, or a test).
func (w *Value[T]) CheckNow() {
	w.mu.Lock()
	w.checked = time.Time{}
	w.mu.Unlock()
}

// refresh reloads if due. The caller holds mu.
func (w *Value[T]) refresh() {
	now := w.now()
	if now.Sub(w.checked) < w.recheck {
		return
	}
	w.checked = now
	mod := w.modTime()
	if mod.Equal(w.mod) {
		return // unchanged since the last load, good or broken
	}
	w.mod = mod
	v, err := w.load()
	if err != nil {
		w.err = err
		return
	}
	w.v, w.changed, w.err = v, true, nil
}

func (w *Value[T]) modTime() time.Time {
	var latest time.Time
	for _, f := range w.files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(latest) {
			latest = st.ModTime()
		}
	}
	return latest
}
