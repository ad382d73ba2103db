package pages

import (
	"context"
	"time"

	"tether/internal/alerts"
	"tether/internal/bitbucket"
	"tether/internal/orgs"
	"tether/internal/tether"
)

// Orgs reads an organization's members and invitations, and acts on them.
type Orgs interface {
	Team(ctx context.Context, orgID int64) (orgs.Team, error)
	Invite(ctx context.Context, v orgs.Viewer) (string, tether.Invitation, error)
	Revoke(ctx context.Context, v orgs.Viewer, invitationID int64) error
	SetRole(ctx context.Context, v orgs.Viewer, userID int64, role string) error
	Remove(ctx context.Context, v orgs.Viewer, userID int64, force bool) ([]tether.Project, error)
}

// Budget reads a connection's Bitbucket API meter; a connection is named
// by its Tether user's ID.
type Budget interface {
	Usage(conn int64) bitbucket.Usage
}

// Alerts lists an organization's alert channels, and acts on them.
type Alerts interface {
	Settings(ctx context.Context, orgID int64) (alerts.Settings, error)
	AddEmail(ctx context.Context, a alerts.Actor, backer bool) error
	AddWebhook(ctx context.Context, a alerts.Actor, url, secret string) (string, error)
	Remove(ctx context.Context, a alerts.Actor, channelID int64) error
	SendTest(ctx context.Context, a alerts.Actor, orgName string, channelID int64) (alerts.TestResult, error)
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

// The Team page's actions below do what a button on it asks, through the
// service that owns the rule, and answer with the Team page as it is
// afterwards, read for v; errors as for a project page's actions
// (actions.go). Each takes v, the admin acting.

// Invite creates an invitation link (orgs.Invite) and answers with its
// token, shown this once.
func (r *Reader) Invite(ctx context.Context, v orgs.Viewer) (Team, string, error) {
	token, _, err := r.orgs.Invite(ctx, v)
	t, err := r.teamAfter(ctx, v, err)
	return t, token, err
}

// Revoke revokes a pending invitation (orgs.Revoke).
func (r *Reader) Revoke(ctx context.Context, v orgs.Viewer, invitationID int64) (Team, error) {
	return r.teamAfter(ctx, v, r.orgs.Revoke(ctx, v, invitationID))
}

// SetRole makes a member Admin or Member (orgs.SetRole).
func (r *Reader) SetRole(ctx context.Context, v orgs.Viewer, userID int64, role string) (Team, error) {
	return r.teamAfter(ctx, v, r.orgs.SetRole(ctx, v, userID, role))
}

// Removed is the answer to removing a member.
type Removed struct {
	Team
	Name   string           // the member's name, read before they went; "" when unknown
	Backed []tether.Project // the projects they back, when that held the removal back
}

// Remove removes a member, or lets v leave (orgs.Remove): without force,
// a member who backs projects stays, and Backed lists them.
func (r *Reader) Remove(ctx context.Context, v orgs.Viewer, userID int64, force bool) (Removed, error) {
	var out Removed
	if before, err := r.orgs.Team(ctx, v.Org.ID); err == nil {
		for _, m := range before.Members {
			if m.UserID == userID {
				out.Name = m.Name
			}
		}
	}
	var err error
	out.Backed, err = r.orgs.Remove(ctx, v, userID, force)
	out.Team, err = r.teamAfter(ctx, v, err)
	return out, err
}

// AddEmailChannel turns on alerts by e-mail to the admins, and to each
// project's backer when backer is set (alerts.AddEmail).
func (r *Reader) AddEmailChannel(ctx context.Context, v orgs.Viewer, backer bool) (Team, error) {
	return r.teamAfter(ctx, v, r.alerts.AddEmail(ctx, actor(v), backer))
}

// AddWebhookChannel adds a webhook alerts are posted to
// (alerts.AddWebhook) and answers with its signing secret: the one typed,
// or one Tether made, shown this once.
func (r *Reader) AddWebhookChannel(ctx context.Context, v orgs.Viewer, url, secret string) (Team, string, error) {
	secret, err := r.alerts.AddWebhook(ctx, actor(v), url, secret)
	t, err := r.teamAfter(ctx, v, err)
	return t, secret, err
}

// TestChannel sends a test alert to a channel (alerts.SendTest).
func (r *Reader) TestChannel(ctx context.Context, v orgs.Viewer, channelID int64) (Team, alerts.TestResult, error) {
	res, err := r.alerts.SendTest(ctx, actor(v), v.Org.Name, channelID)
	t, err := r.teamAfter(ctx, v, err)
	return t, res, err
}

// RemoveChannel removes an alert channel (alerts.Remove).
func (r *Reader) RemoveChannel(ctx context.Context, v orgs.Viewer, channelID int64) (Team, error) {
	return r.teamAfter(ctx, v, r.alerts.Remove(ctx, actor(v), channelID))
}

// teamAfter reads the Team page after an action that ended in actErr.
func (r *Reader) teamAfter(ctx context.Context, v orgs.Viewer, actErr error) (Team, error) {
	t, err := r.Team(ctx, v)
	if err != nil {
		return t, err
	}
	return t, actErr
}

func actor(v orgs.Viewer) alerts.Actor { return alerts.Actor{UserID: v.UserID, OrgID: v.Org.ID} }
