package ctibridge

import (
	"fmt"
	"net/url"
	"strings"
)

// Screen-pop URL templates: where an agent's browser opens the interaction.
// {instance} is the instance base URL, {sys_id} the interaction's sys_id.
var workspaceTemplates = map[string]string{
	"agent":   "{instance}/now/workspace/agent/record/interaction/{sys_id}",
	"csm":     "{instance}/now/cwf/agent/record/interaction/{sys_id}",
	"sow":     "{instance}/now/sow/record/interaction/{sys_id}",
	"classic": "{instance}/nav_to.do?uri=interaction.do?sys_id={sys_id}",
}

// DefaultWorkspace is CSM Configurable Workspace. The legacy Agent Workspace
// ("agent") is not activated on instances set up since the Vancouver
// release, and the CSM documentation moves customers to the Configurable
// Workspace, where interactions with contacts and consumers are worked. An
// IT service desk on Service Operations Workspace sets "sow".
const DefaultWorkspace = "csm"

// Workspaces lists the named screen-pop templates.
func Workspaces() []string { return []string{"agent", "csm", "sow", "classic"} }

// ScreenPop builds screen-pop URLs.
type ScreenPop struct {
	instance string
	template string
}

// NewScreenPop takes a workspace name (agent, csm, sow, classic) or a custom
// template containing {sys_id} (and usually {instance}).
func NewScreenPop(instance, workspace string) (ScreenPop, error) {
	if workspace == "" {
		workspace = DefaultWorkspace
	}
	tmpl, ok := workspaceTemplates[workspace]
	if !ok {
		if !strings.Contains(workspace, "{sys_id}") {
			return ScreenPop{}, fmt.Errorf("workspace %q: want one of %s, or a URL template containing {sys_id}",
				workspace, strings.Join(Workspaces(), ", "))
		}
		tmpl = workspace
	}
	return ScreenPop{instance: strings.TrimRight(instance, "/"), template: tmpl}, nil
}

// URL returns the screen-pop URL for an interaction.
func (p ScreenPop) URL(sysID string) string {
	// Two replacements, not a strings.Replacer: one is built for every
	// event the intake answers, and building it costs more than this.
	return strings.ReplaceAll(strings.ReplaceAll(p.template, "{instance}", p.instance), "{sys_id}", url.PathEscape(sysID))
}
