package filewatch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReloadsEditsAndKeepsTheLastGoodValue: an edit is picked up after the
// recheck interval; a broken edit keeps the last good value and says why;
// fixing the file brings the new value.
func TestReloadsEditsAndKeepsTheLastGoodValue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	clock := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Minute)
		os.Chtimes(path, clock, clock) // a new modification time, whatever the file system's resolution
	}
	write("one")
	load := func() (string, error) {
		b, err := os.ReadFile(path)
		if strings.HasPrefix(string(b), "bad") {
			return "", errors.New("cannot parse " + string(b))
		}
		return string(b), err
	}
	w, err := New(5*time.Second, load, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	w.now = func() time.Time { return now }
	write("two")
	if got := w.Get(); got != "one" {
		t.Errorf("before the recheck interval: %q, want one", got)
	}
	now = now.Add(5 * time.Second)
	if got := w.Get(); got != "two" || !w.Changed() || w.Changed() {
		t.Errorf("after it: %q, want two, reported changed once", got)
	}
	write("bad edit")
	now = now.Add(5 * time.Second)
	if got := w.Get(); got != "two" || w.Err() == nil || !strings.Contains(w.Err().Error(), "bad edit") || w.Changed() {
		t.Errorf("broken edit: %q, err %v; want two kept and the error", got, w.Err())
	}
	write("three")
	now = now.Add(5 * time.Second)
	if got := w.Get(); got != "three" || w.Err() != nil {
		t.Errorf("fixed: %q, err %v; want three", got, w.Err())
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := New(time.Second, func() ([]byte, error) { return os.ReadFile(missing) }, missing); err == nil {
		t.Error("a missing file loaded")
	}
}
