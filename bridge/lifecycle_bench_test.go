package bridge_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/simulate"
	"github.com/ctibridge/ctibridge/snowsim"
)

// BenchmarkCallLifecycle plays whole calls (queued, answered, released,
// sent back to back, 64 requests in flight) through a bridge on SQLite and
// waits until each is in ServiceNow. The simulator runs in the same process,
// so allocs/op and cpu_ms/call count its share too: they compare the
// bridge's code before and after a change, they do not measure it alone
// (.ci/bench lifecycles does). One op is one call.
func BenchmarkCallLifecycle(b *testing.B) {
	_, url := bridgetest.Simulator(b, snowsim.Options{})
	_, base := bridgetest.Serve(b, bridgetest.Config(b, url, map[string]string{"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1", "CTIBRIDGE_RATE_PER_KEY": "-1"}))
	run := 0
	play := func(calls int) {
		run++
		res, err := simulate.Run(context.Background(), simulate.Options{Bridge: base, Key: bridgetest.Key, Calls: calls,
			Concurrency: 64, Wait: 5 * time.Minute, Prefix: fmt.Sprintf("bench%d-", run), Seed: uint64(run)})
		if err != nil || res.Synced != calls {
			b.Fatalf("%d of %d calls synced: %v", res.Synced, calls, err)
		}
	}
	play(200) // warm up: connections, caches, prepared statements
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	b.ReportAllocs()
	play(b.N)
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu_ms/call")
}
