package db

import (
	"context"
	"database/sql"
	"fmt"
	"tether/internal/tether"
	"time"
)

const purposeDeployKey = "deploy_keys.private_key"

const projectColumns = `p.id, coalesce(p.org_id, 0), p.name, p.owner_id, u.name, p.repo_uuid, p.workspace, p.repo_slug, p.full_name,
	p.clone_ssh, p.html_url, p.is_private, p.hook_token, p.moved_to, p.created_at`

func scanProject(row interface{ Scan(...any) error }) (tether.Project, error) {
	var p tether.Project
	err := row.Scan(&p.ID, &p.OrgID, &p.Name, &p.OwnerID, &p.OwnerName, &p.RepoUUID, &p.Workspace, &p.RepoSlug, &p.FullName,
		&p.CloneSSH, &p.HTMLURL, &p.Private, &p.HookToken, &p.MovedTo, &p.CreatedAt)
	return p, notFound(err)
}

// ReserveProjectID hands out the id of a project about to be created: its
// deploy key and webhook carry it in their marker before it is stored. An
// id is handed out once, used or not.
func (s *Store) ReserveProjectID(ctx context.Context) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = reserveProjectID(ctx, tx)
		return err
	})
	return id, err
}

func reserveProjectID(ctx context.Context, tx *sql.Tx) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO project_ids DEFAULT VALUES`)
	if err != nil {
		return 0, fmt.Errorf("db: reserve project id: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	// AUTOINCREMENT remembers the id in sqlite_sequence; the row itself is
	// not needed.
	_, err = tx.ExecContext(ctx, `DELETE FROM project_ids WHERE id = ?`, id)
	return id, err
}

// CreateProject stores a project with its first deploy key and webhook in
// one transaction, under p.ID when it was reserved (ReserveProjectID), else
// under a fresh id. A project for the same repository is
// tether.ErrRepositoryTaken.
func (s *Store) CreateProject(ctx context.Context, p tether.Project, key tether.DeployKey, hook tether.Webhook, actorID int64) (tether.Project, error) {
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM projects WHERE repo_uuid = ?`, p.RepoUUID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return tether.ErrRepositoryTaken
		}
		if p.ID == 0 {
			var err error
			if p.ID, err = reserveProjectID(ctx, tx); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO projects
			(id, org_id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, html_url, is_private, hook_token, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.OrgID, p.Name, p.OwnerID, p.RepoUUID, p.Workspace, p.RepoSlug, p.FullName, p.CloneSSH, p.HTMLURL, p.Private, p.HookToken, now, now)
		if err != nil {
			return fmt.Errorf("db: insert project: %w", err)
		}
		key.ProjectID, hook.ProjectID = p.ID, p.ID
		if err := s.insertDeployKey(ctx, tx, key, now); err != nil {
			return err
		}
		if err := s.insertWebhook(ctx, tx, hook, now); err != nil {
			return err
		}
		a := tether.Audit{OrgID: p.OrgID, ActorID: actorID, ProjectID: p.ID, ProjectName: p.Name}
		return s.insertAudit(ctx, tx,
			a.With("project created", p.FullName),
			a.With("deploy key created", key.Fingerprint),
			a.With("webhook created", "{"+tether.NormalizeHookUUID(hook.UUID)+"}"))
	})
	if err != nil {
		return tether.Project{}, err
	}
	return s.Project(ctx, p.ID)
}

func (s *Store) insertDeployKey(ctx context.Context, tx *sql.Tx, k tether.DeployKey, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO deploy_keys
		(project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at)
		VALUES (?, ?, ?, ?, ?, 'active', ?)`,
		k.ProjectID, k.BitbucketKeyID, k.PublicKey, k.Fingerprint, s.box.Seal(purposeDeployKey, k.PrivateKey), now)
	if err != nil {
		return fmt.Errorf("db: insert deploy key: %w", err)
	}
	return nil
}

// Project returns a project by id.
func (s *Store) Project(ctx context.Context, id int64) (tether.Project, error) {
	return s.hot.projects.get(id, func() (tether.Project, error) {
		return scanProject(s.readRow(ctx, `SELECT `+projectColumns+` FROM projects p
			JOIN users u ON u.id = p.owner_id WHERE p.id = ?`, id))
	})
}

// ProjectsOf returns the projects a user backs with their connection.
func (s *Store) ProjectsOf(ctx context.Context, userID int64) ([]tether.Project, error) {
	return s.queryProjects(ctx, `SELECT `+projectColumns+` FROM projects p
		JOIN users u ON u.id = p.owner_id WHERE p.owner_id = ? ORDER BY p.name, p.id`, userID)
}

// ProjectsInOrg returns an organization's projects, by name.
func (s *Store) ProjectsInOrg(ctx context.Context, orgID int64) ([]tether.Project, error) {
	return s.queryProjects(ctx, `SELECT `+projectColumns+` FROM projects p
		JOIN users u ON u.id = p.owner_id WHERE p.org_id = ? ORDER BY p.name, p.id`, orgID)
}

// AllProjects returns every project, for the background health monitor.
func (s *Store) AllProjects(ctx context.Context) ([]tether.Project, error) {
	return s.queryProjects(ctx, `SELECT `+projectColumns+` FROM projects p JOIN users u ON u.id = p.owner_id ORDER BY p.id`)
}

func (s *Store) queryProjects(ctx context.Context, query string, args ...any) ([]tether.Project, error) {
	return queryAll(ctx, s, scanProject, query, args...)
}

// UsedRepositories returns the repository UUIDs that already have a project.
func (s *Store) UsedRepositories(ctx context.Context) (map[string]bool, error) {
	rows, err := s.readRows(ctx, `SELECT repo_uuid FROM projects`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	used := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		used[u] = true
	}
	return used, rows.Err()
}

const deployKeyColumns = `id, project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at`

func (s *Store) scanDeployKey(row interface{ Scan(...any) error }) (tether.DeployKey, error) {
	var k tether.DeployKey
	var sealed []byte
	err := row.Scan(&k.ID, &k.ProjectID, &k.BitbucketKeyID, &k.PublicKey, &k.Fingerprint, &sealed, &k.State, &k.CreatedAt)
	if err != nil {
		return tether.DeployKey{}, notFound(err)
	}
	if k.PrivateKey, err = s.box.Open(purposeDeployKey, sealed); err != nil {
		return tether.DeployKey{}, err
	}
	return k, nil
}

// ActiveDeployKey returns the project's key in force.
func (s *Store) ActiveDeployKey(ctx context.Context, projectID int64) (tether.DeployKey, error) {
	return s.scanDeployKey(s.readRow(ctx, `SELECT `+deployKeyColumns+` FROM deploy_keys
		WHERE project_id = ? AND state = 'active'`, projectID))
}

// ActiveDeployKeyPublic returns the public half of the project's key in
// force, without opening the sealed private key: what pages show.
func (s *Store) ActiveDeployKeyPublic(ctx context.Context, projectID int64) (tether.DeployKey, error) {
	return s.hot.keys.get(projectID, func() (tether.DeployKey, error) {
		var k tether.DeployKey
		err := s.readRow(ctx, `SELECT id, project_id, bitbucket_key_id, public_key, fingerprint, state, created_at
			FROM deploy_keys WHERE project_id = ? AND state = 'active'`, projectID).
			Scan(&k.ID, &k.ProjectID, &k.BitbucketKeyID, &k.PublicKey, &k.Fingerprint, &k.State, &k.CreatedAt)
		return k, notFound(err)
	})
}

// SetMovedTo records the full name Bitbucket reports for the project's
// repository when it differs from the stored one ("" when it does not); a
// newly detected move goes into the audit log as Tether's finding.
func (s *Store) SetMovedTo(ctx context.Context, projectID int64, fullName string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		p, err := scanProject(tx.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects p JOIN users u ON u.id = p.owner_id WHERE p.id = ?`, projectID))
		if err != nil || p.MovedTo == fullName {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE projects SET moved_to = ?, updated_at = ? WHERE id = ?`, fullName, s.now(), projectID); err != nil {
			return err
		}
		if fullName == "" {
			return nil
		}
		return s.insertAudit(ctx, tx, tether.Audit{OrgID: p.OrgID, Action: "move detected", ProjectID: p.ID, ProjectName: p.Name,
			Detail: p.FullName + " is now " + fullName})
	})
}

// UpdateRepository stores where the same repository (same UUID) lives now;
// the project's name follows its new full name.
func (s *Store) UpdateRepository(ctx context.Context, projectID int64, r tether.Repository, a tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE projects SET name = ?, workspace = ?, repo_slug = ?, full_name = ?, clone_ssh = ?,
			html_url = ?, is_private = ?, moved_to = '', updated_at = ? WHERE id = ? AND repo_uuid = ?`,
			r.FullName, r.Workspace, r.Slug, r.FullName, r.CloneSSH, r.HTMLURL, r.Private, s.now(), projectID, r.UUID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tether.ErrNotFound
		}
		return s.insertAudit(ctx, tx, a)
	})
}

// ChangeParts stores one change of a project's deploy key and webhook in
// one transaction: the new key and hook in force (the key they replace is
// forgotten; the hook they replace stays as retiring, for the delivery
// grace window, unless the project moves to another repository), the
// repository or backer the change moves it to, the leftovers it lets go of
// on Bitbucket, and its audit entries. Moving to a repository another
// project uses is tether.ErrRepositoryTaken.
func (s *Store) ChangeParts(ctx context.Context, projectID int64, c tether.PartsChange) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if r := c.Repository; r != nil {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM projects WHERE repo_uuid = ? AND id != ?`, r.UUID, projectID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return tether.ErrRepositoryTaken
			}
			// The name follows the repository.
			_, err := tx.ExecContext(ctx, `UPDATE projects SET name = ?, repo_uuid = ?, workspace = ?, repo_slug = ?, full_name = ?, clone_ssh = ?,
				html_url = ?, is_private = ?, moved_to = '', updated_at = ? WHERE id = ?`,
				r.FullName, r.UUID, r.Workspace, r.Slug, r.FullName, r.CloneSSH, r.HTMLURL, r.Private, now, projectID)
			if err != nil {
				return err
			}
		}
		if c.OwnerID != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE projects SET owner_id = ?, updated_at = ? WHERE id = ?`, c.OwnerID, now, projectID); err != nil {
				return err
			}
		}
		if k := c.Key; k != nil {
			if _, err := tx.ExecContext(ctx, `DELETE FROM deploy_keys WHERE project_id = ?`, projectID); err != nil {
				return err
			}
			k.ProjectID = projectID
			if err := s.insertDeployKey(ctx, tx, *k, now); err != nil {
				return err
			}
		}
		if h := c.Hook; h != nil {
			var err error
			if c.Repository != nil {
				// Deliveries from the old repository's hook are not this
				// project's any more.
				_, err = tx.ExecContext(ctx, `DELETE FROM webhooks WHERE project_id = ?`, projectID)
			} else {
				_, err = tx.ExecContext(ctx, `UPDATE webhooks SET state = 'retiring', retired_at = ? WHERE project_id = ? AND state = 'active'`, now, projectID)
			}
			if err != nil {
				return err
			}
			h.ProjectID = projectID
			if err := s.insertWebhook(ctx, tx, *h, now); err != nil {
				return err
			}
		}
		if err := s.insertLeftovers(ctx, tx, now, c.Leftovers...); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, c.Audit...)
	})
}

// DeleteProject forgets a project and everything of it, recording in the
// same transaction the leftovers it lets go of on Bitbucket.
func (s *Store) DeleteProject(ctx context.Context, projectID int64, leftovers []tether.Leftover, entries ...tether.Audit) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM projects WHERE id = ?`, projectID); err != nil {
			return err
		}
		if err := s.insertLeftovers(ctx, tx, now, leftovers...); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, entries...)
	})
}
