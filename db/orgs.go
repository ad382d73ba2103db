package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"tether/internal/tether"
	"time"
)

// insertAudit writes entries inside tx, so they commit with the change.
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, entries ...tether.Audit) error {
	now := s.now()
	for _, a := range entries {
		var actor, project any
		if a.ActorID != 0 {
			actor = a.ActorID
		}
		if a.ProjectID != 0 {
			project = a.ProjectID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (org_id, actor_id, actor_name, action, project_id, project_name, detail, created_at)
			VALUES (?, ?, coalesce((SELECT name FROM users WHERE id = ?), 'Tether'), ?, ?, ?, ?, ?)`,
			a.OrgID, actor, actor, a.Action, project, a.ProjectName, a.Detail, now)
		if err != nil {
			return fmt.Errorf("db: audit: %w", err)
		}
	}
	return nil
}

// insertUserAudit records an event about a person (e.g. connected) in
// every organization they belong to.
func (s *Store) insertUserAudit(ctx context.Context, tx *sql.Tx, userID, actorID int64, action, detail string) error {
	rows, err := tx.QueryContext(ctx, `SELECT org_id FROM memberships WHERE user_id = ?`, userID)
	orgs, err := collect(rows, err, scanID)
	if err != nil {
		return err
	}
	for _, org := range orgs {
		if err := s.insertAudit(ctx, tx, tether.Audit{OrgID: org, ActorID: actorID, Action: action, Detail: detail}); err != nil {
			return err
		}
	}
	return nil
}

// CreateOrganization creates an organization with userID as its admin and
// makes it their current one.
func (s *Store) CreateOrganization(ctx context.Context, userID int64, name string) (tether.Organization, error) {
	now := s.now()
	o := tether.Organization{Name: name, CreatedAt: now}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO organizations (name, created_at) VALUES (?, ?)`, name, now)
		if err != nil {
			return err
		}
		if o.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?, ?, 'admin', ?)`, o.ID, userID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET current_org_id = ? WHERE id = ?`, o.ID, userID); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, tether.Audit{OrgID: o.ID, ActorID: userID, Action: "organization created", Detail: name})
	})
	return o, err
}

// Memberships lists the organizations a person belongs to, by name.
func (s *Store) Memberships(ctx context.Context, userID int64) ([]tether.Membership, error) {
	ms, err := s.hot.memberships.get(userID, func() ([]tether.Membership, error) {
		rows, err := s.readRows(ctx, `SELECT o.id, o.name, o.created_at, m.role, m.joined_at FROM memberships m
			JOIN organizations o ON o.id = m.org_id WHERE m.user_id = ? ORDER BY o.name, o.id`, userID)
		return collect(rows, err, scanMembership)
	})
	return slices.Clone(ms), err
}

func scanMembership(row rowScanner) (tether.Membership, error) {
	var m tether.Membership
	err := row.Scan(&m.Org.ID, &m.Org.Name, &m.Org.CreatedAt, &m.Role, &m.JoinedAt)
	return m, err
}

// Role returns a person's role in an organization; ErrNotFound if they
// are not a member.
func (s *Store) Role(ctx context.Context, orgID, userID int64) (string, error) {
	return s.hot.roles.get([2]int64{orgID, userID}, func() (string, error) {
		var role string
		err := s.readRow(ctx, `SELECT role FROM memberships WHERE org_id = ? AND user_id = ?`, orgID, userID).Scan(&role)
		return role, notFound(err)
	})
}

// CurrentOrgID is the organization a person last looked at (0 if none).
func (s *Store) CurrentOrgID(ctx context.Context, userID int64) (int64, error) {
	return s.hot.currentOrg.get(userID, func() (int64, error) {
		var id sql.NullInt64
		err := s.readRow(ctx, `SELECT current_org_id FROM users WHERE id = ?`, userID).Scan(&id)
		return id.Int64, notFound(err)
	})
}

// SetCurrentOrg remembers the organization a person looks at.
func (s *Store) SetCurrentOrg(ctx context.Context, userID, orgID int64) error {
	_, err := s.write.ExecContext(ctx, `UPDATE users SET current_org_id = ? WHERE id = ?
		AND EXISTS (SELECT 1 FROM memberships WHERE org_id = ? AND user_id = ?)`, orgID, userID, orgID, userID)
	return err
}

// Organization returns an organization by id.
func (s *Store) Organization(ctx context.Context, id int64) (tether.Organization, error) {
	var o tether.Organization
	err := s.readRow(ctx, `SELECT id, name, created_at FROM organizations WHERE id = ?`, id).Scan(&o.ID, &o.Name, &o.CreatedAt)
	return o, notFound(err)
}

// Members lists an organization's people, admins first.
func (s *Store) Members(ctx context.Context, orgID int64) ([]tether.Member, error) {
	rows, err := s.readRows(ctx, `SELECT u.id, u.name, coalesce(p.email, i.email, ''), m.role, m.joined_at,
		coalesce(i.username, ''), coalesce(i.status, '')
		FROM memberships m JOIN users u ON u.id = m.user_id
		LEFT JOIN password_credentials p ON p.user_id = u.id
		LEFT JOIN bitbucket_identities i ON i.user_id = u.id
		WHERE m.org_id = ? ORDER BY m.role = 'admin' DESC, u.name, u.id`, orgID)
	return collect(rows, err, scanMember)
}

func scanMember(row rowScanner) (tether.Member, error) {
	var m tether.Member
	err := row.Scan(&m.UserID, &m.Name, &m.Email, &m.Role, &m.JoinedAt, &m.BitbucketUsername, &m.BitbucketStatus)
	return m, err
}

// otherAdmins counts the organization's admins other than userID.
func otherAdmins(ctx context.Context, tx *sql.Tx, orgID, userID int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE org_id = ? AND role = 'admin' AND user_id != ?`, orgID, userID).Scan(&n)
	return n, err
}

// SetRole changes a member's role; the last admin cannot be demoted.
func (s *Store) SetRole(ctx context.Context, orgID, userID int64, role string, a tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if role != tether.RoleAdmin {
			if n, err := otherAdmins(ctx, tx, orgID, userID); err != nil {
				return err
			} else if n == 0 {
				return tether.ErrLastAdmin
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE memberships SET role = ? WHERE org_id = ? AND user_id = ?`, role, orgID, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tether.ErrNotFound
		}
		return s.insertAudit(ctx, tx, a)
	})
}

// RemoveMember takes a person out of an organization; the last admin
// cannot be removed.
func (s *Store) RemoveMember(ctx context.Context, orgID, userID int64, a tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if n, err := otherAdmins(ctx, tx, orgID, userID); err != nil {
			return err
		} else if n == 0 {
			return tether.ErrLastAdmin
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE org_id = ? AND user_id = ?`, orgID, userID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tether.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET current_org_id = NULL WHERE id = ? AND current_org_id = ?`, userID, orgID); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, a)
	})
}

const invitationColumns = `v.id, v.org_id, o.name, v.invited_by, u.name, v.created_at, v.expires_at,
	coalesce(v.accepted_by, 0), v.accepted_at, v.revoked_at`

func scanInvitation(row interface{ Scan(...any) error }) (tether.Invitation, error) {
	var v tether.Invitation
	var accepted, revoked sql.NullTime
	err := row.Scan(&v.ID, &v.OrgID, &v.OrgName, &v.InvitedBy, &v.InvitedByName, &v.CreatedAt, &v.ExpiresAt, &v.AcceptedBy, &accepted, &revoked)
	v.AcceptedAt, v.RevokedAt = accepted.Time, revoked.Time
	return v, notFound(err)
}

const invitationFrom = ` FROM invitations v JOIN organizations o ON o.id = v.org_id JOIN users u ON u.id = v.invited_by`

// CreateInvitation stores an invitation under the hash of its token.
func (s *Store) CreateInvitation(ctx context.Context, orgID, invitedBy int64, tokenHash []byte, expires time.Time, a tether.Audit) (tether.Invitation, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO invitations (org_id, token_hash, invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			orgID, tokenHash, invitedBy, s.now(), expires.UTC())
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, a)
	})
	if err != nil {
		return tether.Invitation{}, err
	}
	return scanInvitation(s.write.QueryRowContext(ctx, `SELECT `+invitationColumns+invitationFrom+` WHERE v.id = ?`, id))
}

// PendingInvitations lists an organization's invitations not yet
// accepted, revoked or expired, newest first.
func (s *Store) PendingInvitations(ctx context.Context, orgID int64) ([]tether.Invitation, error) {
	rows, err := s.readRows(ctx, `SELECT `+invitationColumns+invitationFrom+`
		WHERE v.org_id = ? AND v.accepted_at IS NULL AND v.revoked_at IS NULL AND v.expires_at > ? ORDER BY v.id DESC`, orgID, s.now())
	return collect(rows, err, scanInvitation)
}

// InvitationByToken returns the invitation whose token hashes to tokenHash.
func (s *Store) InvitationByToken(ctx context.Context, tokenHash []byte) (tether.Invitation, error) {
	return scanInvitation(s.readRow(ctx, `SELECT `+invitationColumns+invitationFrom+` WHERE v.token_hash = ?`, tokenHash))
}

// AcceptInvitation makes userID a member of the invitation's organization,
// once: the invitation must be unused, unrevoked and unexpired.
func (s *Store) AcceptInvitation(ctx context.Context, invitationID, userID int64) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		var orgID int64
		err := tx.QueryRowContext(ctx, `SELECT org_id FROM invitations WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
			invitationID, now).Scan(&orgID)
		if errors.Is(err, sql.ErrNoRows) {
			return tether.ErrInvitationUsed
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM memberships WHERE org_id = ? AND user_id = ?`, orgID, userID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return tether.ErrAlreadyMember
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?, ?, 'member', ?)`, orgID, userID, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE invitations SET accepted_by = ?, accepted_at = ? WHERE id = ?`, userID, now, invitationID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET current_org_id = ? WHERE id = ?`, orgID, userID); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, tether.Audit{OrgID: orgID, ActorID: userID, Action: "member joined", Detail: "accepted an invitation"})
	})
}

// RevokeInvitation revokes a pending invitation of the organization.
func (s *Store) RevokeInvitation(ctx context.Context, orgID, invitationID int64, a tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE invitations SET revoked_at = ? WHERE id = ? AND org_id = ? AND accepted_at IS NULL AND revoked_at IS NULL`,
			s.now(), invitationID, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tether.ErrNotFound
		}
		return s.insertAudit(ctx, tx, a)
	})
}

// AuditLog returns an organization's entries, newest first: those before
// f.Before, or the f.Limit entries just after f.After.
func (s *Store) AuditLog(ctx context.Context, orgID int64, f tether.AuditFilter) ([]tether.Audit, error) {
	q := `SELECT id, org_id, coalesce(actor_id, 0), actor_name, action, coalesce(project_id, 0), project_name, detail, created_at
		FROM audit_log WHERE org_id = ?`
	where, args := auditWhere(f)
	q += where
	order := ` ORDER BY id DESC LIMIT ?`
	switch {
	case f.After != 0:
		q += ` AND id > ?`
		args = append(args, f.After)
		order = ` ORDER BY id ASC LIMIT ?`
	case f.Before != 0:
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	q += order
	args = append([]any{orgID}, append(args, f.Limit)...)
	rows, err := s.readRows(ctx, q, args...)
	out, err := collect(rows, err, scanAudit)
	if f.After != 0 {
		slices.Reverse(out)
	}
	return out, err
}

func scanAudit(row rowScanner) (tether.Audit, error) {
	var a tether.Audit
	err := row.Scan(&a.ID, &a.OrgID, &a.ActorID, &a.ActorName, &a.Action, &a.ProjectID, &a.ProjectName, &a.Detail, &a.CreatedAt)
	return a, err
}

// auditWhere is the filter part of an audit log query, after org_id.
func auditWhere(f tether.AuditFilter) (string, []any) {
	var q string
	var args []any
	if f.ProjectID != 0 {
		q += ` AND project_id = ?`
		args = append(args, f.ProjectID)
	}
	if f.ActorID != 0 {
		q += ` AND actor_id = ?`
		args = append(args, f.ActorID)
	}
	return q, args
}

// AuditCount counts an organization's entries that match f's filter
// (paging ignored).
func (s *Store) AuditCount(ctx context.Context, orgID int64, f tether.AuditFilter) (int, error) {
	where, args := auditWhere(f)
	var n int
	err := s.readRow(ctx, `SELECT count(*) FROM audit_log WHERE org_id = ?`+where, append([]any{orgID}, args...)...).Scan(&n)
	return n, err
}

// AuditProjects lists every project the organization's audit log names,
// deleted ones included, by the name of its newest entry.
func (s *Store) AuditProjects(ctx context.Context, orgID int64) ([]tether.AuditName, error) {
	return s.auditNames(ctx, `SELECT project_id, project_name FROM audit_log WHERE id IN
		(SELECT max(id) FROM audit_log WHERE org_id = ? AND project_id IS NOT NULL GROUP BY project_id) ORDER BY project_name, project_id`, orgID)
}

// AuditActors lists every person the organization's audit log names as
// having done something, those who left included.
func (s *Store) AuditActors(ctx context.Context, orgID int64) ([]tether.AuditName, error) {
	return s.auditNames(ctx, `SELECT actor_id, actor_name FROM audit_log WHERE id IN
		(SELECT max(id) FROM audit_log WHERE org_id = ? AND actor_id IS NOT NULL GROUP BY actor_id) ORDER BY actor_name, actor_id`, orgID)
}

func (s *Store) auditNames(ctx context.Context, q string, orgID int64) ([]tether.AuditName, error) {
	rows, err := s.readRows(ctx, q, orgID)
	return collect(rows, err, func(row rowScanner) (tether.AuditName, error) {
		var n tether.AuditName
		err := row.Scan(&n.ID, &n.Name)
		return n, err
	})
}
