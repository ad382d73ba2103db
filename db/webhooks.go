package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"tether/internal/tether"
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
// The hook is cached with its secret opened (the receiver asks for it on
// every delivery); the grace window is applied to what was read.
func (s *Store) DeliveryHook(ctx context.Context, projectID int64, hookUUID string, retiredSince time.Time) (tether.Webhook, error) {
	uuid := tether.NormalizeHookUUID(hookUUID)
	h, err := s.hot.hooks.get(hookKey{projectID, uuid}, func() (tether.Webhook, error) {
		return s.scanWebhook(s.readRow(ctx, `SELECT `+webhookColumns+` FROM webhooks
			WHERE project_id = ? AND hook_uuid = ? ORDER BY state = 'active' DESC, retired_at DESC LIMIT 1`, projectID, uuid))
	})
	if err != nil {
		return tether.Webhook{}, err
	}
	if h.State != "active" && !h.RetiredAt.After(retiredSince) {
		return tether.Webhook{}, tether.ErrNotFound
	}
	h.Events = slices.Clone(h.Events)
	return h, nil
}

// ForgetRetiredWebhooks forgets hooks replaced before cutoff: past the
// grace window their deliveries are refused, and what is left of them on
// Bitbucket is a leftover of its own.
func (s *Store) ForgetRetiredWebhooks(ctx context.Context, cutoff time.Time) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM webhooks WHERE state = 'retiring' AND retired_at < ?`, cutoff.UTC())
	return err
}

// ProjectByHookToken returns the project whose webhook URL ends in token.
func (s *Store) ProjectByHookToken(ctx context.Context, token string) (tether.Project, error) {
	if token == "" {
		return tether.Project{}, tether.ErrNotFound
	}
	return s.hot.hookTokens.get(token, func() (tether.Project, error) {
		return scanProject(s.readRow(ctx, `SELECT `+projectColumns+` FROM projects p
			JOIN users u ON u.id = p.owner_id WHERE p.hook_token = ?`, token))
	})
}

// The statements every accepted delivery runs, prepared once on the
// writer (prepareIngest) so a group commit does not parse them again.
const (
	// A request uuid accepted before is a duplicate: the insert does
	// nothing (deliveries_request), so the check and the insert are one
	// probe of that index.
	sqlInsertDelivery = `INSERT INTO deliveries
		(project_id, request_uuid, hook_uuid, event_key, attempt, status, reason, size, received_at)
		VALUES (?, ?, ?, ?, ?, 'accepted', ?, ?, ?)
		ON CONFLICT (request_uuid) WHERE status = 'accepted' DO NOTHING`
	// The digest is claimed unless it is younger than the replay window.
	sqlClaimDigest = `INSERT INTO delivery_digests (project_id, body_sha256, received_at) VALUES (?, ?, ?)
		ON CONFLICT (project_id, body_sha256) DO UPDATE SET received_at = excluded.received_at
		WHERE delivery_digests.received_at <= ?`
	// A replay's row goes again: it was only inserted to be claimed first.
	sqlUnstoreDelivery = `DELETE FROM deliveries WHERE id = ?`
	sqlInsertWorkflow  = `INSERT INTO workflows
		(project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, message, author, committed_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (project_id, trigger, ref_type, ref_name, commit_hash) DO NOTHING`
)

// ingestStmts are those statements prepared on the writer.
type ingestStmts struct{ delivery, claim, unstore, workflow *sql.Stmt }

func (s *Store) prepareIngest(ctx context.Context) error {
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{{&s.ingest.delivery, sqlInsertDelivery}, {&s.ingest.claim, sqlClaimDigest},
		{&s.ingest.unstore, sqlUnstoreDelivery}, {&s.ingest.workflow, sqlInsertWorkflow}} {
		st, err := s.write.db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("db: prepare ingest: %w", err)
		}
		*p.st = st
	}
	return nil
}

// AcceptDeliveries stores accepted deliveries and their workflows, all in
// one transaction (one commit for many concurrent deliveries). A delivery
// whose request uuid was accepted before is skipped (Duplicate), so a retry
// is never processed twice; so is one whose body the project accepted
// within tether.ReplayWindow (Replay), so a captured delivery sent again
// under a fresh X-Request-UUID starts nothing. A workflow whose build
// (project, trigger, ref, commit: the workflows_build key) exists is not
// started again; the delivery is stored with "no new commit" in its
// reason (tether.Workflow.AlreadyBuilt).
//
// Everything a delivery writes — its row, its workflows, its body's
// digest — is in this one transaction: one fsync for the whole batch.
func (s *Store) AcceptDeliveries(ctx context.Context, batch []tether.Accept) ([]tether.AcceptResult, error) {
	results := make([]tether.AcceptResult, len(batch))
	now := s.now()
	replaySince := now.Add(-tether.ReplayWindow)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		insertDelivery, claim := tx.StmtContext(ctx, s.ingest.delivery), tx.StmtContext(ctx, s.ingest.claim)
		unstore, insertWorkflow := tx.StmtContext(ctx, s.ingest.unstore), tx.StmtContext(ctx, s.ingest.workflow)
		for i, a := range batch {
			d := a.Delivery
			res, err := insertDelivery.ExecContext(ctx,
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
			res, err = claim.ExecContext(ctx, d.ProjectID, a.BodySHA256, now, replaySince)
			if err != nil {
				return fmt.Errorf("db: claim delivery digest: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if _, err := unstore.ExecContext(ctx, id); err != nil {
					return fmt.Errorf("db: drop replayed delivery: %w", err)
				}
				results[i].Duplicate, results[i].Replay = true, true
				continue
			}
			var notes []string
			for _, w := range a.Workflows {
				res, err := insertWorkflow.ExecContext(ctx,
					d.ProjectID, id, w.Trigger, w.RefType, w.RefName, w.CommitHash, w.Message, w.Author, nullTime(w.CommittedAt), now)
				if err != nil {
					return fmt.Errorf("db: insert workflow: %w", err)
				}
				if n, _ := res.RowsAffected(); n == 0 {
					notes = append(notes, w.AlreadyBuilt())
					continue
				}
				results[i].Started++
			}
			results[i].Reason = d.Reason
			if len(notes) > 0 {
				if d.Reason != "" {
					notes = append(notes, d.Reason)
				}
				results[i].Reason = tether.JoinReasons(notes)
				if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET reason = ? WHERE id = ?`, results[i].Reason, id); err != nil {
					return fmt.Errorf("db: note delivery reason: %w", err)
				}
			}
		}
		return nil
	})
	return results, err
}

// RecordRefusals adds refusal counts to each project's, in one
// transaction: counts add up, first and last seen widen, and the newest
// samples are kept (tether.Refusal.Add). A refusal for a project deleted
// meanwhile is dropped.
func (s *Store) RecordRefusals(ctx context.Context, refusals []tether.Refusal) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, r := range refusals {
			stored, err := scanRefusal(tx.QueryRowContext(ctx, `SELECT `+refusalColumns+` FROM delivery_refusals
				WHERE project_id = ? AND reason = ?`, r.ProjectID, r.Reason))
			if err != nil && !errors.Is(err, tether.ErrNotFound) {
				return err
			}
			stored.ProjectID, stored.Reason = r.ProjectID, r.Reason
			stored.Add(r)
			samples, err := json.Marshal(stored.Samples)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO delivery_refusals (project_id, reason, count, first_seen, last_seen, samples)
				SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM projects WHERE id = ?)
				ON CONFLICT (project_id, reason) DO UPDATE SET count = excluded.count, first_seen = excluded.first_seen,
				last_seen = excluded.last_seen, samples = excluded.samples`,
				stored.ProjectID, stored.Reason, stored.Count, stored.FirstSeen.UTC(), stored.LastSeen.UTC(), string(samples), stored.ProjectID)
			if err != nil {
				return fmt.Errorf("db: record refusals: %w", err)
			}
		}
		return nil
	})
}

const refusalColumns = `project_id, reason, count, first_seen, last_seen, samples`

func scanRefusal(row interface{ Scan(...any) error }) (tether.Refusal, error) {
	var (
		r       tether.Refusal
		samples string
	)
	if err := row.Scan(&r.ProjectID, &r.Reason, &r.Count, &r.FirstSeen, &r.LastSeen, &samples); err != nil {
		return tether.Refusal{}, notFound(err)
	}
	if err := json.Unmarshal([]byte(samples), &r.Samples); err != nil {
		return tether.Refusal{}, fmt.Errorf("db: refusal samples: %w", err)
	}
	return r, nil
}

// Refusals returns the project's refusal counts, the most recent first.
func (s *Store) Refusals(ctx context.Context, projectID int64) ([]tether.Refusal, error) {
	rows, err := s.readRows(ctx, `SELECT `+refusalColumns+` FROM delivery_refusals
		WHERE project_id = ? ORDER BY last_seen DESC`, projectID)
	return collect(rows, err, scanRefusal)
}

// RecentDeliveries returns a project's latest deliveries, newest first.
func (s *Store) RecentDeliveries(ctx context.Context, projectID int64, limit int) ([]tether.Delivery, error) {
	rows, err := s.readRows(ctx, `SELECT id, coalesce(project_id, 0), request_uuid, hook_uuid, event_key, attempt,
		status, reason, size, received_at FROM deliveries WHERE project_id = ? AND status = 'accepted' ORDER BY id DESC LIMIT ?`, projectID, limit)
	return collect(rows, err, func(row rowScanner) (tether.Delivery, error) {
		var d tether.Delivery
		err := row.Scan(&d.ID, &d.ProjectID, &d.RequestUUID, &d.HookUUID, &d.EventKey, &d.Attempt,
			&d.Status, &d.Reason, &d.Size, &d.ReceivedAt)
		return d, err
	})
}

// RecentWorkflows returns a project's latest workflows, newest first.
func (s *Store) RecentWorkflows(ctx context.Context, projectID int64, limit int) ([]tether.Workflow, error) {
	rows, err := s.readRows(ctx, `SELECT id, project_id, coalesce(delivery_id, 0), trigger, ref_type, ref_name, commit_hash,
		message, author, committed_at, created_at FROM workflows WHERE project_id = ? ORDER BY id DESC LIMIT ?`, projectID, limit)
	return collect(rows, err, func(row rowScanner) (tether.Workflow, error) {
		var w tether.Workflow
		var committed sql.NullTime
		err := row.Scan(&w.ID, &w.ProjectID, &w.DeliveryID, &w.Trigger, &w.RefType, &w.RefName, &w.CommitHash,
			&w.Message, &w.Author, &committed, &w.CreatedAt)
		w.CommittedAt = committed.Time
		return w, err
	})
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

// Retention: the queries that find what to prune run on the readers; each
// delete is one short write transaction of at most a batch of rows, so
// pruning never holds the writer for long.

// ExpiredDeliveries returns the ids of up to limit of the oldest
// deliveries received before cutoff. Ids grow with time, so it reads the
// table from its start and stops at the first younger delivery.
func (s *Store) ExpiredDeliveries(ctx context.Context, cutoff time.Time, limit int) ([]int64, error) {
	return s.expired(ctx, `SELECT id, received_at FROM deliveries ORDER BY id LIMIT ?`, cutoff, limit)
}

// ExpiredWorkflows is ExpiredDeliveries for workflows (by created_at).
func (s *Store) ExpiredWorkflows(ctx context.Context, cutoff time.Time, limit int) ([]int64, error) {
	return s.expired(ctx, `SELECT id, created_at FROM workflows ORDER BY id LIMIT ?`, cutoff, limit)
}

func (s *Store) expired(ctx context.Context, query string, cutoff time.Time, limit int) ([]int64, error) {
	rows, err := s.readRows(ctx, query, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var (
			id int64
			at time.Time
		)
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		if !at.Before(cutoff) {
			break
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// SurplusDeliveries returns the ids of up to limit of the project's
// deliveries beyond its newest keep.
func (s *Store) SurplusDeliveries(ctx context.Context, projectID int64, keep, limit int) ([]int64, error) {
	return s.ids(ctx, `SELECT id FROM deliveries WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`, projectID, limit, keep)
}

// SurplusWorkflows is SurplusDeliveries for workflows.
func (s *Store) SurplusWorkflows(ctx context.Context, projectID int64, keep, limit int) ([]int64, error) {
	return s.ids(ctx, `SELECT id FROM workflows WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`, projectID, limit, keep)
}

// ProjectIDs returns every project's id.
func (s *Store) ProjectIDs(ctx context.Context) ([]int64, error) {
	return s.ids(ctx, `SELECT id FROM projects ORDER BY id`)
}

func (s *Store) ids(ctx context.Context, query string, args ...any) ([]int64, error) {
	return queryAll(ctx, s, scanID, query, args...)
}

// DeleteDeliveries deletes the deliveries and, with them, the workflows
// they started.
func (s *Store) DeleteDeliveries(ctx context.Context, ids []int64) error {
	return s.deleteIDs(ctx, "deliveries", ids)
}

// DeleteWorkflows deletes the workflows.
func (s *Store) DeleteWorkflows(ctx context.Context, ids []int64) error {
	return s.deleteIDs(ctx, "workflows", ids)
}

func (s *Store) deleteIDs(ctx context.Context, table string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	_, err := s.write.ExecContext(ctx, `DELETE FROM `+table+` WHERE id IN (?`+strings.Repeat(`, ?`, len(ids)-1)+`)`, args...)
	if err != nil {
		return fmt.Errorf("db: prune %s: %w", table, err)
	}
	return nil
}

// PruneDigests deletes up to limit body digests older than cutoff and
// returns how many it deleted.
func (s *Store) PruneDigests(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM delivery_digests WHERE (project_id, body_sha256) IN
		(SELECT project_id, body_sha256 FROM delivery_digests WHERE received_at < ? LIMIT ?)`, cutoff.UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("db: prune digests: %w", err)
	}
	return res.RowsAffected()
}
