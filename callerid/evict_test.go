package callerid

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
)

// TestCacheStaysBounded: more distinct callers within one TTL than the
// cache holds (none expired) do not grow it past its bound; expired
// entries go first.
func TestCacheStaysBounded(t *testing.T) {
	f := NewFinder(nil, FinderOptions{TTL: time.Hour})
	now := time.Now()
	f.now = func() time.Time { return now }
	f.cache["expired"] = cached{c: ctibridge.Caller{User: "old"}, expires: now.Add(-time.Second)}
	for i := range maxCached + 1 {
		f.cache[fmt.Sprint("+1555", i)] = cached{c: ctibridge.Caller{User: fmt.Sprint(i)}, expires: now.Add(time.Hour)}
	}
	f.evict()
	if _, ok := f.cache["expired"]; ok {
		t.Error("an expired entry survived eviction")
	}
	if n := len(f.cache); n > maxCached*9/10 || n < maxCached*8/10 {
		t.Errorf("%d entries after evicting a full cache of live ones; want about %d", n, maxCached*9/10)
	}
}

// TestParsedStaysBounded: the memo of parsed ANIs never holds more than
// maxCached, however many distinct ANIs arrive. (Unusable ones here: they
// are parsed and remembered like any other, and need no lookup.)
func TestParsedStaysBounded(t *testing.T) {
	f := NewFinder(nil, FinderOptions{TTL: time.Hour})
	letters := func(r rune) rune { return r - '0' + 'a' }
	for i := range maxCached + 10 {
		ani := "caller " + strings.Map(letters, fmt.Sprint(i))
		if c, err := f.FindCaller(t.Context(), ani); err != nil || !c.Withheld {
			t.Fatalf("%q: %+v, %v; want withheld", ani, c, err)
		}
		f.mu.Lock()
		n := len(f.parsed)
		f.mu.Unlock()
		if n > maxCached {
			t.Fatalf("%d parsed ANIs remembered, want at most %d", n, maxCached)
		}
	}
}
