package callerid_test

import (
	"slices"
	"testing"

	"github.com/ctibridge/ctibridge/callerid"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		ani, region, e164, ext string
	}{
		// United States, every shape a trunk or a person produces.
		{"8013203420", "US", "+18013203420", ""},
		{"18013203420", "US", "+18013203420", ""},
		{"+18013203420", "US", "+18013203420", ""},
		{"+1 801 320 3420", "US", "+18013203420", ""},
		{"(801) 320-3420", "US", "+18013203420", ""},
		{"801.320.3420", "US", "+18013203420", ""},
		{"801-320-3420", "US", "+18013203420", ""},
		{"1-801-320-3420", "US", "+18013203420", ""},
		{" 801 320 3420 ", "US", "+18013203420", ""},
		{"tel:+1-801-320-3420", "US", "+18013203420", ""},
		{"sip:+18013203420@cxone.example;user=phone", "US", "+18013203420", ""},
		{"801-320-3420 x123", "US", "+18013203420", "123"},
		{"+1 801 320 3420 ext. 77", "US", "+18013203420", "77"},
		// Canada shares +1.
		{"416-555-0123", "US", "+14165550123", ""},
		{"+1 (416) 555-0123", "CA", "+14165550123", ""},
		// United Kingdom.
		{"011 44 20 7946 0958", "US", "+442079460958", ""},
		{"+44 20 7946 0958", "US", "+442079460958", ""},
		{"+44 (0)20 7946 0958", "US", "+442079460958", ""},
		{"0044 20 7946 0958", "GB", "+442079460958", ""},
		{"020 7946 0958", "GB", "+442079460958", ""},
		{"07700 900123", "GB", "+447700900123", ""},
		// Germany.
		{"+49 30 901820", "US", "+4930901820", ""},
		{"030 901820", "DE", "+4930901820", ""},
		{"0049 89 12345678", "DE", "+498912345678", ""},
		// India.
		{"+91 98765 43210", "US", "+919876543210", ""},
		{"098765 43210", "IN", "+919876543210", ""},
		// Australia.
		{"+61 2 9374 4000", "US", "+61293744000", ""},
		{"(02) 9374 4000", "AU", "+61293744000", ""},
		{"0011 61 2 9374 4000", "AU", "+61293744000", ""},
		// Brazil.
		{"+55 11 91234 5678", "US", "+5511912345678", ""},
		{"(11) 91234-5678", "BR", "+5511912345678", ""},
	} {
		n := callerid.Parse(tc.ani, tc.region)
		if n.Withheld || n.E164 != tc.e164 || n.Ext != tc.ext {
			t.Errorf("Parse(%q, %s) = %+v, want %s ext %q", tc.ani, tc.region, n, tc.e164, tc.ext)
		}
	}
}

func TestParseWithheld(t *testing.T) {
	for _, ani := range []string{"", "  ", "anonymous", "Anonymous", "RESTRICTED", "private", "unknown", "unavailable",
		"0", "12", "1234", "abc", "++++", "sip:anonymous@host", "99999999999999999999999", "not a number at all 1"} {
		n := callerid.Parse(ani, "US")
		if !n.Withheld || n.E164 != "" || n.Reason == "" {
			t.Errorf("Parse(%q) = %+v, want withheld with a reason", ani, n)
		}
	}
}

func TestSpellings(t *testing.T) {
	us := callerid.Spellings(callerid.Parse("8013203420", "US"))
	for _, want := range []string{"(801) 320-3420", "801-320-3420", "801.320.3420", "+1 801 320 3420", "18013203420",
		"8013203420", "+18013203420", "+1 (801) 320-3420", "1-801-320-3420", "011 18013203420"[0:0] + "01118013203420"} {
		if !slices.Contains(us, want) {
			t.Errorf("US spellings lack %q: %q", want, us)
		}
	}
	uk := callerid.Spellings(callerid.Parse("+442079460958", "US"))
	for _, want := range []string{"+44 20 7946 0958", "+442079460958", "442079460958", "00442079460958", "020 7946 0958",
		"02079460958", "+44 (0)20 7946 0958", "+44-20-7946-0958"} {
		if !slices.Contains(uk, want) {
			t.Errorf("UK spellings lack %q: %q", want, uk)
		}
	}
	// Each spelling must parse back to the same number (in the number's own
	// region): a spelling that could be someone else's number is a bug.
	for _, n := range []callerid.Number{callerid.Parse("8013203420", "US"), callerid.Parse("+442079460958", "US"),
		callerid.Parse("+4930901820", "US"), callerid.Parse("+5511912345678", "US"), callerid.Parse("+61293744000", "US")} {
		for _, s := range callerid.Spellings(n) {
			if !callerid.Same(s, n, "US") {
				t.Errorf("spelling %q of %s does not read back as it", s, n.E164)
			}
		}
	}
	if callerid.Spellings(callerid.Parse("anonymous", "US")) != nil {
		t.Error("a withheld number has spellings")
	}
}
