// Package pages reads what a page shows in one call, and does a page's
// actions answering with what they changed. A page is made of several
// services' answers — a project's page of the project, its key, hook and
// backer (projects), the recorded health of its deploy key and webhook
// (health), the builds it missed (recovery); the Team page of the members
// (orgs), each connection's Bitbucket API meter (budget) and the alert
// channels (alerts) — and a handler asks for the whole page, one of its
// rows, or an action and the rows it changed, at once. Pages only compose:
// every rule stays in the service that owns it. Page reads come from the
// store and from memory and never ask Bitbucket; actions (actions.go) do
// what their service does.
package pages

import (
	"context"
	"time"

	"tether/internal/health"
	"tether/internal/projects"
	"tether/internal/tether"
)

// Projects is the part of the projects services the pages read and act
// with.
type Projects interface {
	List(ctx context.Context, orgID int64) ([]tether.Project, error)
	Key(ctx context.Context, p tether.Project) (tether.DeployKey, error)
	Webhook(ctx context.Context, p tether.Project) (tether.Webhook, error)
	HookURL(p tether.Project) string
	MovedURL(p tether.Project) string
	BackingOf(ctx context.Context, p tether.Project, viewerID int64, admin bool) (projects.Backing, error)
	Activity(ctx context.Context, p tether.Project) (projects.Activity, error)
	RegenerateKey(ctx context.Context, actorID int64, p tether.Project) (projects.RegenerateResult, error)
	RegenerateWebhook(ctx context.Context, actorID int64, p tether.Project) (projects.RegenerateResult, error)
	Rehome(ctx context.Context, actorID int64, p tether.Project) (projects.RegenerateResult, error)
	ChangeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (projects.ChangeResult, error)
}

// Health gives a part's badge from its recorded checks, runs "Check now",
// and says when the background schedule next looks at a connection's
// projects.
type Health interface {
	Badge(ctx context.Context, p tether.Project, part string, watch bool) (health.Badge, error)
	CheckNow(ctx context.Context, p tether.Project) error
	NextCheck(owner int64) time.Time
}

// Recovery lists, and starts, the builds missed while deliveries were not
// arriving.
type Recovery interface {
	Missed(ctx context.Context, p tether.Project) ([]tether.MissedBranch, error)
	StartMissed(ctx context.Context, actorID int64, p tether.Project) ([]tether.Workflow, error)
}

// Sources are the services pages are made of.
type Sources struct {
	Projects Projects
	Health   Health
	Recovery Recovery
	Orgs     Orgs
	Budget   Budget
	Alerts   Alerts
}

// Reader reads pages and does their actions.
type Reader struct {
	projects Projects
	health   Health
	recovery Recovery
	orgs     Orgs
	budget   Budget
	alerts   Alerts
}

// New returns a Reader over the services pages are made of.
func New(s Sources) *Reader {
	return &Reader{projects: s.Projects, health: s.Health, recovery: s.Recovery, orgs: s.Orgs, budget: s.Budget, alerts: s.Alerts}
}

// Viewer is the person looking at a page.
type Viewer struct {
	UserID int64
	Admin  bool // administers the project's organization
}

// Part is a Deploy Key or Webhook row: its badge, and what Tether holds
// of the part (Key for tether.PartDeployKey; Hook and HookURL for
// tether.PartWebhook). A zero Key or Hook means Tether holds none.
type Part struct {
	Name    string // tether.PartDeployKey or tether.PartWebhook
	Badge   health.Badge
	Key     tether.DeployKey
	Hook    tether.Webhook
	HookURL string // where Bitbucket delivers to, whether or not a hook exists
}

// Project is everything a project's page shows.
type Project struct {
	Project  tether.Project
	MovedURL string // the web URL of the name a moved repository has now (p.MovedTo), for Update URL
	Parts    []Part // the deploy key, then the webhook
	Backing  projects.Backing
	Missed   []tether.MissedBranch
	Activity projects.Activity
}

// Parts are the rows of a project page, in order.
var Parts = []string{tether.PartDeployKey, tether.PartWebhook}

// Project reads p's page as v sees it. Showing it marks the project
// watched, so the background schedule looks at it first and more often.
func (r *Reader) Project(ctx context.Context, p tether.Project, v Viewer) (Project, error) {
	pg := Project{Project: p, MovedURL: r.projects.MovedURL(p)}
	var err error
	if pg.Parts, err = r.parts(ctx, p, true); err != nil {
		return pg, err
	}
	if pg.Backing, err = r.projects.BackingOf(ctx, p, v.UserID, v.Admin); err != nil {
		return pg, err
	}
	if pg.Missed, err = r.recovery.Missed(ctx, p); err != nil {
		return pg, err
	}
	pg.Activity, err = r.projects.Activity(ctx, p)
	return pg, err
}

// Part reads one row of p's page: the part's badge and what Tether holds
// of it. watch marks the project watched (a badge poll, the page); an
// action's answer reads without it.
func (r *Reader) Part(ctx context.Context, p tether.Project, name string, watch bool) (Part, error) {
	b, err := r.health.Badge(ctx, p, name, watch)
	if err != nil {
		return Part{}, err
	}
	part := Part{Name: name, Badge: b}
	switch name {
	case tether.PartDeployKey:
		part.Key, err = r.projects.Key(ctx, p)
	case tether.PartWebhook:
		part.HookURL = r.projects.HookURL(p)
		part.Hook, err = r.projects.Webhook(ctx, p)
	}
	return part, err
}

// parts reads both rows of p's page as stored; watch as for Part.
func (r *Reader) parts(ctx context.Context, p tether.Project, watch bool) ([]Part, error) {
	var out []Part
	for _, name := range Parts {
		part, err := r.Part(ctx, p, name, watch)
		if err != nil {
			return nil, err
		}
		out = append(out, part)
	}
	return out, nil
}

// ProjectRow is a project on the Projects page, with the badges of its
// deploy key and webhook.
type ProjectRow struct {
	Project tether.Project
	Key     health.Badge
	Webhook health.Badge
}

// Projects reads the Projects page of an organization: its projects in
// the order projects.List gives, each with both badges as recorded. It
// does not mark any project watched.
func (r *Reader) Projects(ctx context.Context, orgID int64) ([]ProjectRow, error) {
	list, err := r.projects.List(ctx, orgID)
	if err != nil {
		return nil, err
	}
	rows := make([]ProjectRow, 0, len(list))
	for _, p := range list {
		row := ProjectRow{Project: p}
		if row.Key, err = r.health.Badge(ctx, p, tether.PartDeployKey, false); err != nil {
			return nil, err
		}
		if row.Webhook, err = r.health.Badge(ctx, p, tether.PartWebhook, false); err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}
