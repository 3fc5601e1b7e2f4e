package callerid_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/secret"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/snowsim"
)

// TestBatchedLookupsFindWhatOneByOneFinds: with the Batch API, a caller's
// sources are asked in one round trip, and the caller found (the first
// source that matches, several matches listed, contacts routed, open tasks)
// is the one the source-by-source lookup finds. Without it, the lookup
// still stops at the first source that matches.
func TestBatchedLookupsFindWhatOneByOneFinds(t *testing.T) {
	for _, o := range []callerid.FinderOptions{
		{},
		{Policy: callerid.PolicyLatest},
		{Sources: []callerid.Source{{Table: "sys_user", Fields: []string{"phone", "mobile_phone", "home_phone"}}}},
	} {
		sim := snowsim.New(snowsim.Options{})
		srv := httptest.NewServer(sim)
		defer srv.Close()
		finder := func(noBatch bool) *callerid.Finder {
			sn, err := servicenow.New(servicenow.Config{Instance: srv.URL, RequestsPerHour: -1, NoBatch: noBatch,
				Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "cti_integration", Password: secret.Secret("cti_integration")}})
			if err != nil {
				t.Fatal(err)
			}
			return callerid.NewFinder(sn, o)
		}
		batched, alone := finder(false), finder(true)
		for _, tc := range []struct {
			ani, who string
			// round trips and requests to look the caller up (not the
			// open tasks): batched, then one source at a time.
			trips, requests, aloneRequests int64
		}{
			{"8013203420", "a user", 1, 3, 1},
			{"801-555-0199", "two users sharing a number", 1, 3, 1},
			{"8015550123", "a contact", 1, 3, 2},
			{"801 555 0177", "a consumer", 1, 3, 3},
			{"(801) 555-0166", "a consumer user", 1, 3, 3},
			{"+1 312 555 0199", "no one", 1, 3, 3},
		} {
			ctx := context.Background()
			find := func(f *callerid.Finder) (c any, trips, requests int64) {
				before := sim.Stats()
				caller, err := f.FindCaller(ctx, tc.ani)
				if err != nil {
					t.Fatalf("%s: %v", tc.who, err)
				}
				after := sim.Stats()
				if caller.Related, err = f.OpenTasks(ctx, caller); err != nil {
					t.Fatalf("%s: open tasks: %v", tc.who, err)
				}
				return caller, after.HTTPRequests - before.HTTPRequests, after.Total - before.Total
			}
			got, trips, requests := find(batched)
			want, aloneTrips, aloneRequests := find(alone)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%+v, %s: batched %+v, one by one %+v", o, tc.who, got, want)
			}
			if len(o.Sources) == 1 {
				continue // one source: nothing to batch
			}
			if trips != tc.trips || requests != tc.requests || aloneTrips != tc.aloneRequests || aloneRequests != tc.aloneRequests {
				t.Errorf("%s: %d round trips (%d requests) batched, %d (%d) one by one; want %d (%d) and %d (%d)",
					tc.who, trips, requests, aloneTrips, aloneRequests, tc.trips, tc.requests, tc.aloneRequests, tc.aloneRequests)
			}
		}
	}
}

// TestLookupsWithoutTheBatchAPI: on an instance that refuses the Batch API,
// callers are still found, and after the first refusal a lookup costs what
// it costs one source at a time.
func TestLookupsWithoutTheBatchAPI(t *testing.T) {
	sim := snowsim.New(snowsim.Options{NoBatchAPI: true})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sn, err := servicenow.New(servicenow.Config{Instance: srv.URL, RequestsPerHour: -1,
		Auth: servicenow.Auth{Method: servicenow.AuthBasic, Username: "cti_integration", Password: secret.Secret("cti_integration")}})
	if err != nil {
		t.Fatal(err)
	}
	f := callerid.NewFinder(sn, callerid.FinderOptions{})
	for i, tc := range []struct {
		ani         string
		trips, reqs int64
	}{{"8013203420", 1, 1}, {"8015550123", 2, 2}, {"+1 312 555 0199", 3, 3}} {
		before := sim.Stats()
		c, err := f.FindCaller(context.Background(), tc.ani)
		if err != nil || c.User == "" && c.Contact == "" && i < 2 {
			t.Fatalf("%s: %+v %v", tc.ani, c, err)
		}
		after := sim.Stats()
		if i == 0 {
			tc.trips++ // the batch the instance refused
		}
		if trips, reqs := after.HTTPRequests-before.HTTPRequests, after.Total-before.Total; trips != tc.trips || reqs != tc.reqs {
			t.Errorf("%s: %d round trips, %d requests; want %d, %d", tc.ani, trips, reqs, tc.trips, tc.reqs)
		}
	}
}
