package demo

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ctibridge/ctibridge"
	"github.com/ctibridge/ctibridge/cxonesim"

	"github.com/ctibridge/ctibridge/snowsim"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func queued(ani string) step {
	return step{"queued", map[string]any{"ani": ani, "dnis": "8005550100", "skill": "4101", "skillName": "Support", "direction": "inbound"}}
}

// cxoneAgents are the CXone simulator's agents: the same people as the
// ServiceNow simulator's.
var cxoneAgents = map[string]string{"jdoe": "1001", "asmith": "1002", "bwayne": "1003", "ckent": "1004", "dprince": "1005"}

// agent is what Studio's OnAnswer knows of an agent: the CXone agent id
// only; ctibridge asks CXone for the agent's e-mail. An agent CXone does not
// know (temp.agent) is sent with a user name, as a script that has it would.
func agent(user string) map[string]any {
	if id, ok := cxoneAgents[user]; ok {
		return map[string]any{"agentId": id}
	}
	return map[string]any{"agentId": "9999", "agentUserName": user}
}

func answered(user string) step { return step{"answered", agent(user)} }

func transferred(user string) step { return step{"transferred", agent(user)} }

func released(reason string) step {
	return step{"released", map[string]any{"reason": reason, "disposition": "Resolved"}}
}

// script is the demo's calls: every path a call can take, against the
// simulator's built-in dataset.
func script(sim *snowsim.Server) []call {
	user := func(name string) string {
		for _, u := range sim.Records("sys_user") {
			if u["name"] == name {
				return u["sys_id"]
			}
		}
		return ""
	}
	alice, oliver := user("Alice Caller"), user("Oliver Brit")
	const (
		closed    = "closed_complete"
		abandoned = "closed_abandoned"
		wip       = "work_in_progress"
	)
	return []call{
		{id: "1001", story: "Alice calls (10 digits), answered, hung up", wantState: closed, wantAgent: "jdoe", wantUser: alice,
			events: []step{queued("8013203420"), answered("jdoe"), released("caller hung up")}},
		{id: "1002", story: "Alice again (+1...), transferred to Anna", wantState: closed, wantAgent: "asmith", wantUser: alice,
			wantNote: "transferred from", events: []step{queued("+18013203420"), answered("jdoe"), transferred("asmith"), released("agent")}},
		{id: "1003", story: "unknown caller gives up in the queue", wantState: abandoned,
			events: []step{queued("+1 312 555 0100"), released("abandoned")}},
		{id: "1004", story: "events arrive backwards (release first)", wantState: closed, wantAgent: "bwayne", wantUser: alice,
			events: []step{released("agent"), answered("bwayne"), queued("801.320.3420")}},
		{id: "1005", story: "withheld number, answered", wantState: closed, wantAgent: "ckent",
			events: []step{queued("anonymous"), answered("ckent"), released("caller")}},
		{id: "1006", story: "Oliver from London (011 44 ...)", wantState: closed, wantAgent: "dprince", wantUser: oliver,
			events: []step{queued("011 44 20 7946 0958"), answered("dprince"), released("caller")}},
		{id: "1007", story: "Studio retries every request twice", wantState: closed, wantAgent: "jdoe",
			events: []step{queued("+1 415 555 0142"), queued("+1 415 555 0142"), answered("jdoe"), answered("jdoe"), released("caller"), released("caller")}},
		{id: "1008", story: "number shared by two people: none chosen", wantState: closed, wantAgent: "asmith",
			wantNote: "none was chosen", events: []step{queued("(801) 555-0199"), answered("asmith"), released("caller")}},
		{id: "1009", story: "agent known only by e-mail", wantState: closed, wantAgent: "bwayne",
			events: []step{queued("+1 646 555 0111"), {"answered", map[string]any{"agentId": "7001", "agentEmail": "BWayne@Example.com"}}, released("caller")}},
		{id: "1010", story: "agent with no ServiceNow user", wantState: closed,
			wantNote: "has no ServiceNow user", events: []step{queued("+1 212 555 0199"), answered("temp.agent"), released("caller")}},
		{id: "1011", story: "call still in progress", wantState: wip, wantAgent: "ckent", wantUser: alice,
			events: []step{queued("1-801-320-3420"), answered("ckent")}},
		{id: "1012", story: "call still waiting in the queue", wantState: "new",
			events: []step{queued("+1 305 555 0150")}},
		{id: "1013", story: "Carla, a company contact (801.555.0123)", wantState: closed, wantAgent: "dprince",
			events: []step{queued("8015550123"), answered("dprince"), released("caller")}},
		{id: "1014", story: "Connor, a consumer", wantState: closed, wantAgent: "jdoe",
			events: []step{queued("+18015550177"), answered("jdoe"), released("caller")}},
		{id: "1015", story: "transferred twice", wantState: closed, wantAgent: "dprince",
			wantNote: "to Diana Prince", events: []step{queued("+1 702 555 0123"), answered("jdoe"), transferred("asmith"), transferred("dprince"), released("agent")}},
		{id: "1016", story: "no number at all, abandoned", wantState: abandoned,
			events: []step{queued(""), released("abandoned")}},
		{id: "1017", story: "German caller, answered", wantState: closed, wantAgent: "asmith",
			events: []step{queued("+49 30 901820"), answered("asmith"), released("caller")}},
		{id: "1018", story: "release before answer arrives", wantState: closed, wantAgent: "jdoe",
			events: []step{queued("+1 617 555 0188"), released("agent"), answered("jdoe")}},
		{id: "1019", story: "garbage ANI from a trunk", wantState: abandoned,
			events: []step{queued("restricted"), released("abandoned")}},
		{id: "1020", story: "Oliver again (+44 ...)", wantState: closed, wantAgent: "asmith", wantUser: oliver,
			events: []step{queued("+442079460958"), answered("asmith"), released("caller")}},
	}
}

// playInCXone scripts calls in the CXone simulator, which plays them in real
// time; ctibridge learns of them only by polling CXone.
func playInCXone(cx *cxonesim.Server, sim *snowsim.Server, out io.Writer) ([]call, error) {
	var alice, oliver string
	for _, u := range sim.Records("sys_user") {
		switch u["name"] {
		case "Alice Caller":
			alice = u["sys_id"]
		case "Oliver Brit":
			oliver = u["sys_id"]
		}
	}
	closed := ctibridge.DefaultStates().ClosedComplete
	abandoned := ctibridge.DefaultStates().ClosedAbandoned
	s := time.Second
	scripts := []struct {
		story string
		sc    cxonesim.Script
		c     call
	}{
		{"Alice calls, John answers", cxonesim.Script{ANI: "8013203420", AgentID: 1001, QueueFor: 2 * s, TalkFor: 4 * s},
			call{wantState: closed, wantAgent: "jdoe", wantUser: alice}},
		{"transferred from Anna to Bruce", cxonesim.Script{ANI: "+1 312 555 0140", AgentID: 1002, QueueFor: s, TalkFor: 6 * s,
			TransferTo: &cxonesim.Transfer{AgentID: 1003, After: 3 * s}}, call{wantState: closed, wantAgent: "bwayne", wantNote: "transferred from"}},
		{"the caller hangs up in the queue", cxonesim.Script{ANI: "+1 415 555 0142", QueueFor: 3 * s, Abandon: true},
			call{wantState: abandoned}},
		{"a call shorter than one poll", cxonesim.Script{ANI: "+44 20 7946 0958", AgentID: 1004, QueueFor: s / 4, TalkFor: s / 4},
			call{wantState: closed, wantAgent: "ckent", wantUser: oliver}},
		{"Diana's call", cxonesim.Script{ANI: "+1 646 555 0111", AgentID: 1005, QueueFor: 2 * s, TalkFor: 5 * s},
			call{wantState: closed, wantAgent: "dprince"}},
	}
	var calls []call
	for _, x := range scripts {
		m, err := cx.AddCall(x.sc)
		if err != nil {
			return nil, err
		}
		c := x.c
		c.id, c.story = strconv.FormatInt(m, 10), x.story
		fmt.Fprintf(out, "call %-6s %s\n", c.id, c.story)
		calls = append(calls, c)
	}
	return calls, nil
}
