// Package loginlimit throttles password guessing on the operator console and
// the admin API.
//
// Failed attempts are counted in token buckets (golang.org/x/time/rate): one
// per client address and one for all clients together. Every attempt takes a
// token before the password is checked and gives it back if the password was
// right, so parallel guesses cannot overtake the count. While a bucket is
// empty, attempts are refused without checking the password, with the time
// until the next token as the wait.
//
// Defaults, and why:
//
//   - Per address: 5 failures at once, then one more every 30 s (at most
//     2,880 a day per address). An operator who mistypes a few times is not
//     slowed down; a guesser from one address gets two guesses a minute. A
//     correct password empties the address's record.
//   - Overall: 30 failures at once, then one a second. One address can never
//     trip it (5 at once, 2 a minute); it takes 6 addresses using their
//     whole allowance to empty it and 30 guessing as fast as they may to
//     keep it empty. While it is empty an attempt gets through every second,
//     and it is full again 30 s after an attack stops, so operators wait
//     seconds, not minutes. Addresses that logged in
//     successfully in the last 24 hours are not held back by it (their own
//     limit still applies), so operators at their usual desk are not locked
//     out while an attack from elsewhere goes on.
//
// IPv6 clients are counted by their /64 network, which one host usually
// owns whole. Behind a reverse proxy every client shares the proxy's address
// and the per-address limit applies to all of them together.
//
// Memory is bounded: an address whose bucket is full again carries no state
// and is dropped; only addresses that failed in the last few minutes are kept,
// and their number is bounded by the overall limit.
package loginlimit

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Options tune a Limiter; zero values take the defaults.
type Options struct {
	AddressBurst int           // failures an address may make at once (5)
	AddressEvery time.Duration // then one more per this interval (30s)
	OverallBurst int           // failures all addresses together may make at once (30)
	OverallEvery time.Duration // then one more per this interval (1s)
	// TrustFor is how long a successful login exempts its address from the
	// overall limit (24h).
	TrustFor time.Duration
	// MaxAddresses bounds the addresses tracked (10,000). When that many
	// have failed recently, new addresses are refused as if the overall
	// limit had tripped.
	MaxAddresses int
	Now          func() time.Time // clock (time.Now)
}

func (o *Options) defaults() {
	if o.AddressBurst <= 0 {
		o.AddressBurst = 5
	}
	if o.AddressEvery <= 0 {
		o.AddressEvery = 30 * time.Second
	}
	if o.OverallBurst <= 0 {
		o.OverallBurst = 30
	}
	if o.OverallEvery <= 0 {
		o.OverallEvery = time.Second
	}
	if o.TrustFor <= 0 {
		o.TrustFor = 24 * time.Hour
	}
	if o.MaxAddresses <= 0 {
		o.MaxAddresses = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Scope says which limit refused an attempt.
type Scope string

const (
	ScopeAddress Scope = "address" // this client address failed too often
	ScopeOverall Scope = "overall" // all clients together failed too often
)

// Result is the outcome of Try.
type Result struct {
	OK bool // the check ran and said yes
	// Refused is set when the check did not run; Wait is then how long
	// until an attempt from this address may be let through.
	Refused Scope
	Wait    time.Duration
	// FirstRefusal is true for the first refusal after attempts were let
	// through (per address, or overall): worth one log line, not one per
	// refused request.
	FirstRefusal bool
}

// Limiter throttles failed attempts. It is safe for concurrent use.
type Limiter struct {
	o Options

	mu        sync.Mutex
	overall   bucket
	addrs     map[string]*bucket
	trusted   map[string]time.Time // address → last successful login
	lastSweep time.Time
}

// bucket is a token bucket plus the attempts let through and not yet done.
type bucket struct {
	lim      *rate.Limiter
	inFlight int
	refusing bool
}

// wait is how long until an attempt can take a token; 0 if one can now.
func (b *bucket) wait(now time.Time, every time.Duration) time.Duration {
	missing := 1 - (b.lim.TokensAt(now) - float64(b.inFlight))
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing * float64(every)))
}

// New makes a Limiter.
func New(o Options) *Limiter {
	o.defaults()
	return &Limiter{o: o, addrs: map[string]*bucket{}, trusted: map[string]time.Time{},
		overall: bucket{lim: rate.NewLimiter(rate.Every(o.OverallEvery), o.OverallBurst)}}
}

// Key is the address a limit applies to: the host of a RemoteAddr
// ("192.0.2.1:5555" → "192.0.2.1"), IPv6 hosts cut to their /64.
func Key(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Try runs check for an attempt from remoteAddr unless a limit refuses it.
// A check that says no counts as a failure against both limits.
func (l *Limiter) Try(remoteAddr string, check func() bool) Result {
	key := Key(remoteAddr)
	l.mu.Lock()
	now := l.o.Now()
	l.sweep(now)
	b := l.addrs[key]
	if b == nil {
		if len(l.addrs) >= l.o.MaxAddresses {
			l.mu.Unlock()
			return Result{Refused: ScopeOverall, Wait: l.o.AddressEvery}
		}
		b = &bucket{lim: l.newAddressLimiter()}
		l.addrs[key] = b
	}
	if d := b.wait(now, l.o.AddressEvery); d > 0 {
		r := Result{Refused: ScopeAddress, Wait: d, FirstRefusal: !b.refusing}
		b.refusing = true
		l.mu.Unlock()
		return r
	}
	t, ok := l.trusted[key]
	trusted := ok && now.Sub(t) <= l.o.TrustFor
	if !trusted {
		if d := l.overall.wait(now, l.o.OverallEvery); d > 0 {
			r := Result{Refused: ScopeOverall, Wait: d, FirstRefusal: !l.overall.refusing}
			l.overall.refusing = true
			l.mu.Unlock()
			return r
		}
		l.overall.refusing = false
		l.overall.inFlight++
	}
	b.refusing = false
	b.inFlight++
	l.mu.Unlock()

	ok = check()

	l.mu.Lock()
	defer l.mu.Unlock()
	now = l.o.Now()
	b.inFlight--
	if !trusted {
		l.overall.inFlight--
	}
	if ok {
		l.trust(key, now)
		b.lim = l.newAddressLimiter() // the address's failures are forgiven
		return Result{OK: true}
	}
	// Tokens were held for the attempts in flight, so these are there.
	b.lim.AllowN(now, 1)
	if !trusted {
		l.overall.lim.AllowN(now, 1)
	}
	return Result{}
}

func (l *Limiter) newAddressLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Every(l.o.AddressEvery), l.o.AddressBurst)
}

// trust remembers a successful login, keeping at most MaxAddresses.
func (l *Limiter) trust(key string, now time.Time) {
	if _, ok := l.trusted[key]; !ok && len(l.trusted) >= l.o.MaxAddresses {
		oldest, at := "", now
		for k, t := range l.trusted {
			if t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(l.trusted, oldest)
	}
	l.trusted[key] = now
}

// sweep drops what carries no state: full buckets nobody is using and
// expired trust. It runs at most once a minute, or when the map is full.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute && len(l.addrs) < l.o.MaxAddresses {
		return
	}
	l.lastSweep = now
	for k, b := range l.addrs {
		if b.inFlight == 0 && b.lim.TokensAt(now) >= float64(l.o.AddressBurst) {
			delete(l.addrs, k)
		}
	}
	for k, t := range l.trusted {
		if now.Sub(t) > l.o.TrustFor {
			delete(l.trusted, k)
		}
	}
}

// Tracked is the number of addresses with state: recent failures or an
// attempt in progress.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs)
}
