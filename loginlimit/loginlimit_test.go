package loginlimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func wrong() bool { return false }
func right() bool { return true }

// mustNotCheck fails the test if a refused attempt checks the password.
func mustNotCheck(t *testing.T) func() bool {
	return func() bool {
		t.Helper()
		t.Error("the password was checked while the limit was on")
		return false
	}
}

func TestAddressLimitLiftsWithTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{})
		for i := range 5 {
			if r := l.Try("192.0.2.1:4000", wrong); r.Refused != "" {
				t.Fatalf("failure %d refused: %+v", i+1, r)
			}
		}
		r := l.Try("192.0.2.1:4001", mustNotCheck(t)) // another port, same client
		if r.Refused != ScopeAddress || r.Wait != 30*time.Second || !r.FirstRefusal {
			t.Fatalf("6th attempt: %+v, want refused for the address, 30s, first refusal", r)
		}
		if r := l.Try("192.0.2.1:4002", mustNotCheck(t)); r.Refused != ScopeAddress || r.FirstRefusal {
			t.Fatalf("7th attempt: %+v, want refused, not the first refusal", r)
		}
		// Another address is not held back, and succeeds.
		if r := l.Try("192.0.2.2:4000", right); !r.OK {
			t.Fatalf("another address: %+v", r)
		}
		time.Sleep(29 * time.Second)
		if r := l.Try("192.0.2.1:4000", mustNotCheck(t)); r.Refused != ScopeAddress || r.Wait != time.Second {
			t.Fatalf("after 29s: %+v, want refused for 1s more", r)
		}
		time.Sleep(time.Second)
		if r := l.Try("192.0.2.1:4000", right); !r.OK {
			t.Fatalf("after 30s the right password: %+v", r)
		}
		// Success forgave the earlier failures: a full allowance again.
		for i := range 5 {
			if r := l.Try("192.0.2.1:4000", wrong); r.Refused != "" {
				t.Fatalf("after success, failure %d refused: %+v", i+1, r)
			}
		}
		if r := l.Try("192.0.2.1:4000", mustNotCheck(t)); r.Refused != ScopeAddress {
			t.Fatalf("6th failure after success: %+v", r)
		}
	})
}

// TestParallelGuesses: 64 guesses at once from one address; only the
// allowance is checked, however the checks overlap.
func TestParallelGuesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{})
		release := make(chan struct{})
		var checked, refused atomic.Int64
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				r := l.Try(fmt.Sprintf("198.51.100.7:%d", 1000+i), func() bool {
					checked.Add(1)
					<-release // still checking when the others arrive
					return false
				})
				if r.Refused == ScopeAddress {
					refused.Add(1)
				}
			})
		}
		synctest.Wait() // every guess is refused or checking
		if checked.Load() != 5 || refused.Load() != 59 {
			t.Errorf("%d checked and %d refused at once, want 5 and 59", checked.Load(), refused.Load())
		}
		close(release)
		wg.Wait()
		if r := l.Try("198.51.100.7:1", mustNotCheck(t)); r.Refused != ScopeAddress {
			t.Errorf("after the failures: %+v", r)
		}
	})
}

func TestOverallLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{})
		if r := l.Try("203.0.113.200:1", right); !r.OK { // an operator's desk
			t.Fatal(r)
		}
		// 7 addresses fail 5 times each: the first 30 failures are checked.
		var overall int
		for a := range 7 {
			for range 5 {
				switch r := l.Try(fmt.Sprintf("203.0.113.%d:1", a), wrong); r.Refused {
				case "":
				case ScopeOverall:
					overall++
				default:
					t.Fatalf("address %d: %+v", a, r)
				}
			}
		}
		if overall != 5 {
			t.Errorf("%d attempts refused overall, want 5 (35 tried, 30 allowed)", overall)
		}
		r := l.Try("203.0.113.99:1", mustNotCheck(t))
		if r.Refused != ScopeOverall || r.Wait != time.Second || r.FirstRefusal {
			t.Errorf("a new address during the attack: %+v, want refused overall for 1s", r)
		}
		// The operator's address logged in before: not held back.
		if r := l.Try("203.0.113.200:2", right); !r.OK {
			t.Errorf("trusted address during the attack: %+v", r)
		}
		// It lifts one failure a second; a right password costs nothing.
		time.Sleep(time.Second)
		if r := l.Try("203.0.113.99:1", right); !r.OK {
			t.Errorf("a second later, the right password: %+v", r)
		}
		if r := l.Try("203.0.113.98:1", wrong); r.Refused != "" {
			t.Errorf("a second later, a wrong one: %+v", r)
		}
		if r := l.Try("203.0.113.97:1", mustNotCheck(t)); r.Refused != ScopeOverall {
			t.Errorf("the next attempt in the same second: %+v", r)
		}
		// Trust expires.
		time.Sleep(24*time.Hour + time.Second)
		for a := range 6 {
			for range 5 {
				l.Try(fmt.Sprintf("203.0.113.%d:1", 10+a), wrong)
			}
		}
		if r := l.Try("203.0.113.200:2", mustNotCheck(t)); r.Refused != ScopeOverall {
			t.Errorf("trust a day old: %+v, want refused overall", r)
		}
	})
}

// TestMemoryStaysBounded: a slow attack from ever new addresses keeps only
// the recently failed ones.
func TestMemoryStaysBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{})
		most := 0
		for i := range 5000 {
			l.Try(fmt.Sprintf("10.%d.%d.%d:1", i>>16&255, i>>8&255, i&255), wrong)
			most = max(most, l.Tracked())
			time.Sleep(500 * time.Millisecond)
		}
		// An address's bucket is full again 150s after its failure, and idle
		// entries go within a minute of that: at most ~210s of addresses.
		if most > 450 {
			t.Errorf("%d addresses tracked at once, want at most 450", most)
		}
		time.Sleep(5 * time.Minute)
		l.Try("192.0.2.1:1", right)
		if n := l.Tracked(); n > 1 {
			t.Errorf("%d addresses tracked after the attack, want at most 1", n)
		}
	})
}

func TestAddressTableFull(t *testing.T) {
	l := New(Options{MaxAddresses: 3})
	for a := range 3 {
		l.Try(fmt.Sprintf("192.0.2.%d:1", a), wrong)
	}
	if r := l.Try("192.0.2.9:1", mustNotCheck(t)); r.Refused != ScopeOverall {
		t.Errorf("with the table full of failing addresses, a new one: %+v", r)
	}
	if r := l.Try("192.0.2.0:1", right); !r.OK {
		t.Errorf("a tracked address: %+v", r)
	}
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5555":                   "192.0.2.1",
		"192.0.2.1":                        "192.0.2.1",
		"[::ffff:192.0.2.1]:80":            "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443":       "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1%eth0]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:443":            "2001:db8:1:3::/64",
		"pipe":                             "pipe",
		"@":                                "@",
		"[fe80::1%25en0]:1":                "fe80::/64",
		"not an address:80":                "not an address",
		"127.0.0.1:80":                     "127.0.0.1",
		"[::1]:80":                         "::/64",
		"[2001:db8::1]:80":                 "2001:db8::/64",
		"[2001:db8:0:0:ffff:ffff:ffff:ff]": "[2001:db8:0:0:ffff:ffff:ffff:ff]",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}
