package db

import (
	"context"
	"tether/internal/tether"
)

// Health returns the last check of a part; ErrNotFound before the first.
func (s *Store) Health(ctx context.Context, projectID int64, part string) (tether.Health, error) {
	return s.hot.health.get(healthKey{projectID, part}, func() (tether.Health, error) {
		var h tether.Health
		err := s.readRow(ctx, `SELECT project_id, part, status, reason, detail, checked_at, since
			FROM health WHERE project_id = ? AND part = ?`, projectID, part).
			Scan(&h.ProjectID, &h.Part, &h.Status, &h.Reason, &h.Detail, &h.CheckedAt, &h.Since)
		return h, notFound(err)
	})
}

// RecordHealth stores a check's result; since moves only when the status
// changes.
func (s *Store) RecordHealth(ctx context.Context, h tether.Health) error {
	now := s.now()
	_, err := s.write.ExecContext(ctx, `INSERT INTO health (project_id, part, status, reason, detail, checked_at, since)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, part) DO UPDATE SET
		 since = CASE WHEN health.status = excluded.status THEN health.since ELSE excluded.since END,
		 status = excluded.status, reason = excluded.reason, detail = excluded.detail, checked_at = excluded.checked_at`,
		h.ProjectID, h.Part, h.Status, h.Reason, h.Detail, now, now)
	return err
}
