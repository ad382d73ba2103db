// Package pages reads what a project's page shows in one call. The page is
// made of several services' answers — the project, its key, hook and
// backer (projects), the recorded health of its deploy key and webhook
// (health), the builds it missed (recovery) — and a handler asks for the
// whole page, or one of its rows, at once. Everything comes from the
// store and from memory: no page read asks Bitbucket.
package pages

import (
	"context"

	"tether/internal/health"
	"tether/internal/projects"
	"tether/internal/tether"
)

// Projects is the part of the projects services a page reads.
type Projects interface {
	Key(ctx context.Context, p tether.Project) (tether.DeployKey, error)
	Webhook(ctx context.Context, p tether.Project) (tether.Webhook, error)
	HookURL(p tether.Project) string
	MovedURL(p tether.Project) string
	BackingOf(ctx context.Context, p tether.Project, viewerID int64, admin bool) (projects.Backing, error)
	Activity(ctx context.Context, p tether.Project) (projects.Activity, error)
}

// Health gives a part's badge from its recorded checks.
type Health interface {
	Badge(ctx context.Context, p tether.Project, part string, watch bool) (health.Badge, error)
}

// Recovery lists the branches that changed while deliveries were not
// arriving.
type Recovery interface {
	Missed(ctx context.Context, p tether.Project) ([]tether.MissedBranch, error)
}

// Reader reads pages.
type Reader struct {
	projects Projects
	health   Health
	recovery Recovery
}

// New returns a Reader over the services a project page is made of.
func New(p Projects, h Health, r Recovery) *Reader {
	return &Reader{projects: p, health: h, recovery: r}
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
	for _, name := range Parts {
		part, err := r.Part(ctx, p, name, true)
		if err != nil {
			return pg, err
		}
		pg.Parts = append(pg.Parts, part)
	}
	var err error
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
