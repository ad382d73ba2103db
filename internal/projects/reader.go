package projects

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"tether/internal/repourl"
	"tether/internal/tether"
)

// readStore is what Reader reads.
type readStore interface {
	Project(ctx context.Context, id int64) (tether.Project, error)
	ProjectsInOrg(ctx context.Context, orgID int64) ([]tether.Project, error)
	Role(ctx context.Context, orgID, userID int64) (string, error)
	IdentityByUser(ctx context.Context, userID int64) (tether.Identity, error)
	ActiveDeployKeyPublic(ctx context.Context, projectID int64) (tether.DeployKey, error)
	ActiveWebhookPublic(ctx context.Context, projectID int64) (tether.Webhook, error)
	RecentWorkflows(ctx context.Context, projectID int64, limit int) ([]tether.Workflow, error)
	RecentDeliveries(ctx context.Context, projectID int64, limit int) ([]tether.Delivery, error)
	LastAccepted(ctx context.Context, projectID int64) (time.Time, error)
	Refusals(ctx context.Context, projectID int64) ([]tether.Refusal, error)
	Health(ctx context.Context, projectID int64, part string) (tether.Health, error)
}

// Reader reads projects and what a project page shows of them, from the
// store only: it never asks Bitbucket.
type Reader struct {
	store    readStore
	hookBase string
	hosts    repourl.Hosts
}

// Get returns a project and the person's role in its organization; people
// outside it get ErrNoProject. It does not depend on the organization the
// person looks at: a project's URL works for every member.
func (s *Reader) Get(ctx context.Context, userID, projectID int64) (tether.Project, string, error) {
	p, err := s.store.Project(ctx, projectID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Project{}, "", ErrNoProject
	}
	if err != nil {
		return tether.Project{}, "", err
	}
	role, err := s.store.Role(ctx, p.OrgID, userID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Project{}, "", ErrNoProject
	}
	return p, role, err
}

// List returns an organization's projects.
func (s *Reader) List(ctx context.Context, orgID int64) ([]tether.Project, error) {
	return s.store.ProjectsInOrg(ctx, orgID)
}

// Reload reads the project again, e.g. after a check recorded a move.
func (s *Reader) Reload(ctx context.Context, p tether.Project) (tether.Project, error) {
	return s.store.Project(ctx, p.ID)
}

// Key returns the public half of the project's deploy key in force.
func (s *Reader) Key(ctx context.Context, p tether.Project) (tether.DeployKey, error) {
	k, err := s.store.ActiveDeployKeyPublic(ctx, p.ID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.DeployKey{}, nil
	}
	return k, err
}

// Webhook returns the project's webhook in force, without its secret.
func (s *Reader) Webhook(ctx context.Context, p tether.Project) (tether.Webhook, error) {
	h, err := s.store.ActiveWebhookPublic(ctx, p.ID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Webhook{}, nil
	}
	return h, err
}

// HookURL is the webhook URL of a project.
func (s *Reader) HookURL(p tether.Project) string { return s.hookBase + p.HookToken }

// MovedURL is the web URL of the name a moved repository has now, for
// "Update URL".
func (s *Reader) MovedURL(p tether.Project) string {
	return strings.TrimRight(s.hosts.WebURL, "/") + "/" + p.MovedTo
}

// Activity is what a project's webhook brought in lately.
type Activity struct {
	Workflows    []tether.Workflow
	Deliveries   []tether.Delivery // accepted ones, newest first
	LastAccepted time.Time
	Refusals     []tether.Refusal // counts per reason, latest first
}

// recent is how many workflows and deliveries a project page lists.
const recent = 20

// Activity returns the project's recent workflows and deliveries.
func (s *Reader) Activity(ctx context.Context, p tether.Project) (Activity, error) {
	var a Activity
	var err error
	if a.Workflows, err = s.store.RecentWorkflows(ctx, p.ID, recent); err != nil {
		return a, err
	}
	if a.Deliveries, err = s.store.RecentDeliveries(ctx, p.ID, recent); err != nil {
		return a, err
	}
	if a.LastAccepted, err = s.store.LastAccepted(ctx, p.ID); err != nil {
		return a, err
	}
	a.Refusals, err = s.store.Refusals(ctx, p.ID)
	return a, err
}

// Backing says whose connection backs a project, what is wrong with it,
// and what the person looking may do about it.
type Backing struct {
	OwnerName string
	Username  string   // their Bitbucket username, if connected once
	Connected bool     // their Bitbucket connection is Connected
	Warnings  []string // left the organization, Not Connected, lost access
	// CanRehome: the person is an admin of the project's organization and
	// not its backer, so Re-home to me is theirs to press.
	CanRehome bool
	// Grant: the person is the backer and their connection is not
	// Connected, so Grant access is theirs to press.
	Grant bool
}

// BackingOf reads who backs the project and warns about what breaks it:
// the backer left the organization, their connection is Not Connected, or
// the last health check of the deploy key or webhook found they lost
// access (tether.ReasonOwnerNoAccess). viewerID and admin are the person
// looking and whether they administer the project's organization.
func (s *Reader) BackingOf(ctx context.Context, p tether.Project, viewerID int64, admin bool) (Backing, error) {
	b := Backing{OwnerName: p.OwnerName}
	if _, err := s.store.Role(ctx, p.OrgID, p.OwnerID); errors.Is(err, tether.ErrNotFound) {
		b.Warnings = append(b.Warnings, p.OwnerName+" has left the organization, but the deploy key and webhook still act with their Bitbucket connection.")
	} else if err != nil {
		return b, err
	}
	ident, err := s.store.IdentityByUser(ctx, p.OwnerID)
	switch {
	case errors.Is(err, tether.ErrNotFound):
		b.Warnings = append(b.Warnings, p.OwnerName+" has no Bitbucket connection.")
	case err != nil:
		return b, err
	default:
		b.Username = ident.Username
		b.Connected = ident.Status == tether.Connected
		if !b.Connected {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s's Bitbucket connection is Not Connected (%s).", p.OwnerName, ident.StatusReason))
		}
	}
	for _, part := range []string{tether.PartDeployKey, tether.PartWebhook} {
		h, err := s.store.Health(ctx, p.ID, part)
		if err != nil && !errors.Is(err, tether.ErrNotFound) {
			return b, err
		}
		if h.Reason == tether.ReasonOwnerNoAccess {
			b.Warnings = append(b.Warnings, p.OwnerName+" no longer has admin access to "+p.FullName+" on Bitbucket.")
			break
		}
	}
	b.CanRehome = admin && viewerID != p.OwnerID
	b.Grant = viewerID == p.OwnerID && !b.Connected
	return b, nil
}
