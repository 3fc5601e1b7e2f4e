package snowsim

import (
	"fmt"
	"net/http"
)

// Capacity (Options.Capacity): an instance runs inbound API transactions on
// a fixed pool of semaphores per node (API_INT), queues a bounded number
// more, and answers 429 Too Many Requests once the queue is full as well.
// The simulator copies that with one pool: Capacity requests in service,
// Capacity more queued. The pool's size and queue depth of a real node are
// the instance's configuration; the refusal's wording is not documented,
// so it follows the documented rate-limit refusal.

// admit waits for a slot for a Table API or Batch API request and returns
// the function that frees it. It answers the request itself and returns
// false when the queue is full (429) or the client gave up waiting. count
// records a refused request in the statistics.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, count func()) (func(), bool) {
	if s.slots == nil {
		s.enter()
		return s.leave, true
	}
	select {
	case s.slots <- struct{}{}:
		s.enter()
		return s.release, true
	default:
	}
	s.mu.Lock()
	if s.waiting >= cap(s.slots) {
		s.stats.Rejected++
		s.mu.Unlock()
		count()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "Rate limit exceeded", fmt.Sprintf(
			"Maximum of %d concurrent transactions for Table API exceeded, and %d more waiting", cap(s.slots), cap(s.slots)))
		return nil, false
	}
	s.waiting++
	s.mu.Unlock()
	select {
	case s.slots <- struct{}{}:
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		s.enter()
		return s.release, true
	case <-r.Context().Done():
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		return nil, false // the client is gone: nobody reads a reply
	}
}

func (s *Server) enter() {
	n := s.serving.Add(1)
	for {
		peak := s.peak.Load()
		if n <= peak || s.peak.CompareAndSwap(peak, n) {
			return
		}
	}
}

func (s *Server) leave() { s.serving.Add(-1) }

func (s *Server) release() {
	s.leave()
	<-s.slots
}
