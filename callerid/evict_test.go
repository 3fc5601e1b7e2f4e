package callerid

import (
	"fmt"
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
