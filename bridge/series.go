package bridge

import (
	"sync"
	"time"
)

// series keeps per-minute counts for the console chart: calls accepted,
// ServiceNow requests, their total latency and errors, over a ring of minutes.
type series struct {
	mu     sync.Mutex
	points []point
}

type point struct {
	minute   int64 // unix minute
	calls    int
	requests int
	errors   int
	latency  time.Duration
}

func newSeries(minutes int) *series { return &series{points: make([]point, minutes)} }

func (s *series) add(t time.Time, f func(*point)) {
	m := t.Unix() / 60
	s.mu.Lock()
	p := &s.points[m%int64(len(s.points))]
	if p.minute != m {
		*p = point{minute: m}
	}
	f(p)
	s.mu.Unlock()
}

// last returns the points of the last n minutes up to now, oldest first; minutes
// without activity are zero.
func (s *series) last(now time.Time, n int) []point {
	m := now.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.points))
	out := make([]point, n)
	for i := range n {
		want := m - int64(n-1-i)
		p := s.points[want%int64(len(s.points))]
		if p.minute != want {
			p = point{minute: want}
		}
		out[i] = p
	}
	return out
}
