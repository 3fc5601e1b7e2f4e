package ctibridge

import (
	"context"
	"strings"
	"time"
)

// Caller is who is calling, as found from the ANI. Empty references mean no
// match. When several records matched and the policy does not choose,
// Candidates lists them and the references stay empty.
type Caller struct {
	Number     string // E.164 when the ANI parsed, else the ANI as received
	Withheld   bool   // anonymous, restricted, empty or unparseable
	Name       string // the matched record's display name, for people
	User       string // sys_user sys_id → opened_for
	Contact    string // customer_contact sys_id
	Account    string // customer_account sys_id
	Consumer   string // csm_consumer sys_id
	Candidates []string
	// Related are the caller's open incidents and cases, most recent first.
	Related []Related
}

// Related is an open task (incident, case) of the caller.
type Related struct {
	Table  string
	SysID  string
	Number string
}

// CallerFinder identifies callers and finds their open tasks: two steps,
// so a failing task lookup cannot hold up who the caller is.
// Implementations cache and must not call ServiceNow for a withheld number.
type CallerFinder interface {
	FindCaller(ctx context.Context, ani string) (Caller, error)
	OpenTasks(ctx context.Context, c Caller) ([]Related, error)
}

// Agent identifies a CXone agent as Studio reported it.
type Agent struct {
	ID       string
	UserName string
	Email    string
}

// Key identifies the agent for caches and the reconciler's memory: the same
// agent whatever the case of its user name or e-mail.
func (a Agent) Key() string {
	return a.ID + "|" + strings.ToLower(a.UserName) + "|" + strings.ToLower(a.Email)
}

// AgentUser is the ServiceNow user an agent maps to; SysID is "" when unmapped.
type AgentUser struct {
	SysID string
	Name  string // display name or user_name, for work notes
	How   string // which strategy matched ("map", "user_name", "email")
}

// AgentFinder maps CXone agents to ServiceNow users.
type AgentFinder interface {
	FindAgent(ctx context.Context, a Agent) (AgentUser, error)
}

// Warner records degraded-but-working conditions (an unmapped agent, an
// unreadable table) in the error log, at most once per key per window.
type Warner interface {
	Warn(ctx context.Context, key, operation, message string, window time.Duration)
}

// Step is one piece of a call's ServiceNow work, named as the error log,
// the console and the admin API name it.
type Step string

// The steps, in the order a call goes through them.
const (
	StepCreate   Step = "create interaction"
	StepIdentify Step = "identify caller"
	StepLink     Step = "link related records"
	StepMapAgent Step = "map agent"
	StepUpdate   Step = "update interaction"
)

// Steps lists the steps in the order a call goes through them.
func Steps() []Step { return []Step{StepCreate, StepIdentify, StepLink, StepMapAgent, StepUpdate} }
