package simulate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseSpread(t *testing.T) {
	for in, want := range map[string]Spread{
		"30s":        {30 * time.Second, 0},
		"30s±20s":    {30 * time.Second, 20 * time.Second},
		"3m+-2m":     {3 * time.Minute, 2 * time.Minute},
		" 1s ± 1s ":  {time.Second, time.Second},
		"":           {},
		"250ms±50ms": {250 * time.Millisecond, 50 * time.Millisecond},
	} {
		got, err := ParseSpread(in)
		if err != nil || got != want {
			t.Errorf("ParseSpread(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"30":      "want a duration",
		"30s±":    "after ±",
		"30s±x":   "after ±",
		"-5s":     "negative",
		"10s±20s": "below zero",
	} {
		if _, err := ParseSpread(in); err == nil || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), in) {
			t.Errorf("ParseSpread(%q): %v, want an error naming the value and saying %q", in, err, why)
		}
	}
	if s := (Spread{30 * time.Second, 20 * time.Second}).String(); s != "30s±20s" {
		t.Errorf("String %q", s)
	}
}

// TestCallsLastAsReal: with --answer-after and --talk, each call's events
// are due as the call unfolds: queued at once; answered after the queue
// wait (within the spread) or, for the abandoned quarter, released then;
// transferred (a third of answered calls) midway through the talk; released
// after it. occurredAt says the same. Without them, events are due at once.
func TestCallsLastAsReal(t *testing.T) {
	o := Options{Prefix: "t-", Abandon: 0.25, AnswerAfter: Spread{30 * time.Second, 20 * time.Second}, Talk: Spread{3 * time.Minute, 2 * time.Minute}}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	const n = 3000
	var abandoned, answered, transferred, known int
	for i := range n {
		c := o.newCall(rng, "123456", i, start)
		at := map[string]time.Duration{}
		p := c.play
		for j, e := range p.events {
			at[e.kind] = p.at[j]
			if stamp, _ := time.Parse(time.RFC3339Nano, e.body["occurredAt"].(string)); !stamp.Equal(start.Add(p.at[j])) {
				t.Fatalf("call %d %s: occurredAt %s, due %s", i, e.kind, stamp, start.Add(p.at[j]))
			}
			if j > 0 && p.at[j] < p.at[j-1] {
				t.Fatalf("call %d: events out of order without --shuffle", i)
			}
		}
		if at["queued"] != 0 {
			t.Fatalf("call %d queued at %s", i, at["queued"])
		}
		wait := at["answered"]
		if c.abandoned {
			abandoned++
			wait = at["released"]
			if _, ok := at["answered"]; ok || c.agent >= 0 {
				t.Fatalf("abandoned call %d was answered", i)
			}
		} else {
			answered++
			talk := at["released"] - wait
			if talk < time.Minute || talk > 5*time.Minute {
				t.Fatalf("call %d talked %s, want 3m±2m", i, talk)
			}
			if tr, ok := at["transferred"]; ok {
				transferred++
				if tr != wait+talk/2 {
					t.Fatalf("call %d transferred at %s, want midway (%s)", i, tr, wait+talk/2)
				}
			}
		}
		if wait < 10*time.Second || wait > 50*time.Second {
			t.Fatalf("call %d waited %s, want 30s±20s", i, wait)
		}
		if c.known >= 0 {
			known++
		}
	}
	if abandoned < n/5 || abandoned > n*3/10 || transferred < answered/4 || transferred > answered*4/10 || known != n/10 {
		t.Errorf("%d abandoned, %d of %d answered transferred, %d known callers", abandoned, transferred, answered, known)
	}
	p := Options{Prefix: "t-"}.newCall(rng, "123456", 0, start).play
	for j := range p.events {
		if p.at[j] != 0 {
			t.Errorf("without --answer-after and --talk, %s is due after %s", p.events[j].kind, p.at[j])
		}
	}
}

// TestAbandonRate: --abandon sets the share of calls hung up before an
// agent answers; with 0 every call is answered (calls in flight for a soak).
func TestAbandonRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, rate := range []float64{0, 0.5, 1} {
		o := Options{Prefix: "t-", Abandon: rate, AnswerAfter: Spread{Mid: time.Second}, Talk: Spread{Mid: time.Hour}}
		abandoned := 0
		for i := range 2000 {
			if o.newCall(rng, "123456", i, start).abandoned {
				abandoned++
			}
		}
		if got := float64(abandoned) / 2000; math.Abs(got-rate) > 0.05 {
			t.Errorf("--abandon %g: %.2f of calls abandoned", rate, got)
		}
	}
}
