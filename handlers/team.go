package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"tether/internal/orgs"
	"tether/internal/pages"
	"tether/internal/problem"
	"tether/internal/tether"
	"tether/views"
)

// Orgs manages organizations, members and invitations.
type Orgs interface {
	ViewerOf(ctx context.Context, userID int64) (orgs.Viewer, error)
	Create(ctx context.Context, userID int64, name string) (tether.Organization, error)
	Switch(ctx context.Context, userID, orgID int64) error
	Invitation(ctx context.Context, token string) (tether.Invitation, error)
	Accept(ctx context.Context, token string, userID int64) (tether.Invitation, error)
	Member(ctx context.Context, orgID, userID int64) (tether.Member, error)
	AuditLog(ctx context.Context, orgID int64, f tether.AuditFilter) (orgs.AuditPage, error)
}

const viewerKey = "viewer"

// loadViewer puts the person's current organization and role in the
// context; someone in no organization yet has a Viewer without one.
func (h *Handlers) loadViewer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		v, err := h.orgs.ViewerOf(c.Request().Context(), currentUser(c).ID)
		if err != nil && !errors.Is(err, orgs.ErrNoOrganization) {
			return err
		}
		c.Set(viewerKey, v)
		return next(c)
	}
}

// requireOrg sends someone in no organization yet to the setup step.
func (h *Handlers) requireOrg(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if viewer(c).Org.ID == 0 {
			return redirect(c, http.StatusForbidden, "/setup", "/setup")
		}
		return next(c)
	}
}

func viewer(c echo.Context) orgs.Viewer {
	v, _ := c.Get(viewerKey).(orgs.Viewer)
	return v
}

// requireOrgAdmin lets only admins of the current organization on.
func (h *Handlers) requireOrgAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !viewer(c).Admin() {
			return problem.New(problem.Forbidden, "Only admins of %s can do this.", viewer(c).Org.Name)
		}
		return next(c)
	}
}

func (h *Handlers) setupPage(c echo.Context) error {
	if len(viewer(c).Memberships) > 0 && c.QueryParam("new") == "" {
		return redirect(c, http.StatusOK, landing, landing)
	}
	f := views.Form{Values: map[string]string{"name": currentUser(c).Name + "'s team"}, Errors: map[string]string{}}
	return render(c, http.StatusOK, views.SetupPage(h.page(c, "Set up", ""), f), nil)
}

func (h *Handlers) setup(c echo.Context) error {
	f := formOf(c, "name")
	if _, err := h.orgs.Create(c.Request().Context(), currentUser(c).ID, f.Value("name")); err != nil {
		return h.formError(c, err, f, func(f views.Form) error {
			return render(c, http.StatusUnprocessableEntity, views.SetupPage(h.page(c, "Set up", ""), f), nil)
		})
	}
	return redirect(c, http.StatusOK, landing, landing)
}

func (h *Handlers) switchOrg(c echo.Context) error {
	id, _ := strconv.ParseInt(c.FormValue("org"), 10, 64)
	if err := h.orgs.Switch(c.Request().Context(), currentUser(c).ID, id); err != nil {
		return err
	}
	return redirect(c, http.StatusOK, landing, landing)
}

// teamViewOf shows the Team page as the person looking may act on it.
func teamViewOf(c echo.Context, t pages.Team) views.TeamView {
	v := viewer(c)
	tv := views.TeamView{Org: v.Org, Admin: v.Admin(), Invitations: t.Invitations}
	if t.Notifications != nil {
		tv.Notifications = notificationsViewOf(c, *t.Notifications)
	}
	for _, m := range t.Members {
		tv.Members = append(tv.Members, views.MemberRow{Member: m.Member, Backing: m.Backing, You: m.UserID == v.UserID, OnlyAdmin: m.OnlyAdmin})
	}
	now := time.Now()
	for _, m := range t.Meter {
		tv.Meter = append(tv.Meter, views.MeterRow{UserID: m.UserID, Name: m.Name, Username: m.Username, Usage: m.Usage, NextCheck: m.NextCheck, Now: now})
	}
	return tv
}

// team is the Team page (pages.Team).
func (h *Handlers) team(c echo.Context) error {
	t, err := h.pages.Team(c.Request().Context(), viewer(c))
	if err != nil {
		return err
	}
	tv := teamViewOf(c, t)
	return render(c, http.StatusOK, views.TeamPage(h.page(c, "Team", "team"), tv), views.TeamBody(tv))
}

// teamOutcome re-renders the team, as the action's answer t has it, with
// the outcome of an admin action in place; refusals meant for people are
// shown, with their status.
func (h *Handlers) teamOutcome(c echo.Context, t pages.Team, actErr error, edit func(*views.TeamView)) error {
	tv := teamViewOf(c, t)
	status := http.StatusOK
	if actErr != nil {
		if !isProblem(actErr) {
			return actErr
		}
		status, tv.Message = statusOf(actErr)
		tv.MessageKind = "error"
	} else if edit != nil {
		edit(&tv)
	}
	if actErr == nil && tv.NewLink == "" && tv.Removing == nil {
		// Nothing shown only once (no invitation link, no question): a
		// plain post is sent back to the Team page with the outcome said
		// there, so reloading it does not post the action again.
		return h.renderPart(c, status, views.TeamBody(tv), "/team", views.Notice{Kind: tv.MessageKind, Message: tv.Message})
	}
	return render(c, status, views.TeamPage(h.page(c, "Team", "team"), tv), views.TeamBody(tv))
}

// invite is Invite (pages.Invite: orgs.Invite).
func (h *Handlers) invite(c echo.Context) error {
	t, token, err := h.pages.Invite(c.Request().Context(), viewer(c))
	return h.teamOutcome(c, t, err, func(tv *views.TeamView) {
		tv.NewLink = h.cfg.PublicURL + "/invitations/" + token
	})
}

// revokeInvitation is Revoke (pages.Revoke: orgs.Revoke).
func (h *Handlers) revokeInvitation(c echo.Context) error {
	id, _ := strconv.ParseInt(c.Param("invitation"), 10, 64)
	t, err := h.pages.Revoke(c.Request().Context(), viewer(c), id)
	return h.teamOutcome(c, t, err, func(tv *views.TeamView) {
		tv.Message, tv.MessageKind = "The invitation was revoked; its link no longer works.", "ok"
	})
}

func memberParam(c echo.Context) int64 {
	id, _ := strconv.ParseInt(c.Param("user"), 10, 64)
	return id
}

// changeRole is Make Admin / Make Member (pages.SetRole: orgs.SetRole).
func (h *Handlers) changeRole(c echo.Context) error {
	id := memberParam(c)
	t, err := h.pages.SetRole(c.Request().Context(), viewer(c), id, c.FormValue("role"))
	return h.teamOutcome(c, t, err, func(tv *views.TeamView) {
		for _, m := range tv.Members {
			if m.UserID == id {
				tv.Message, tv.MessageKind = m.Name+" is now "+roleName(m.Role)+".", "ok"
			}
		}
	})
}

// roleName is a role as the page says it.
func roleName(role string) string {
	if role == tether.RoleAdmin {
		return "Admin"
	}
	return "Member"
}

// removeMember is Remove and Leave (pages.Remove: orgs.Remove).
func (h *Handlers) removeMember(c echo.Context) error {
	id := memberParam(c)
	rm, err := h.pages.Remove(c.Request().Context(), viewer(c), id, c.FormValue("force") != "")
	backed := rm.Backed
	if err == nil && len(backed) == 0 && id == currentUser(c).ID {
		// They left: the Team page of an organization they no longer
		// belong to has nothing for them.
		h.setFlash(c, views.Notice{Kind: "ok", Message: "You left " + viewer(c).Org.Name + "."})
		if isHTMX(c.Request()) {
			c.Response().Header().Set("HX-Redirect", "/projects")
			return c.NoContent(http.StatusOK)
		}
		return c.Redirect(http.StatusSeeOther, "/projects")
	}
	return h.teamOutcome(c, rm.Team, err, func(tv *views.TeamView) {
		if len(backed) == 0 {
			tv.Message, tv.MessageKind = "Member removed.", "ok"
			if rm.Name != "" {
				tv.Message = rm.Name + " was removed from " + tv.Org.Name + "."
			}
			return
		}
		for i := range tv.Members {
			if tv.Members[i].UserID == id {
				tv.Removing, tv.RemovingBacking = &tv.Members[i], backed
			}
		}
	})
}

// invitation is what an invitation link opens, signed in or not.
func (h *Handlers) invitation(c echo.Context) error {
	token := c.Param("token")
	inv, err := h.orgs.Invitation(c.Request().Context(), token)
	msg := ""
	status := http.StatusOK
	if err != nil {
		if !isProblem(err) {
			return err
		}
		status, msg = statusOf(err)
	}
	return render(c, status, views.InvitationPage(h.page(c, "Invitation", ""), inv, token, msg), nil)
}

func (h *Handlers) acceptInvitation(c echo.Context) error {
	token := c.Param("token")
	if msg, ok := allow(c, h.limits.acceptAddress, attempt{h.limits.acceptAccount, strconv.FormatInt(currentUser(c).ID, 10)}); !ok {
		return render(c, tooMany, views.InvitationPage(h.page(c, "Invitation", ""), tether.Invitation{}, token, msg), nil)
	}
	inv, err := h.orgs.Accept(c.Request().Context(), token, currentUser(c).ID)
	if err != nil {
		if !isProblem(err) {
			return err
		}
		status, msg := statusOf(err)
		return render(c, status, views.InvitationPage(h.page(c, "Invitation", ""), inv, token, msg), nil)
	}
	if inv.OrgName != "" {
		h.setFlash(c, views.Notice{Kind: "ok", Message: "You joined " + inv.OrgName + "; its projects are below."})
	}
	return redirect(c, http.StatusOK, landing, landing)
}

func (h *Handlers) auditLog(c echo.Context) error {
	v := viewer(c)
	ctx := c.Request().Context()
	var f tether.AuditFilter
	f.ProjectID, _ = strconv.ParseInt(c.QueryParam("project"), 10, 64)
	f.ActorID, _ = strconv.ParseInt(c.QueryParam("person"), 10, 64)
	f.Before, _ = strconv.ParseInt(c.QueryParam("before"), 10, 64)
	f.After, _ = strconv.ParseInt(c.QueryParam("after"), 10, 64)
	pg, err := h.orgs.AuditLog(ctx, v.Org.ID, f)
	if err != nil {
		return err
	}
	av := views.AuditView{Entries: pg.Entries, Total: pg.Total, ProjectID: f.ProjectID, ActorID: f.ActorID,
		Filtered: f.ProjectID != 0 || f.ActorID != 0}
	for _, n := range pg.Projects {
		av.Projects = append(av.Projects, views.AuditOption{ID: n.ID, Name: n.Name, Gone: n.Gone})
	}
	for _, n := range pg.People {
		av.People = append(av.People, views.AuditOption{ID: n.ID, Name: n.Name, Gone: n.Gone})
	}
	page := func(key string, id int64) string {
		q := url.Values{}
		if f.ProjectID != 0 {
			q.Set("project", fmt.Sprint(f.ProjectID))
		}
		if f.ActorID != 0 {
			q.Set("person", fmt.Sprint(f.ActorID))
		}
		if key != "" {
			q.Set(key, fmt.Sprint(id))
		}
		if len(q) == 0 {
			return "/team/audit"
		}
		return "/team/audit?" + q.Encode()
	}
	if n := len(pg.Entries); n > 0 {
		if pg.Newer {
			av.Newer, av.Newest = page("after", pg.Entries[0].ID), page("", 0)
		}
		if pg.Older {
			av.Older = page("before", pg.Entries[n-1].ID)
		}
	}
	av.All = "/team/audit"
	return render(c, http.StatusOK, views.AuditPage(h.page(c, "Audit log", "team"), av), nil)
}
