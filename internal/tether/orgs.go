package tether

import (
	"time"
)

// Roles in an organization.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Organization owns projects; people belong to it with a role.
type Organization struct {
	ID        int64
	Name      string
	CreatedAt time.Time
}

// Membership is one organization a person belongs to.
type Membership struct {
	Org      Organization
	Role     string
	JoinedAt time.Time
}

// Member is a person in an organization, with their Bitbucket connection.
type Member struct {
	UserID            int64
	Name              string
	Email             string
	Role              string
	JoinedAt          time.Time
	BitbucketUsername string
	BitbucketStatus   string // connected | not_connected | "" (never connected)
}

// Invitation is a link that lets someone join an organization once.
type Invitation struct {
	ID            int64
	OrgID         int64
	OrgName       string
	InvitedBy     int64
	InvitedByName string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	AcceptedBy    int64
	AcceptedAt    time.Time
	RevokedAt     time.Time
}

// Audit is one entry of an organization's audit log. ActorID 0 means
// Tether itself (something it detected).
type Audit struct {
	ID          int64
	OrgID       int64
	ActorID     int64
	ActorName   string
	Action      string
	ProjectID   int64
	ProjectName string
	Detail      string
	CreatedAt   time.Time
}

// With returns a copy of the entry with action and detail set.
func (a Audit) With(action, detail string) Audit {
	a.Action, a.Detail = action, detail
	return a
}

// AuditFilter narrows the audit log. Before and After page through it by
// entry id: entries older than Before, or the Limit entries just newer
// than After (still listed newest first).
type AuditFilter struct {
	ProjectID, ActorID int64
	Before             int64
	After              int64
	Limit              int
}

// AuditName is a project or person an audit log names, by id, with the
// name its newest entry gives them (a deleted project or a person who
// left keeps theirs).
type AuditName struct {
	ID   int64
	Name string
	Gone bool // the project was deleted, or the person left the organization
}
