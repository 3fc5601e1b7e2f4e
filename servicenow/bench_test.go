package servicenow_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// BenchmarkClientGet measures a Get through the client (budget, retries
// armed, decoding) against the simulator at zero latency;
// BenchmarkRawGet is the same request with net/http alone. The difference is
// the client's overhead per call.
func BenchmarkClientGet(b *testing.B) {
	e := newEnv(b, snowsim.Options{}, basic, func(c *servicenow.Config) { c.Observe = nil; c.Logger = nil; c.MaxConcurrent = 1 })
	id := e.sim.Records("sys_user")[0]["sys_id"]
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.c.Get(ctx, "sys_user", id); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawGet(b *testing.B) {
	e := newEnv(b, snowsim.Options{}, basic)
	id := e.sim.Records("sys_user")[0]["sys_id"]
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/now/table/sys_user/"+id, nil)
		req.SetBasicAuth("cti_integration", userPass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
