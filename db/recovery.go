package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"tether/internal/tether"
)

func scheduleCheck(ctx context.Context, tx *sql.Tx, c tether.RecoveryCheck) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO recovery_checks (project_id, why, due_at) VALUES (?, ?, ?)
		ON CONFLICT (project_id) DO UPDATE SET why = excluded.why, due_at = min(recovery_checks.due_at, excluded.due_at), attempts = 0`,
		c.ProjectID, c.Why, c.DueAt.UTC())
	return err
}

// ScheduleRecoveryCheck asks for a comparison of the project's branch heads
// with its workflows at c.DueAt; a project has one pending at most (the
// earlier due time wins).
func (s *Store) ScheduleRecoveryCheck(ctx context.Context, c tether.RecoveryCheck) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return scheduleCheck(ctx, tx, c) })
}

// DueRecoveryCheck returns the comparison due first at now; ErrNotFound
// when none is.
func (s *Store) DueRecoveryCheck(ctx context.Context, now time.Time) (tether.RecoveryCheck, error) {
	var c tether.RecoveryCheck
	err := s.write.QueryRowContext(ctx, `SELECT project_id, why, due_at, attempts FROM recovery_checks
		WHERE due_at <= ? ORDER BY due_at, project_id LIMIT 1`, now.UTC()).Scan(&c.ProjectID, &c.Why, &c.DueAt, &c.Attempts)
	return c, notFound(err)
}

// RetryRecoveryCheck puts a comparison that could not run off until due.
func (s *Store) RetryRecoveryCheck(ctx context.Context, projectID int64, due time.Time) error {
	_, err := s.write.ExecContext(ctx, `UPDATE recovery_checks SET due_at = ?, attempts = attempts + 1 WHERE project_id = ?`, due.UTC(), projectID)
	return err
}

// DropRecoveryCheck forgets a comparison that cannot run.
func (s *Store) DropRecoveryCheck(ctx context.Context, projectID int64) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM recovery_checks WHERE project_id = ?`, projectID)
	return err
}

// anyTrigger names every trigger the workflows table allows, so a query
// about a ref walks the build key, workflows_build (project_id, trigger,
// ref_type, ref_name, commit_hash), once per trigger: the only index on
// refs, since migration 0016 (each delivery writes one random-key index
// fewer).
const anyTrigger = `trigger IN ('push', 'pull_request', 'recovered')`

// branchBuildsQuery answers (built, seen) for (commit, project, branch);
// branchBuiltQuery finds a workflow for (project, branch, commit).
const (
	branchBuildsQuery = `SELECT coalesce(max(commit_hash = ?), 0), count(*) FROM workflows
		WHERE project_id = ? AND ` + anyTrigger + ` AND ref_type = 'branch' AND ref_name = ?`
	branchBuiltQuery = `SELECT 1 FROM workflows WHERE project_id = ? AND ` + anyTrigger + `
		AND ref_type = 'branch' AND ref_name = ? AND commit_hash = ?`
)

// BranchBuilds says whether a workflow was started for commit on branch,
// and whether any was for that branch at all.
func (s *Store) BranchBuilds(ctx context.Context, projectID int64, branch, commit string) (built, seen bool, err error) {
	var b, n int
	err = s.readRow(ctx, branchBuildsQuery, commit, projectID, branch).Scan(&b, &n)
	return b == 1, n > 0, err
}

// ReplaceMissedBranches stores what a comparison found as the project's
// missed branches (replacing the previous finding) and drops the pending
// comparison, in one transaction.
func (s *Store) ReplaceMissedBranches(ctx context.Context, projectID int64, missed []tether.MissedBranch) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM missed_branches WHERE project_id = ?`, projectID); err != nil {
			return err
		}
		for _, m := range missed {
			_, err := tx.ExecContext(ctx, `INSERT INTO missed_branches (project_id, branch, commit_hash, message, author, committed_at, found_at, why)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, projectID, m.Name, m.Commit, m.Message, m.Author, nullTime(m.CommittedAt.UTC()), now, m.Why)
			if err != nil {
				return fmt.Errorf("db: insert missed branch: %w", err)
			}
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM recovery_checks WHERE project_id = ?`, projectID)
		return err
	})
}

// MissedBranches lists the project's missed branches, by name.
func (s *Store) MissedBranches(ctx context.Context, projectID int64) ([]tether.MissedBranch, error) {
	rows, err := s.readRows(ctx, `SELECT project_id, branch, commit_hash, message, author, committed_at, found_at, why
		FROM missed_branches WHERE project_id = ? ORDER BY branch`, projectID)
	return collect(rows, err, func(row rowScanner) (tether.MissedBranch, error) {
		var m tether.MissedBranch
		var committed sql.NullTime
		err := row.Scan(&m.ProjectID, &m.Name, &m.Commit, &m.Message, &m.Author, &committed, &m.FoundAt, &m.Why)
		m.CommittedAt = committed.Time
		return m, err
	})
}

// StartMissedWorkflows starts one workflow with trigger "recovered" for
// each missed branch of the project whose (branch, commit) has no workflow
// yet, forgets the missed branches and writes the audit entry, in one
// transaction. It returns the workflows started: none when another press
// (or a late delivery) got there first; the unique index on recovered
// workflows makes a second start of the same (branch, commit) impossible.
func (s *Store) StartMissedWorkflows(ctx context.Context, projectID int64, a tether.Audit) ([]tether.Workflow, error) {
	var started []tether.Workflow
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT branch, commit_hash, message, author, committed_at FROM missed_branches
			WHERE project_id = ? ORDER BY branch`, projectID)
		missed, err := collect(rows, err, func(row rowScanner) (tether.Workflow, error) {
			w := tether.Workflow{ProjectID: projectID, Trigger: tether.TriggerRecovered, RefType: "branch", CreatedAt: now}
			var committed sql.NullTime
			err := row.Scan(&w.RefName, &w.CommitHash, &w.Message, &w.Author, &committed)
			w.CommittedAt = committed.Time
			return w, err
		})
		if err != nil {
			return err
		}
		var names []string
		for _, w := range missed {
			res, err := tx.ExecContext(ctx, `INSERT INTO workflows
				(project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, message, author, committed_at, created_at)
				SELECT ?, NULL, 'recovered', 'branch', ?, ?, ?, ?, ?, ?
				WHERE NOT EXISTS (`+branchBuiltQuery+`)
				ON CONFLICT DO NOTHING`,
				projectID, w.RefName, w.CommitHash, w.Message, w.Author, nullTime(w.CommittedAt.UTC()), now,
				projectID, w.RefName, w.CommitHash)
			if err != nil {
				return fmt.Errorf("db: start recovered workflow: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			if w.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			started = append(started, w)
			names = append(names, w.RefName+" @ "+shortCommit(w.CommitHash))
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM missed_branches WHERE project_id = ?`, projectID); err != nil {
			return err
		}
		if len(started) == 0 {
			return nil
		}
		a.Detail = fmt.Sprintf("%d recovered: %s", len(started), strings.Join(names, ", "))
		return s.insertAudit(ctx, tx, a)
	})
	if err != nil {
		return nil, err
	}
	return started, nil
}

func shortCommit(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// TouchInstance records at as the latest time the named fact held (e.g.
// "up": Tether was running) and returns the time recorded before (zero the
// first time).
func (s *Store) TouchInstance(ctx context.Context, name string, at time.Time) (time.Time, error) {
	var prev sql.NullTime
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT at FROM instance_state WHERE name = ?`, name).Scan(&prev); err != nil && err != sql.ErrNoRows {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO instance_state (name, at) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET at = excluded.at`, name, at.UTC())
		return err
	})
	return prev.Time, err
}
