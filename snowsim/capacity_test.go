package snowsim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// served is one request's reply and how long it took on the bubble's clock.
type served struct {
	code  int
	took  time.Duration
	retry string
	body  string
}

// serveAt sends a Table API read to s from a new goroutine and delivers the
// reply on out.
func serveAt(ctx context.Context, s *snowsim.Server, out chan<- served) {
	go func() {
		start := time.Now()
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/now/table/sys_user?sysparm_limit=1", nil)
		req.SetBasicAuth("cti_integration", "cti_integration")
		s.ServeHTTP(rec, req)
		out <- served{rec.Code, time.Since(start), rec.Header().Get("Retry-After"), rec.Body.String()}
	}()
}

// TestCapacity: with a capacity of 2, five requests at once (each taking
// one second) are served two at a time, two wait their turn (and take two
// seconds), and the fifth is refused at once with 429 and Retry-After,
// worded as the simulator's other 429s; /sim/stats shows the peak and the
// refusal. Without a capacity all five are served at once.
func TestCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := snowsim.New(snowsim.Options{Capacity: 2, Faults: snowsim.Faults{Latency: time.Second}})
		out := make(chan served, 5)
		for range 5 {
			serveAt(t.Context(), s, out)
		}
		synctest.Wait() // two in service, two queued, one refused
		refused := <-out
		if refused.code != http.StatusTooManyRequests || refused.took != 0 || refused.retry != "1" {
			t.Fatalf("over capacity: %d after %s, Retry-After %q: %s", refused.code, refused.took, refused.retry, refused.body)
		}
		var env struct {
			Error  struct{ Message, Detail string }
			Status string
		}
		json.Unmarshal([]byte(refused.body), &env)
		if env.Status != "failure" || env.Error.Message != "Rate limit exceeded" || !strings.Contains(env.Error.Detail, "concurrent") {
			t.Errorf("refusal body %s", refused.body)
		}
		if len(out) != 0 {
			t.Fatalf("%d more replies before any latency passed", len(out))
		}
		var took []time.Duration
		for range 4 {
			r := <-out
			if r.code != 200 {
				t.Errorf("queued request: %d %s", r.code, r.body)
			}
			took = append(took, r.took)
		}
		slices.Sort(took)
		if want := []time.Duration{time.Second, time.Second, 2 * time.Second, 2 * time.Second}; !slices.Equal(took, want) {
			t.Errorf("latencies %v, want %v (the wait counts)", took, want)
		}
		st := s.Stats()
		if st.PeakConcurrent != 2 || st.Rejected != 1 || st.Total != 5 {
			t.Errorf("stats: peak %d, rejected %d, total %d; want 2, 1, 5", st.PeakConcurrent, st.Rejected, st.Total)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s := snowsim.New(snowsim.Options{Faults: snowsim.Faults{Latency: time.Second}})
		out := make(chan served, 5)
		for range 5 {
			serveAt(t.Context(), s, out)
		}
		for range 5 {
			if r := <-out; r.code != 200 || r.took != time.Second {
				t.Errorf("without a capacity: %d after %s", r.code, r.took)
			}
		}
		if st := s.Stats(); st.PeakConcurrent != 5 || st.Rejected != 0 {
			t.Errorf("without a capacity: peak %d, rejected %d; want 5, 0", st.PeakConcurrent, st.Rejected)
		}
	})
}

// TestCapacityQueueFreedByGoneClient: a client that gives up while queued
// leaves the queue, so the next request waits instead of being refused.
func TestCapacityQueueFreedByGoneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := snowsim.New(snowsim.Options{Capacity: 1, Faults: snowsim.Faults{Latency: time.Second}})
		out := make(chan served, 3)
		serveAt(t.Context(), s, out) // in service
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		gone := make(chan served, 1)
		serveAt(ctx, s, gone) // queued
		synctest.Wait()
		cancel()
		synctest.Wait()
		serveAt(t.Context(), s, out) // takes the freed place in the queue
		synctest.Wait()
		if len(out) != 0 {
			t.Fatalf("the request after the gone client was answered at once: %+v", <-out)
		}
		for range 2 {
			if r := <-out; r.code != 200 {
				t.Errorf("%d %s", r.code, r.body)
			}
		}
		if st := s.Stats(); st.Rejected != 0 || st.PeakConcurrent != 1 {
			t.Errorf("rejected %d, peak %d; want 0, 1", st.Rejected, st.PeakConcurrent)
		}
	})
}

// TestCapacityFlagAndStats: `snowsim --capacity` says so in its banner,
// refuses a negative capacity, and /sim/stats carries the new counters.
func TestCapacityFlagAndStats(t *testing.T) {
	base, banner := serve(t, "--capacity", "3")
	if !strings.Contains(banner, "capacity 3 requests at once, 3 queued") {
		t.Errorf("banner %q", banner)
	}
	s := &sim{t: t, url: base}
	s.do("GET", "/api/now/table/sys_user?sysparm_limit=1", cti, nil)
	st := s.do("GET", "/sim/stats", admin, nil)
	if st.body["peakConcurrent"] != float64(1) || st.body["rejected"] != float64(0) {
		t.Errorf("stats %s", st.raw)
	}
	err := snowsim.Main(t.Context(), []string{"--addr", "127.0.0.1:0", "--capacity", "-1"}, new(strings.Builder), new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), "--capacity") {
		t.Errorf("--capacity -1: %v", err)
	}
}
