package cxone

import (
	"encoding/json"
	"testing"
	"time"
)

// TestDecodeCXoneValues: timestamps with and without a zone, null, and
// counts written as numbers or strings all decode; garbage is an error.
func TestDecodeCXoneValues(t *testing.T) {
	t.Parallel()
	var v struct {
		A, B, C, D Time
		N, M, O    Number
	}
	err := json.Unmarshal([]byte(`{"A":"2026-03-02T09:00:01.250Z","B":"2026-03-02T09:00:01.25","C":null,"D":"",
		"N":12.5,"M":"7","O":null}`), &v)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 2, 9, 0, 1, 250e6, time.UTC)
	if !v.A.Equal(at) || !v.B.Equal(at) || !v.C.IsZero() || !v.D.IsZero() || v.N != 12.5 || v.M != 7 || v.O != 0 {
		t.Errorf("decoded %+v", v)
	}
	if got := FormatTime(at.In(time.FixedZone("X", 3600))); got != "2026-03-02T09:00:01.250Z" {
		t.Errorf("FormatTime: %s", got)
	}
	for _, bad := range []string{`{"A":"yesterday"}`, `{"N":"lots"}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
