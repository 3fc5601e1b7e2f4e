package simulate

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// Spread is a duration drawn uniformly from [Mid-Plus, Mid+Plus]: "30s±20s"
// (or "30s+-20s"); a plain duration ("30s") is fixed. It is a flag.Value.
type Spread struct {
	Mid, Plus time.Duration
}

// ParseSpread reads "D", "D±S" or "D+-S".
func ParseSpread(s string) (Spread, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Spread{}, nil
	}
	mid, plus, spread := strings.Cut(s, "±")
	if !spread {
		mid, plus, spread = strings.Cut(s, "+-")
	}
	var d Spread
	var err error
	if d.Mid, err = time.ParseDuration(strings.TrimSpace(mid)); err != nil {
		return Spread{}, fmt.Errorf("%q: want a duration like 30s, or 30s±20s for one drawn from 10s to 50s", s)
	}
	if spread {
		if d.Plus, err = time.ParseDuration(strings.TrimSpace(plus)); err != nil {
			return Spread{}, fmt.Errorf("%q: the part after ± must be a duration, like 20s", s)
		}
	}
	switch {
	case d.Mid < 0 || d.Plus < 0:
		return Spread{}, fmt.Errorf("%q: durations must not be negative", s)
	case d.Plus > d.Mid:
		return Spread{}, fmt.Errorf("%q: the spread would go below zero; at most %s±%s", s, d.Mid, d.Mid)
	}
	return d, nil
}

func (d Spread) String() string {
	if d.Plus == 0 {
		return d.Mid.String()
	}
	return d.Mid.String() + "±" + d.Plus.String()
}

// Set implements flag.Value.
func (d *Spread) Set(s string) error {
	v, err := ParseSpread(s)
	if err == nil {
		*d = v
	}
	return err
}

func (d Spread) draw(rng *rand.Rand) time.Duration {
	if d.Plus == 0 {
		return d.Mid
	}
	return d.Mid - d.Plus + time.Duration(rng.Int64N(int64(2*d.Plus)+1))
}

// agents are the simulator's built-in agents (CXone user name = ServiceNow
// user_name).
var agents = []string{"jdoe", "asmith", "bwayne", "ckent", "dprince"}

// knownCallers are mixed into the generated calls (every tenth), so that
// identification is exercised and, with --verify, checked.
var knownCallers = snowsim.KnownCallers()

type event struct {
	id, kind string
	body     map[string]any
}

// call is one generated call: what --verify needs to know about it (kept
// small: a day's run holds a million), and, while it is played, its events.
type call struct {
	n         int
	ani       string
	known     int8    // index in knownCallers, -1 for a generated number
	agent     int8    // index in agents of the agent who had it last, -1 if none
	abandoned bool    // released before an agent answered
	play      *flight // nil once every event is sent
}

// flight is a call's events while it is played.
type flight struct {
	start  time.Time       // when its first event was due
	events []event         // in the order they are sent
	at     []time.Duration // when each is due, after start
	next   int             // the next event to send
}

// e164 is the caller's number as ServiceNow should hold it.
func (c *call) e164() string {
	if c.known >= 0 {
		return knownCallers[c.known].E164
	}
	return "+1" + c.ani
}

func (c *call) agentName() string {
	if c.agent < 0 {
		return ""
	}
	return agents[c.agent]
}

// runTag makes the run's CXone contact ids distinct from other runs': six
// digits derived from the prefix.
func runTag(prefix string) string {
	h := fnv.New32a()
	h.Write([]byte(prefix))
	return fmt.Sprint(100000 + h.Sum32()%900000)
}

func (o Options) masterID(n int) string { return fmt.Sprintf("%s%06d", o.Prefix, n) }

func contactID(tag string, n int) string { return fmt.Sprintf("%s%07d", tag, n) }

// timed reports whether calls last (--answer-after, --talk) rather than
// sending their events back to back.
func (o Options) timed() bool { return o.AnswerAfter.Mid > 0 || o.Talk.Mid > 0 }

// newCall makes call n, starting at start: some (o.Abandon) abandoned
// after their wait, the rest answered after it, a third of those transferred midway
// through the talk, and released after the talk. Without --answer-after
// and --talk the events are due at once, stamped 20 s, 60 s and 120 s
// apart as before.
func (o Options) newCall(rng *rand.Rand, tag string, n int, start time.Time) *call {
	c := &call{n: n, known: -1, agent: -1, play: &flight{start: start}}
	if n%10 == 7 {
		c.known = int8((n / 10) % len(knownCallers))
		c.ani = knownCallers[c.known].ANI
	} else {
		c.ani = fmt.Sprintf("801555%04d", rng.IntN(10000))
	}
	wait, talk := o.AnswerAfter.draw(rng), o.Talk.draw(rng)
	answered, transferred, released := wait, wait+talk/2, wait+talk
	stamped := start
	if !o.timed() {
		answered, transferred, released = 20*time.Second, 60*time.Second, 120*time.Second
		stamped = start.Add(time.Duration(n) * time.Second)
	}
	id := o.masterID(n)
	stamp := func(d time.Duration) string { return stamped.Add(d).UTC().Format(time.RFC3339Nano) }
	type timedEvent struct {
		event
		at time.Duration
	}
	evs := []timedEvent{{event{id, "queued", map[string]any{"contactId": contactID(tag, n), "ani": c.ani,
		"dnis": "8005550100", "skill": "42", "skillName": "Support", "occurredAt": stamp(0)}}, 0}}
	c.abandoned = rng.Float64() < o.Abandon
	if c.abandoned {
		released = wait
		if !o.timed() {
			released = 120 * time.Second
		}
	} else {
		c.agent = int8(rng.IntN(len(agents)))
		evs = append(evs, timedEvent{event{id, "answered", map[string]any{"agentUserName": c.agentName(), "agentId": "1", "occurredAt": stamp(answered)}}, answered})
		if rng.Float64() < 0.33 {
			c.agent = int8(rng.IntN(len(agents)))
			evs = append(evs, timedEvent{event{id, "transferred", map[string]any{"agentUserName": c.agentName(), "agentId": "2", "occurredAt": stamp(transferred)}}, transferred})
		}
	}
	evs = append(evs, timedEvent{event{id, "released", map[string]any{"reason": "hang up", "occurredAt": stamp(released)}}, released})
	// The moments stay; with --shuffle the events sent at them do not.
	at := make([]time.Duration, len(evs))
	for i, e := range evs {
		if o.timed() {
			at[i] = e.at
		}
	}
	if o.Shuffle {
		rng.Shuffle(len(evs), func(a, b int) { evs[a], evs[b] = evs[b], evs[a] })
	}
	p := c.play
	for i, e := range evs {
		p.events = append(p.events, e.event)
		p.at = append(p.at, at[i])
		if rng.Float64() < o.DupRate { // Studio's retry, right after
			p.events = append(p.events, e.event)
			p.at = append(p.at, at[i])
		}
	}
	return c
}
