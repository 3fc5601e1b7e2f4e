package snowsim_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ctibridge/ctibridge/snowsim"
)

// The simulator must never be the bottleneck of a bridge benchmark. These
// measure its raw request rate over real HTTP (loopback, keep-alive), with
// the default dataset and with 100,000 generated callers.
func benchSim(b *testing.B, data *snowsim.Dataset, method, path, body string) {
	s := snowsim.New(snowsim.Options{Data: data})
	ts := httptest.NewServer(s)
	defer ts.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			req, _ := http.NewRequest(method, ts.URL+path, rd)
			req.SetBasicAuth("cti_integration", "cti_integration")
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

func BenchmarkSimCreateInteraction(b *testing.B) {
	benchSim(b, nil, "POST", "/api/now/table/interaction", `{"type":"phone","state":"new","short_description":"bench"}`)
}

func BenchmarkSimCallerLookup(b *testing.B) {
	q := "/api/now/table/sys_user?sysparm_query=active=true%5EphoneIN8013203420,(801)%20320-3420,%2B18013203420%5EORmobile_phoneIN8013203420&sysparm_fields=sys_id,name"
	b.Run("default", func(b *testing.B) { benchSim(b, nil, "GET", q, "") })
	b.Run("100k", func(b *testing.B) { benchSim(b, snowsim.GenerateDataset(100000, 1), "GET", q, "") })
}
