package pages

import (
	"context"
	"time"

	"tether/internal/alerts"
	"tether/internal/bitbucket"
	"tether/internal/orgs"
	"tether/internal/tether"
)

// Orgs reads an organization's members and invitations.
type Orgs interface {
	Team(ctx context.Context, orgID int64) (orgs.Team, error)
}

// Budget reads a connection's Bitbucket API meter; a connection is named
// by its Tether user's ID.
type Budget interface {
	Usage(conn int64) bitbucket.Usage
}

// Alerts lists an organization's alert channels.
type Alerts interface {
	Settings(ctx context.Context, orgID int64) (alerts.Settings, error)
}

// Member is a person on the Team page.
type Member struct {
	tether.Member
	Backing   []tether.Project // projects whose key and hook act with their connection
	OnlyAdmin bool             // the organization's one admin: cannot step down or leave
}

// Meter is one Bitbucket connection on the Team page's budget meter.
type Meter struct {
	UserID    int64
	Name      string
	Username  string // Bitbucket username
	Usage     bitbucket.Usage
	NextCheck time.Time // next background look at a project it backs; zero: none
}

// Team is what the Team page shows. Meter and Notifications are read for
// admins only (nil for members).
type Team struct {
	Members       []Member
	Invitations   []tether.Invitation
	Meter         []Meter // members with a Bitbucket connection, in member order
	Notifications *alerts.Settings
}

// Team reads v's organization's Team page as v sees it: the members with
// the projects each backs, the pending invitations and, for admins, the
// budget meter of each member's Bitbucket connection and the alert
// channels.
func (r *Reader) Team(ctx context.Context, v orgs.Viewer) (Team, error) {
	t, err := r.orgs.Team(ctx, v.Org.ID)
	if err != nil {
		return Team{}, err
	}
	pg := Team{Invitations: t.Invitations}
	admins := 0
	for _, m := range t.Members {
		if m.Role == tether.RoleAdmin {
			admins++
		}
	}
	for _, m := range t.Members {
		pg.Members = append(pg.Members, Member{Member: m, Backing: t.Backing[m.UserID], OnlyAdmin: m.Role == tether.RoleAdmin && admins == 1})
		if v.Admin() && m.BitbucketUsername != "" {
			pg.Meter = append(pg.Meter, Meter{UserID: m.UserID, Name: m.Name, Username: m.BitbucketUsername,
				Usage: r.budget.Usage(m.UserID), NextCheck: r.health.NextCheck(m.UserID)})
		}
	}
	if v.Admin() {
		s, err := r.alerts.Settings(ctx, v.Org.ID)
		if err != nil {
			return pg, err
		}
		pg.Notifications = &s
	}
	return pg, nil
}
