// Package orgs is how teams use Tether: organizations own projects, people
// belong to them as Admin or Member, invitations bring people in (a link,
// single use, seven days, revocable), and every change lands in the
// organization's audit log. An organization always keeps an admin.
package orgs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"tether/internal/problem"
	"tether/internal/tether"
)

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// Store is the part of the database organizations use.
type Store interface {
	CreateOrganization(ctx context.Context, userID int64, name string) (tether.Organization, error)
	Memberships(ctx context.Context, userID int64) ([]tether.Membership, error)
	Role(ctx context.Context, orgID, userID int64) (string, error)
	CurrentOrgID(ctx context.Context, userID int64) (int64, error)
	SetCurrentOrg(ctx context.Context, userID, orgID int64) error
	Members(ctx context.Context, orgID int64) ([]tether.Member, error)
	SetRole(ctx context.Context, orgID, userID int64, role string, a tether.Audit) error
	RemoveMember(ctx context.Context, orgID, userID int64, a tether.Audit) error
	CreateInvitation(ctx context.Context, orgID, invitedBy int64, tokenHash []byte, expires time.Time, a tether.Audit) (tether.Invitation, error)
	PendingInvitations(ctx context.Context, orgID int64) ([]tether.Invitation, error)
	InvitationByToken(ctx context.Context, tokenHash []byte) (tether.Invitation, error)
	AcceptInvitation(ctx context.Context, invitationID, userID int64) error
	RevokeInvitation(ctx context.Context, orgID, invitationID int64, a tether.Audit) error
	AuditLog(ctx context.Context, orgID int64, f tether.AuditFilter) ([]tether.Audit, error)
	AuditCount(ctx context.Context, orgID int64, f tether.AuditFilter) (int, error)
	AuditProjects(ctx context.Context, orgID int64) ([]tether.AuditName, error)
	AuditActors(ctx context.Context, orgID int64) ([]tether.AuditName, error)
	ProjectsInOrg(ctx context.Context, orgID int64) ([]tether.Project, error)
}

// Service manages organizations.
type Service struct {
	log   *slog.Logger
	store Store
}

// New returns the organizations service.
func New(log *slog.Logger, store Store) *Service {
	return &Service{log: log, store: store}
}

// Viewer is who is asking: the person, the organization they look at and
// their role in it, and every organization they belong to.
type Viewer struct {
	UserID      int64
	Org         tether.Organization
	Role        string
	Memberships []tether.Membership
}

// Admin reports whether the viewer administers the organization they look at.
func (v Viewer) Admin() bool { return v.Role == tether.RoleAdmin }

// ErrNoOrganization: the person belongs to no organization yet.
var ErrNoOrganization = errors.New("orgs: no organization")

// ViewerOf returns the person's current organization: the one they last
// looked at if they still belong to it, else their first.
func (s *Service) ViewerOf(ctx context.Context, userID int64) (Viewer, error) {
	ms, err := s.store.Memberships(ctx, userID)
	if err != nil {
		return Viewer{}, err
	}
	if len(ms) == 0 {
		return Viewer{UserID: userID}, ErrNoOrganization
	}
	current, err := s.store.CurrentOrgID(ctx, userID)
	if err != nil {
		return Viewer{}, err
	}
	v := Viewer{UserID: userID, Memberships: ms, Org: ms[0].Org, Role: ms[0].Role}
	for _, m := range ms {
		if m.Org.ID == current {
			v.Org, v.Role = m.Org, m.Role
		}
	}
	return v, nil
}

// Create makes a new organization with the person as its admin.
func (s *Service) Create(ctx context.Context, userID int64, name string) (tether.Organization, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return tether.Organization{}, problem.Field("name", "Give your organization a name.")
	case utf8.RuneCountInString(name) > 80:
		return tether.Organization{}, problem.Field("name", "Keep the name under 80 characters.")
	}
	return s.store.CreateOrganization(ctx, userID, name)
}

// Switch makes orgID the organization the person looks at.
func (s *Service) Switch(ctx context.Context, userID, orgID int64) error {
	if _, err := s.store.Role(ctx, orgID, userID); err != nil {
		if errors.Is(err, tether.ErrNotFound) {
			return problem.New(problem.NotFound, "There is no such organization.")
		}
		return err
	}
	return s.store.SetCurrentOrg(ctx, userID, orgID)
}

// Team is what the Team page shows.
type Team struct {
	Members     []tether.Member
	Invitations []tether.Invitation
	Backing     map[int64][]tether.Project // projects each member backs
}

// Team reads an organization's members, pending invitations and who backs
// which project.
func (s *Service) Team(ctx context.Context, orgID int64) (Team, error) {
	var t Team
	var err error
	if t.Members, err = s.store.Members(ctx, orgID); err != nil {
		return t, err
	}
	if t.Invitations, err = s.store.PendingInvitations(ctx, orgID); err != nil {
		return t, err
	}
	projects, err := s.store.ProjectsInOrg(ctx, orgID)
	if err != nil {
		return t, err
	}
	t.Backing = map[int64][]tether.Project{}
	for _, p := range projects {
		t.Backing[p.OwnerID] = append(t.Backing[p.OwnerID], p)
	}
	return t, nil
}

// Invite creates an invitation link token; only its hash is stored, so
// the link is shown once.
func (s *Service) Invite(ctx context.Context, v Viewer) (string, tether.Invitation, error) {
	raw := make([]byte, 24)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	inv, err := s.store.CreateInvitation(ctx, v.Org.ID, v.UserID, hash(token), time.Now().Add(InvitationTTL),
		tether.Audit{OrgID: v.Org.ID, ActorID: v.UserID, Action: "member invited", Detail: "invitation link created"})
	return token, inv, err
}

// Revoke revokes a pending invitation of the viewer's organization.
func (s *Service) Revoke(ctx context.Context, v Viewer, invitationID int64) error {
	err := s.store.RevokeInvitation(ctx, v.Org.ID, invitationID,
		tether.Audit{OrgID: v.Org.ID, ActorID: v.UserID, Action: "invitation revoked"})
	if errors.Is(err, tether.ErrNotFound) {
		return problem.New(problem.NotFound, "There is no such pending invitation.")
	}
	return err
}

// Invitation looks up a link's invitation and says whether it can still
// be accepted.
func (s *Service) Invitation(ctx context.Context, token string) (tether.Invitation, error) {
	inv, err := s.store.InvitationByToken(ctx, hash(token))
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Invitation{}, problem.New(problem.NotFound, "This invitation link is not valid. Ask for a new one.")
	}
	if err != nil {
		return tether.Invitation{}, err
	}
	switch {
	case !inv.AcceptedAt.IsZero():
		return inv, problem.New(problem.Conflict, "This invitation was already used. Ask %s for a new one.", inv.InvitedByName)
	case !inv.RevokedAt.IsZero():
		return inv, problem.New(problem.Conflict, "This invitation was revoked. Ask %s for a new one.", inv.InvitedByName)
	case time.Now().After(inv.ExpiresAt):
		return inv, problem.New(problem.Conflict, "This invitation expired. Invitations work for 7 days; ask %s for a new one.", inv.InvitedByName)
	}
	return inv, nil
}

// Accept makes the person a member through the invitation link.
func (s *Service) Accept(ctx context.Context, token string, userID int64) (tether.Invitation, error) {
	inv, err := s.Invitation(ctx, token)
	if err != nil {
		return inv, err
	}
	err = s.store.AcceptInvitation(ctx, inv.ID, userID)
	switch {
	case errors.Is(err, tether.ErrAlreadyMember):
		return inv, problem.New(problem.Conflict, "You are already a member of %s.", inv.OrgName)
	case errors.Is(err, tether.ErrInvitationUsed):
		return inv, problem.New(problem.Conflict, "This invitation can no longer be used. Ask %s for a new one.", inv.InvitedByName)
	}
	return inv, err
}

// SetRole changes a member's role.
func (s *Service) SetRole(ctx context.Context, v Viewer, userID int64, role string) error {
	if role != tether.RoleAdmin && role != tether.RoleMember {
		return problem.Field("role", "Choose Admin or Member.")
	}
	err := s.store.SetRole(ctx, v.Org.ID, userID, role, tether.Audit{OrgID: v.Org.ID, ActorID: v.UserID, Action: "role changed",
		Detail: s.memberName(ctx, v.Org.ID, userID) + " is now " + roleWord(role)})
	return memberProblem(err)
}

// Remove takes a member out of the organization. Refusals come first: the
// last admin is told an organization needs an admin before anything else.
// Members who back projects are removed only when force is set (the page
// lists their projects and offers to re-home them first).
func (s *Service) Remove(ctx context.Context, v Viewer, userID int64, force bool) ([]tether.Project, error) {
	members, err := s.store.Members(ctx, v.Org.ID)
	if err != nil {
		return nil, err
	}
	if lastAdmin(members, userID) {
		return nil, memberProblem(tether.ErrLastAdmin)
	}
	projects, err := s.store.ProjectsInOrg(ctx, v.Org.ID)
	if err != nil {
		return nil, err
	}
	var backed []tether.Project
	for _, p := range projects {
		if p.OwnerID == userID {
			backed = append(backed, p)
		}
	}
	if len(backed) > 0 && !force {
		return backed, nil
	}
	err = s.store.RemoveMember(ctx, v.Org.ID, userID, tether.Audit{OrgID: v.Org.ID, ActorID: v.UserID, Action: "member removed",
		Detail: s.memberName(ctx, v.Org.ID, userID)})
	return nil, memberProblem(err)
}

// lastAdmin reports whether userID is the only admin among members.
func lastAdmin(members []tether.Member, userID int64) bool {
	admins, them := 0, false
	for _, m := range members {
		if m.Role == tether.RoleAdmin {
			admins++
			them = them || m.UserID == userID
		}
	}
	return them && admins == 1
}

// Member is userID as a member of orgID; a problem.NotFound when they
// are not one.
func (s *Service) Member(ctx context.Context, orgID, userID int64) (tether.Member, error) {
	ms, err := s.store.Members(ctx, orgID)
	if err != nil {
		return tether.Member{}, err
	}
	for _, m := range ms {
		if m.UserID == userID {
			return m, nil
		}
	}
	return tether.Member{}, memberProblem(tether.ErrNotFound)
}

func (s *Service) memberName(ctx context.Context, orgID, userID int64) string {
	if m, err := s.Member(ctx, orgID, userID); err == nil {
		return m.Name
	}
	return "a member"
}

func memberProblem(err error) error {
	switch {
	case errors.Is(err, tether.ErrLastAdmin):
		return problem.New(problem.Conflict, "An organization needs an admin: make someone else Admin first, then you can step down or leave.")
	case errors.Is(err, tether.ErrNotFound):
		return problem.New(problem.NotFound, "There is no such member.")
	}
	return err
}

func roleWord(role string) string {
	if role == tether.RoleAdmin {
		return "Admin"
	}
	return "Member"
}

// AuditPage is one page of an audit log, newest first.
type AuditPage struct {
	Entries []tether.Audit
	Total   int  // entries matching the filter, on every page
	Newer   bool // there are newer entries (a page before this one)
	Older   bool // there are older entries (a page after this one)
	// Projects and People are everything the log names, to filter by:
	// deleted projects and people who left included, marked Gone.
	Projects, People []tether.AuditName
}

// AuditPageSize is how many entries a page of the audit log shows.
const AuditPageSize = 50

// AuditLog returns a page of the organization's audit log: f.Limit
// entries (AuditPageSize when 0, at most 200) older than f.Before, newer
// than f.After, or the newest.
func (s *Service) AuditLog(ctx context.Context, orgID int64, f tether.AuditFilter) (AuditPage, error) {
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = AuditPageSize
	}
	limit := f.Limit
	f.Limit++ // one more tells whether another page follows
	var pg AuditPage
	entries, err := s.store.AuditLog(ctx, orgID, f)
	if err != nil {
		return pg, err
	}
	more := len(entries) > limit
	if f.After != 0 {
		if more {
			entries = entries[1:]
		}
		pg.Newer = more
	} else {
		if more {
			entries = entries[:limit]
		}
		pg.Older = more
	}
	pg.Entries = entries
	if len(entries) > 0 {
		probe := f
		probe.Limit = 1
		if f.After != 0 {
			probe.Before, probe.After = entries[len(entries)-1].ID, 0
			next, err := s.store.AuditLog(ctx, orgID, probe)
			if err != nil {
				return pg, err
			}
			pg.Older = len(next) > 0
		} else if f.Before != 0 {
			probe.Before, probe.After = 0, entries[0].ID
			prev, err := s.store.AuditLog(ctx, orgID, probe)
			if err != nil {
				return pg, err
			}
			pg.Newer = len(prev) > 0
		}
	}
	if pg.Total, err = s.store.AuditCount(ctx, orgID, f); err != nil {
		return pg, err
	}
	if pg.Projects, err = s.store.AuditProjects(ctx, orgID); err != nil {
		return pg, err
	}
	if pg.People, err = s.store.AuditActors(ctx, orgID); err != nil {
		return pg, err
	}
	projects, err := s.store.ProjectsInOrg(ctx, orgID)
	if err != nil {
		return pg, err
	}
	members, err := s.store.Members(ctx, orgID)
	if err != nil {
		return pg, err
	}
	live := map[int64]bool{}
	for _, p := range projects {
		live[p.ID] = true
	}
	for i := range pg.Projects {
		pg.Projects[i].Gone = !live[pg.Projects[i].ID]
	}
	clear(live)
	for _, m := range members {
		live[m.UserID] = true
	}
	for i := range pg.People {
		pg.People[i].Gone = !live[pg.People[i].ID]
	}
	return pg, nil
}

func hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
