package lifecycle

import (
	"testing"

	"github.com/ctibridge/ctibridge"
)

// TestWithheldNumbersStayOutOfTheE164Field: caller_phone_number is an E.164
// field on real instances; a withheld or unparseable ANI is not written
// there but kept in the description, as received.
func TestWithheldNumbersStayOutOfTheE164Field(t *testing.T) {
	t.Parallel()
	r := &Reconciler{}
	r.cfg.defaults()
	for _, tt := range []struct{ ani, identified, field, desc string }{
		{"Anonymous", "", "", "Phone call from Anonymous"},
		{"", "", "", "Phone call from a withheld number"},
		{"sip:12@pbx", "", "", "Phone call from sip:12@pbx"},
		{"8013203420", "+18013203420", "+18013203420", "Phone call from +18013203420"},
		{"+442079460958", "", "+442079460958", "Phone call from +442079460958"},
	} {
		var s synced
		if tt.identified != "" {
			s.Caller = &ctibridge.Caller{Number: tt.identified}
		}
		d := r.want(ctibridge.Call{Queued: &ctibridge.Event{Kind: ctibridge.Queued, ANI: tt.ani}}, s)
		if got := d.fields["caller_phone_number"]; got != tt.field {
			t.Errorf("ANI %q: caller_phone_number %q, want %q", tt.ani, got, tt.field)
		}
		if got := d.fields["short_description"]; got != tt.desc {
			t.Errorf("ANI %q: short_description %q, want %q", tt.ani, got, tt.desc)
		}
	}
}
