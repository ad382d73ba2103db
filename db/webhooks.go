package db

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"tether/internal/tether"
	"time"
)

const purposeHookSecret = "webhooks.secret"

func (s *Store) insertWebhook(ctx context.Context, tx *sql.Tx, h tether.Webhook, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (project_id, hook_uuid, url, events, secret, state, created_at)
		VALUES (?, ?, ?, ?, ?, 'active', ?)`,
		h.ProjectID, tether.NormalizeHookUUID(h.UUID), h.URL, strings.Join(h.Events, " "), s.box.Seal(purposeHookSecret, []byte(h.Secret)), now)
	if err != nil {
		return fmt.Errorf("db: insert webhook: %w", err)
	}
	return nil
}

const webhookColumns = `id, project_id, hook_uuid, url, events, secret, state, retired_at, created_at`

func (s *Store) scanWebhook(row interface{ Scan(...any) error }) (tether.Webhook, error) {
	var (
		h       tether.Webhook
		events  string
		sealed  []byte
		retired sql.NullTime
	)
	if err := row.Scan(&h.ID, &h.ProjectID, &h.UUID, &h.URL, &events, &sealed, &h.State, &retired, &h.CreatedAt); err != nil {
		return tether.Webhook{}, notFound(err)
	}
	secret, err := s.box.Open(purposeHookSecret, sealed)
	if err != nil {
		return tether.Webhook{}, err
	}
	h.Secret, h.Events, h.RetiredAt = string(secret), strings.Fields(events), retired.Time
	return h, nil
}

// ActiveWebhook returns the project's hook in force.
func (s *Store) ActiveWebhook(ctx context.Context, projectID int64) (tether.Webhook, error) {
	return s.scanWebhook(s.readRow(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE project_id = ? AND state = 'active'`, projectID))
}

// ActiveWebhookPublic returns the project's hook in force without opening
// its sealed secret: what pages show.
func (s *Store) ActiveWebhookPublic(ctx context.Context, projectID int64) (tether.Webhook, error) {
	var h tether.Webhook
	var events string
	err := s.readRow(ctx, `SELECT id, project_id, hook_uuid, url, events, state, created_at FROM webhooks
		WHERE project_id = ? AND state = 'active'`, projectID).Scan(&h.ID, &h.ProjectID, &h.UUID, &h.URL, &events, &h.State, &h.CreatedAt)
	h.Events = strings.Fields(events)
	return h, notFound(err)
}

// DeliveryHook returns the project's hook with that uuid if it is active,
// or was replaced after retiredSince (the grace window).
func (s *Store) DeliveryHook(ctx context.Context, projectID int64, hookUUID string, retiredSince time.Time) (tether.Webhook, error) {
	return s.scanWebhook(s.readRow(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE project_id = ? AND hook_uuid = ? AND (state = 'active' OR retired_at > ?)
		ORDER BY state = 'active' DESC LIMIT 1`, projectID, tether.NormalizeHookUUID(hookUUID), retiredSince.UTC()))
}

// RetiringWebhooks returns replaced hooks not yet deleted from Bitbucket
// or still in their grace window.
func (s *Store) RetiringWebhooks(ctx context.Context, projectID int64) ([]tether.Webhook, error) {
	rows, err := s.readRows(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE project_id = ? AND state = 'retiring' ORDER BY id`, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tether.Webhook
	for rows.Next() {
		h, err := s.scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// ReplaceWebhook makes next the project's active hook and marks the
// previous one retiring from now, in one transaction.
func (s *Store) ReplaceWebhook(ctx context.Context, projectID int64, next tether.Webhook, a tether.Audit) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.insertAudit(ctx, tx, a); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhooks SET state = 'retiring', retired_at = ? WHERE project_id = ? AND state = 'active'`, now, projectID); err != nil {
			return err
		}
		next.ProjectID = projectID
		return s.insertWebhook(ctx, tx, next, now)
	})
}

// DeleteWebhook forgets a hook.
func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
	return err
}

// ProjectByHookToken returns the project whose webhook URL ends in token.
func (s *Store) ProjectByHookToken(ctx context.Context, token string) (tether.Project, error) {
	if token == "" {
		return tether.Project{}, tether.ErrNotFound
	}
	return scanProject(s.readRow(ctx, `SELECT `+projectColumns+` FROM projects p
		JOIN users u ON u.id = p.owner_id WHERE p.hook_token = ?`, token))
}

// AcceptDeliveries stores accepted deliveries and their workflows, all in
// one transaction (one commit for many concurrent deliveries). A delivery
// whose request uuid was accepted before is skipped, so a retry is never
// processed twice.
func (s *Store) AcceptDeliveries(ctx context.Context, batch []tether.Accept) ([]tether.AcceptResult, error) {
	results := make([]tether.AcceptResult, len(batch))
	now := s.now()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, a := range batch {
			d := a.Delivery
			res, err := tx.ExecContext(ctx, `INSERT INTO deliveries
				(project_id, request_uuid, hook_uuid, event_key, attempt, status, reason, size, received_at)
				VALUES (?, ?, ?, ?, ?, 'accepted', ?, ?, ?)
				ON CONFLICT (request_uuid) WHERE status = 'accepted' DO NOTHING`,
				d.ProjectID, d.RequestUUID, tether.NormalizeHookUUID(d.HookUUID), d.EventKey, d.Attempt, d.Reason, d.Size, now)
			if err != nil {
				return fmt.Errorf("db: insert delivery: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				results[i].Duplicate = true
				continue
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for _, w := range a.Workflows {
				_, err := tx.ExecContext(ctx, `INSERT INTO workflows
					(project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, message, author, committed_at, created_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					d.ProjectID, id, w.Trigger, w.RefType, w.RefName, w.CommitHash, w.Message, w.Author, nullTime(w.CommittedAt), now)
				if err != nil {
					return fmt.Errorf("db: insert workflow: %w", err)
				}
			}
		}
		return nil
	})
	return results, err
}

// RefuseDelivery records a refused delivery.
func (s *Store) RefuseDelivery(ctx context.Context, d tether.Delivery) error {
	var project any
	if d.ProjectID != 0 {
		project = d.ProjectID
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO deliveries
		(project_id, request_uuid, hook_uuid, event_key, attempt, status, reason, size, received_at)
		VALUES (?, ?, ?, ?, ?, 'refused', ?, ?, ?)`,
		project, d.RequestUUID, tether.NormalizeHookUUID(d.HookUUID), d.EventKey, d.Attempt, d.Reason, d.Size, s.now())
	return err
}

// RecentDeliveries returns a project's latest deliveries, newest first.
func (s *Store) RecentDeliveries(ctx context.Context, projectID int64, limit int) ([]tether.Delivery, error) {
	rows, err := s.readRows(ctx, `SELECT id, coalesce(project_id, 0), request_uuid, hook_uuid, event_key, attempt,
		status, reason, size, received_at FROM deliveries WHERE project_id = ? ORDER BY id DESC LIMIT ?`, projectID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tether.Delivery
	for rows.Next() {
		var d tether.Delivery
		if err := rows.Scan(&d.ID, &d.ProjectID, &d.RequestUUID, &d.HookUUID, &d.EventKey, &d.Attempt,
			&d.Status, &d.Reason, &d.Size, &d.ReceivedAt); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RecentWorkflows returns a project's latest workflows, newest first.
func (s *Store) RecentWorkflows(ctx context.Context, projectID int64, limit int) ([]tether.Workflow, error) {
	rows, err := s.readRows(ctx, `SELECT id, project_id, coalesce(delivery_id, 0), trigger, ref_type, ref_name, commit_hash,
		message, author, committed_at, created_at FROM workflows WHERE project_id = ? ORDER BY id DESC LIMIT ?`, projectID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tether.Workflow
	for rows.Next() {
		var w tether.Workflow
		var committed sql.NullTime
		if err := rows.Scan(&w.ID, &w.ProjectID, &w.DeliveryID, &w.Trigger, &w.RefType, &w.RefName, &w.CommitHash,
			&w.Message, &w.Author, &committed, &w.CreatedAt); err != nil {
			return nil, err
		}
		w.CommittedAt = committed.Time
		out = append(out, w)
	}
	return out, rows.Err()
}

// LastAccepted returns when the project last accepted a delivery (zero if
// never).
func (s *Store) LastAccepted(ctx context.Context, projectID int64) (time.Time, error) {
	var t time.Time
	err := s.readRow(ctx, `SELECT received_at FROM deliveries WHERE project_id = ? AND status = 'accepted'
		ORDER BY id DESC LIMIT 1`, projectID).Scan(&t)
	if err == sql.ErrNoRows {
		return time.Time{}, nil
	}
	return t, err
}
