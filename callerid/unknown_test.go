package callerid_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// inMemory hands requests to the simulator in the same process, so a test
// in a synctest bubble can let minutes pass at once.
type inMemory struct{ h http.Handler }

func (t inMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestUnknownCallerIsRemembered: a number no source matches costs one
// lookup in each source, then none for a minute (callers.unknownTTL); after
// that it is looked up again, so a caller added to ServiceNow meanwhile is
// found. A known caller is kept for the whole cacheTTL.
func TestUnknownCallerIsRemembered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := snowsim.New(snowsim.Options{})
		client := func(user string) *servicenow.Client {
			c, err := servicenow.New(servicenow.Config{Instance: "https://acme.service-now.com", RequestsPerHour: -1,
				HTTPClient: &http.Client{Transport: inMemory{sim}},
				Auth:       servicenow.Auth{Method: servicenow.AuthBasic, Username: user, Password: secret.Secret(user)}})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		f := callerid.NewFinder(client("cti_integration"), callerid.FinderOptions{})
		ctx := context.Background()
		find := func(ani string) (name string, requests int64) {
			t.Helper()
			before := sim.Stats().Total
			c, err := f.FindCaller(ctx, ani)
			if err != nil {
				t.Fatalf("FindCaller(%s): %v", ani, err)
			}
			return c.Name, sim.Stats().Total - before
		}
		const unknown, known = "+1 312 555 0199", "8013203420"

		if name, n := find(unknown); name != "" || n != 3 {
			t.Fatalf("unknown caller: %q after %d requests, want no one after one lookup in each of the 3 sources", name, n)
		}
		if _, n := find(known); n == 0 {
			t.Fatal("known caller: no request on the first lookup")
		}
		hits, _ := f.Stats()
		if name, n := find(unknown); name != "" || n != 0 {
			t.Errorf("the same unknown caller again: %q after %d requests, want none", name, n)
		}
		if h, _ := f.Stats(); h != hits+1 {
			t.Errorf("cache hits %d, want %d: the repeat is a hit", h, hits+1)
		}

		// The caller is added to ServiceNow; within the minute the number
		// is still remembered as unknown, after it the caller is found.
		if _, err := client("admin").Insert(ctx, "sys_user", map[string]string{"name": "New Caller", "phone": "(312) 555-0199"},
			servicenow.InsertOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(59 * time.Second)
		if name, n := find(unknown); name != "" || n != 0 {
			t.Errorf("after 59 s: %q after %d requests, want still unknown and no request", name, n)
		}
		time.Sleep(2 * time.Second)
		if name, n := find(unknown); name != "New Caller" || n == 0 {
			t.Errorf("after 61 s: %q after %d requests, want New Caller, looked up again", name, n)
		}
		if _, n := find(known); n != 0 {
			t.Errorf("known caller after 61 s: %d requests, want none within the 5 min cacheTTL", n)
		}
	})
}

// TestUnknownCallerNotRememberedWhenOff: a negative UnknownTTL looks every
// unknown number up again.
func TestUnknownCallerNotRememberedWhenOff(t *testing.T) {
	f := newFixture(t, nil, "", callerid.FinderOptions{UnknownTTL: -1})
	for range 2 {
		before := f.requests("")
		if c := f.find(t, "+1 312 555 0199"); c.Name != "" || f.requests("")-before != 3 {
			t.Errorf("unknown caller with unknownTTL off: %q after %d requests, want a lookup in each of the 3 sources", c.Name, f.requests("")-before)
		}
	}
}
