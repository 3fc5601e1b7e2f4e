package snowsim_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ctibridge/ctibridge/snowsim"
)

// TestFaultControlUnderLoad drives the fault controls (over HTTP and from Go)
// while Table API requests consume scripted failures: exactly the scripted
// number of requests fail, a change to one fault keeps the others, and the
// race detector sees every read and write of the faults under the lock.
func TestFaultControlUnderLoad(t *testing.T) {
	s := start(t, snowsim.Options{})
	const scripted, clients, each = 25, 6, 15
	if r := s.do("PUT", "/sim/faults", admin, fmt.Sprintf(`{"failNext":{"count":%d,"status":503,"table":"sys_user"}}`, scripted)); r.status != 204 {
		t.Fatalf("PUT failNext: %d %s", r.status, r.raw)
	}
	var failed, ok atomic.Int64
	var load, control sync.WaitGroup
	done := make(chan struct{})
	for range clients {
		load.Go(func() {
			for range each {
				req, _ := http.NewRequest("GET", s.url+"/api/now/table/sys_user?sysparm_limit=1", nil)
				req.SetBasicAuth("cti_integration", "cti_integration")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusServiceUnavailable:
					failed.Add(1)
				case http.StatusOK:
					ok.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	// Meanwhile: read the faults over HTTP and from Go, and change other
	// faults, as a test or the demo's control panel would.
	control.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			r := s.do("GET", "/sim/faults", admin, nil)
			if fn, _ := r.body["failNext"].(map[string]any); fn != nil {
				if n := fn["count"].(float64); n < 0 || n > scripted {
					t.Errorf("failNext count %v out of range", n)
				}
			}
			if fn := s.s.Faults().FailNext; fn != nil && (fn.Count < 0 || fn.Count > scripted) {
				t.Errorf("Faults().FailNext.Count = %d", fn.Count)
			}
		}
	})
	control.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			if r := s.do("PUT", "/sim/faults", admin, fmt.Sprintf(`{"latency":"0s","jitter":"%dns","down":false}`, i%2)); r.status != 204 {
				t.Errorf("PUT latency: %d %s", r.status, r.raw)
			}
			// A caller's copy is its own: changing it changes nothing.
			f := s.s.Faults()
			if f.FailNext != nil {
				f.FailNext.Count = 1000
			}
		}
	})
	load.Wait()
	close(done)
	control.Wait()
	if failed.Load() != scripted || ok.Load() != clients*each-scripted {
		t.Errorf("%d requests failed and %d succeeded, want exactly %d scripted failures of %d", failed.Load(), ok.Load(), scripted, clients*each)
	}
	if fn := s.s.Faults().FailNext; fn != nil && fn.Count != 0 {
		t.Errorf("scripted failures left after all were used: %+v", *fn)
	}
}
