package bridge_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/internal/pgtest"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/snowsim"
)

// TestTwoBridgesShareOnePostgres: two bridges on one PostgreSQL database,
// Studio's events for each call spread over both (as a load balancer
// would), end with exactly one correct interaction per call.
func TestTwoBridgesShareOnePostgres(t *testing.T) {
	dsn := pgtest.Schema(t, "the shared-PostgreSQL test", "bridge")
	e := setup(t, func(c *config.Config) { c.Database = dsn })
	e.sim.SetFaults(snowsim.Faults{Latency: 10 * time.Millisecond})
	// A second bridge on the same database and instance.
	cfg2 := *e.cfg
	_, url2 := bridgetest.Serve(t, &cfg2)
	urls := []string{e.url, url2}

	const calls = 60
	for i := range calls {
		id := fmt.Sprint(80000 + i)
		for j, kind := range []string{"queued", "answered", "transferred", "released"} {
			body := `{"ani":"+1 312 555 01` + fmt.Sprintf("%02d", i) + `","agentUserName":"` + []string{"", "jdoe", "asmith", ""}[j] + `"}`
			req, _ := http.NewRequest("POST", urls[(i+j)%2]+"/v1/contacts/"+id+"/"+kind, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+apiKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s via bridge %d: %d", id, kind, (i+j)%2, resp.StatusCode)
			}
		}
	}
	ids := make([]string, calls)
	for i := range ids {
		ids[i] = fmt.Sprint(80000 + i)
	}
	e.waitSynced(time.Minute, ids...)
	if n := len(e.sim.Records("interaction")); n != calls {
		t.Fatalf("%d interactions, want %d", n, calls)
	}
	asmith := e.userID("asmith")
	for _, id := range ids {
		rec := e.interaction(ctibridge.SysID("ctibridge", id))
		if rec["state"] != "closed_complete" || rec["assigned_to"] != asmith {
			t.Errorf("call %s: state %s assigned_to %s", id, rec["state"], rec["assigned_to"])
		}
	}
}
