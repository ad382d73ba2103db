package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"tether/internal/tether"
)

const leftoverColumns = `id, org_id, project_id, project_name, coalesce(owner_id, 0), repo_uuid, full_name, part,
	remote_id, label, match_on, why, attempts, next_at, created_at`

func scanLeftover(row interface{ Scan(...any) error }) (tether.Leftover, error) {
	var l tether.Leftover
	err := row.Scan(&l.ID, &l.OrgID, &l.ProjectID, &l.ProjectName, &l.OwnerID, &l.RepoUUID, &l.FullName, &l.Part,
		&l.RemoteID, &l.Label, &l.Match, &l.Why, &l.Attempts, &l.NextAt, &l.CreatedAt)
	return l, notFound(err)
}

// insertLeftovers records leftovers due at once (or at their NextAt); one
// already recorded for the same key or hook is kept as it is. A found part
// (a remote id) with a Match ends the watch for the unanswered create it
// is (remote id "", the same Match): one part is one leftover.
func (s *Store) insertLeftovers(ctx context.Context, tx *sql.Tx, now time.Time, ls ...tether.Leftover) error {
	for _, l := range ls {
		if l.Part == tether.PartWebhook && l.RemoteID != "" {
			l.RemoteID = tether.NormalizeHookUUID(l.RemoteID)
		}
		if l.RemoteID != "" && l.Match != "" {
			if _, err := tx.ExecContext(ctx, `DELETE FROM leftovers WHERE remote_id = '' AND repo_uuid = ? AND part = ? AND match_on = ?`,
				l.RepoUUID, l.Part, l.Match); err != nil {
				return fmt.Errorf("db: end the watch for a found leftover: %w", err)
			}
		}
		next := l.NextAt
		if next.IsZero() {
			next = now
		}
		var owner any
		if l.OwnerID != 0 {
			owner = l.OwnerID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO leftovers (org_id, project_id, project_name, owner_id, repo_uuid, full_name, part,
			remote_id, label, match_on, why, attempts, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
			ON CONFLICT (repo_uuid, part, remote_id) WHERE remote_id != '' DO NOTHING`,
			l.OrgID, l.ProjectID, l.ProjectName, owner, l.RepoUUID, l.FullName, l.Part, l.RemoteID, l.Label, l.Match, l.Why, next.UTC(), now)
		if err != nil {
			return fmt.Errorf("db: record leftover: %w", err)
		}
	}
	return nil
}

// AddLeftovers records leftovers found outside a change of parts — a
// create that never answered, a part undone whose removal failed, a key
// or hook a check found — with their audit entries.
func (s *Store) AddLeftovers(ctx context.Context, ls []tether.Leftover, entries ...tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.insertLeftovers(ctx, tx, s.now(), ls...); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, entries...)
	})
}

// DueLeftovers returns up to limit leftovers due at now, the most overdue
// first.
func (s *Store) DueLeftovers(ctx context.Context, now time.Time, limit int) ([]tether.Leftover, error) {
	return s.queryLeftovers(ctx, `SELECT `+leftoverColumns+` FROM leftovers WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`, now.UTC(), limit)
}

// ProjectLeftovers returns what the project left on Bitbucket and Tether
// still tries to remove, oldest first.
func (s *Store) ProjectLeftovers(ctx context.Context, projectID int64) ([]tether.Leftover, error) {
	return s.queryLeftovers(ctx, `SELECT `+leftoverColumns+` FROM leftovers WHERE project_id = ? ORDER BY id`, projectID)
}

func (s *Store) queryLeftovers(ctx context.Context, query string, args ...any) ([]tether.Leftover, error) {
	return queryAll(ctx, s, scanLeftover, query, args...)
}

// leftoverIs selects a leftover by its id, or — when it was never read
// back from the store — by its repository, part and remote id.
const leftoverIs = `(id = ? OR ? = 0 AND remote_id != '' AND repo_uuid = ? AND part = ? AND remote_id = ?)`

func leftoverArgs(l tether.Leftover) []any {
	remote := l.RemoteID
	if l.Part == tether.PartWebhook {
		remote = tether.NormalizeHookUUID(remote)
	}
	return []any{l.ID, l.ID, l.RepoUUID, l.Part, remote}
}

// RetryLeftover counts a failed attempt at l and sets when to try again,
// with its audit entries.
func (s *Store) RetryLeftover(ctx context.Context, l tether.Leftover, next time.Time, entries ...tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		args := append([]any{next.UTC()}, leftoverArgs(l)...)
		if _, err := tx.ExecContext(ctx, `UPDATE leftovers SET attempts = attempts + 1, next_at = ? WHERE `+leftoverIs, args...); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, entries...)
	})
}

// PostponeLeftover sets when to try l again without counting an attempt:
// nothing was asked of Bitbucket (the connection's budget was spent).
func (s *Store) PostponeLeftover(ctx context.Context, l tether.Leftover, next time.Time) error {
	args := append([]any{next.UTC()}, leftoverArgs(l)...)
	_, err := s.write.ExecContext(ctx, `UPDATE leftovers SET next_at = ? WHERE `+leftoverIs, args...)
	return err
}

// SettleLeftover forgets a leftover — Bitbucket confirmed it gone, or
// Tether gave up on it — with its audit entries, in one transaction.
func (s *Store) SettleLeftover(ctx context.Context, l tether.Leftover, entries ...tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM leftovers WHERE `+leftoverIs, leftoverArgs(l)...); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, entries...)
	})
}
