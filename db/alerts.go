package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"tether/internal/tether"
)

const (
	purposeChannelURL    = "alert_channels.url"
	purposeChannelSecret = "alert_channels.secret"
)

const channelColumns = `id, org_id, kind, email_backer, url, secret, created_at, last_sent_at, last_error, last_error_at`

func (s *Store) scanChannel(row interface{ Scan(...any) error }) (tether.AlertChannel, error) {
	var (
		c              tether.AlertChannel
		url, secret    []byte
		sent, errorred sql.NullTime
	)
	if err := row.Scan(&c.ID, &c.OrgID, &c.Kind, &c.EmailBacker, &url, &secret, &c.CreatedAt, &sent, &c.LastError, &errorred); err != nil {
		return tether.AlertChannel{}, notFound(err)
	}
	c.LastSentAt, c.LastErrorAt = sent.Time, errorred.Time
	if url != nil {
		u, err := s.box.Open(purposeChannelURL, url)
		if err != nil {
			return tether.AlertChannel{}, err
		}
		c.URL = string(u)
	}
	if secret != nil {
		k, err := s.box.Open(purposeChannelSecret, secret)
		if err != nil {
			return tether.AlertChannel{}, err
		}
		c.Secret = string(k)
	}
	return c, nil
}

// CreateAlertChannel stores a channel of an organization (URL and secret
// sealed) with its audit entry. An organization has one e-mail channel at
// most; a second one fails on the table's unique index.
func (s *Store) CreateAlertChannel(ctx context.Context, c tether.AlertChannel, actorID int64, a tether.Audit) (tether.AlertChannel, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var url, secret []byte
		if c.URL != "" {
			url = s.box.Seal(purposeChannelURL, []byte(c.URL))
		}
		if c.Secret != "" {
			secret = s.box.Seal(purposeChannelSecret, []byte(c.Secret))
		}
		var actor any
		if actorID != 0 {
			actor = actorID
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO alert_channels (org_id, kind, email_backer, url, secret, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.OrgID, c.Kind, c.EmailBacker, url, secret, actor, s.now())
		if err != nil {
			return fmt.Errorf("db: insert alert channel: %w", err)
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, a)
	})
	if err != nil {
		return tether.AlertChannel{}, err
	}
	return s.AlertChannel(ctx, c.OrgID, id)
}

// AlertChannels lists an organization's channels, oldest first, with their
// URL and secret opened (for the service to use or mask, never to show).
func (s *Store) AlertChannels(ctx context.Context, orgID int64) ([]tether.AlertChannel, error) {
	rows, err := s.readRows(ctx, `SELECT `+channelColumns+` FROM alert_channels WHERE org_id = ? ORDER BY id`, orgID)
	return collect(rows, err, s.scanChannel)
}

// AlertChannel returns a channel of the organization; ErrNotFound for
// another organization's.
func (s *Store) AlertChannel(ctx context.Context, orgID, id int64) (tether.AlertChannel, error) {
	return s.scanChannel(s.readRow(ctx, `SELECT `+channelColumns+` FROM alert_channels WHERE id = ? AND org_id = ?`, id, orgID))
}

// DeleteAlertChannel removes a channel of the organization with its audit
// entry; ErrNotFound for another organization's.
func (s *Store) DeleteAlertChannel(ctx context.Context, orgID, id int64, a tether.Audit) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM alert_channels WHERE id = ? AND org_id = ?`, id, orgID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tether.ErrNotFound
		}
		return s.insertAudit(ctx, tx, a)
	})
}

// Watch reads, for every project, the recorded health of its parts and the
// status of the connection backing it: what the alert watcher compares with
// its open incidents. It reads only the store.
func (s *Store) Watch(ctx context.Context) ([]tether.Watched, error) {
	projects, err := s.AllProjects(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[int64]int{}
	out := make([]tether.Watched, len(projects))
	for i, p := range projects {
		out[i].Project = p
		byID[p.ID] = i
	}
	rows, err := s.readRows(ctx, `SELECT h.project_id, h.part, h.status, h.reason, h.detail, h.checked_at, h.since,
		coalesce(i.status, ''), coalesce(i.status_reason, '')
		FROM health h JOIN projects p ON p.id = h.project_id
		LEFT JOIN bitbucket_identities i ON i.user_id = p.owner_id ORDER BY h.project_id, h.part`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h tether.Health
		var status, reason string
		if err := rows.Scan(&h.ProjectID, &h.Part, &h.Status, &h.Reason, &h.Detail, &h.CheckedAt, &h.Since, &status, &reason); err != nil {
			return nil, err
		}
		i, ok := byID[h.ProjectID]
		if !ok {
			continue // created after the project list was read
		}
		out[i].Parts = append(out[i].Parts, h)
		out[i].ConnectionStatus, out[i].ConnectionReason = status, reason
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, w := range out {
		if len(w.Parts) > 0 {
			continue
		}
		// No check recorded yet: the connection still counts.
		err := s.readRow(ctx, `SELECT status, status_reason FROM bitbucket_identities WHERE user_id = ?`, w.Project.OwnerID).
			Scan(&out[i].ConnectionStatus, &out[i].ConnectionReason)
		if err != nil && err != sql.ErrNoRows {
			return nil, err
		}
	}
	return out, nil
}

const incidentColumns = `id, org_id, project_id, subject, reason, detail, opened_at, notified_at, closed_at`

func scanIncident(row interface{ Scan(...any) error }) (tether.Incident, error) {
	var i tether.Incident
	var closed sql.NullTime
	err := row.Scan(&i.ID, &i.OrgID, &i.ProjectID, &i.Subject, &i.Reason, &i.Detail, &i.OpenedAt, &i.NotifiedAt, &closed)
	i.ClosedAt = closed.Time
	return i, notFound(err)
}

// OpenIncidents lists every open incident.
func (s *Store) OpenIncidents(ctx context.Context) ([]tether.Incident, error) {
	rows, err := s.readRows(ctx, `SELECT `+incidentColumns+` FROM alert_incidents WHERE closed_at IS NULL ORDER BY id`)
	return collect(rows, err, scanIncident)
}

// OpenIncident opens an incident with its first alert, in one
// transaction. It reports false, storing nothing, when one is already open
// for the subject (the unique index decides, so nothing is ever alerted
// twice).
func (s *Store) OpenIncident(ctx context.Context, inc tether.Incident, alert tether.Alert, audit ...tether.Audit) (bool, error) {
	opened := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		now := s.now()
		res, err := tx.ExecContext(ctx, `INSERT INTO alert_incidents (org_id, project_id, subject, reason, detail, opened_at, notified_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, subject) WHERE closed_at IS NULL DO NOTHING`,
			inc.OrgID, inc.ProjectID, inc.Subject, inc.Reason, inc.Detail, now, now)
		if err != nil {
			return fmt.Errorf("db: open incident: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if alert.IncidentID, err = res.LastInsertId(); err != nil {
			return err
		}
		opened = true
		_, err = s.insertAlert(ctx, tx, alert, audit)
		return err
	})
	return opened && err == nil, err
}

// CloseIncident closes an open incident with its recovery alert and, when
// check is not nil, schedules that comparison of branch heads, in one
// transaction. It reports false, storing nothing, when the incident was
// already closed.
func (s *Store) CloseIncident(ctx context.Context, incidentID int64, alert tether.Alert, check *tether.RecoveryCheck, audit ...tether.Audit) (bool, error) {
	closed := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alert_incidents SET closed_at = ? WHERE id = ? AND closed_at IS NULL`, s.now(), incidentID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		closed = true
		alert.IncidentID = incidentID
		if _, err := s.insertAlert(ctx, tx, alert, audit); err != nil {
			return err
		}
		if check == nil {
			return nil
		}
		return scheduleCheck(ctx, tx, *check)
	})
	return closed && err == nil, err
}

// RemindIncident sends the daily reminder of an incident still open, once:
// only when its last alert is older than before. It reports whether it did.
func (s *Store) RemindIncident(ctx context.Context, incidentID int64, before time.Time, alert tether.Alert, audit ...tether.Audit) (bool, error) {
	reminded := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alert_incidents SET notified_at = ?
			WHERE id = ? AND closed_at IS NULL AND notified_at <= ?`, s.now(), incidentID, before.UTC())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		reminded = true
		alert.IncidentID = incidentID
		_, err = s.insertAlert(ctx, tx, alert, audit)
		return err
	})
	return reminded && err == nil, err
}

// CreateAlert stores an alert outside any incident (a test message) with
// its deliveries and audit entries.
func (s *Store) CreateAlert(ctx context.Context, alert tether.Alert, audit ...tether.Audit) (tether.Alert, error) {
	var id int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = s.insertAlert(ctx, tx, alert, audit)
		return err
	})
	if err != nil {
		return tether.Alert{}, err
	}
	return s.alertByID(ctx, id)
}

// insertAlert writes an alert, its deliveries and audit entries inside tx
// and returns the alert's id.
func (s *Store) insertAlert(ctx context.Context, tx *sql.Tx, a tether.Alert, audit []tether.Audit) (int64, error) {
	now := s.now()
	var project, incident any
	if a.ProjectID != 0 {
		project = a.ProjectID
	}
	if a.IncidentID != 0 {
		incident = a.IncidentID
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO alerts (org_id, project_id, incident_id, kind, subject, project_name, title, body, link, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.OrgID, project, incident, a.Kind, a.Subject, a.ProjectName, a.Title, a.Text, a.Link, now)
	if err != nil {
		return 0, fmt.Errorf("db: insert alert: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for _, d := range a.Deliveries {
		next := sql.NullTime{}
		if d.Status == tether.DeliveryPending {
			next = sql.NullTime{Time: now, Valid: true}
		}
		var channel any
		if d.ChannelID != 0 {
			channel = d.ChannelID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_deliveries
			(alert_id, channel_id, channel_kind, recipients, status, attempts, next_attempt_at, sent_at, last_error)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, channel, d.ChannelKind, d.Recipients, d.Status, d.Attempts, next, nullTime(d.SentAt.UTC()), d.LastError)
		if err != nil {
			return 0, fmt.Errorf("db: insert alert delivery: %w", err)
		}
	}
	return id, s.insertAudit(ctx, tx, audit...)
}

const alertColumns = `a.id, a.org_id, coalesce(a.project_id, 0), coalesce(a.incident_id, 0), a.kind, a.subject, a.project_name,
	a.title, a.body, a.link, a.created_at`

func scanAlert(row interface{ Scan(...any) error }) (tether.Alert, error) {
	var a tether.Alert
	err := row.Scan(&a.ID, &a.OrgID, &a.ProjectID, &a.IncidentID, &a.Kind, &a.Subject, &a.ProjectName, &a.Title, &a.Text, &a.Link, &a.CreatedAt)
	return a, notFound(err)
}

const deliveryColumns = `d.id, d.alert_id, coalesce(d.channel_id, 0), d.channel_kind, d.recipients, d.status, d.attempts,
	d.next_attempt_at, d.sent_at, d.last_error`

func scanAlertDelivery(row interface{ Scan(...any) error }) (tether.AlertDelivery, error) {
	var d tether.AlertDelivery
	var next, sent sql.NullTime
	err := row.Scan(&d.ID, &d.AlertID, &d.ChannelID, &d.ChannelKind, &d.Recipients, &d.Status, &d.Attempts, &next, &sent, &d.LastError)
	d.NextAttemptAt, d.SentAt = next.Time, sent.Time
	return d, notFound(err)
}

func (s *Store) alertByID(ctx context.Context, id int64) (tether.Alert, error) {
	a, err := scanAlert(s.write.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts a WHERE a.id = ?`, id))
	if err != nil {
		return a, err
	}
	rows, err := s.write.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries d WHERE d.alert_id = ? ORDER BY d.id`, id)
	a.Deliveries, err = collect(rows, err, scanAlertDelivery)
	return a, err
}

// Outbox returns an organization's latest alerts, newest first, each with
// its deliveries.
func (s *Store) Outbox(ctx context.Context, orgID int64, limit int) ([]tether.Alert, error) {
	rows, err := s.readRows(ctx, `SELECT `+alertColumns+` FROM alerts a WHERE a.org_id = ? ORDER BY a.id DESC LIMIT ?`, orgID, limit)
	out, err := collect(rows, err, scanAlert)
	if err != nil || len(out) == 0 {
		return out, err
	}
	index := make(map[int64]int, len(out))
	for i, a := range out {
		index[a.ID] = i
	}
	rows, err = s.readRows(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id
		WHERE a.org_id = ? AND a.id >= ? ORDER BY d.id`, orgID, out[len(out)-1].ID)
	deliveries, err := collect(rows, err, scanAlertDelivery)
	if err != nil {
		return nil, err
	}
	for _, d := range deliveries {
		if i, ok := index[d.AlertID]; ok {
			out[i].Deliveries = append(out[i].Deliveries, d)
		}
	}
	return out, nil
}

// DueAlertDeliveries returns pending deliveries whose next attempt is due
// at now, oldest first, with their alert and channel (secrets opened).
// A delivery whose channel was removed is marked failed and skipped.
func (s *Store) DueAlertDeliveries(ctx context.Context, now time.Time, limit int) ([]tether.OutgoingAlert, error) {
	rows, err := s.write.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM alert_deliveries d
		WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?`, now.UTC(), limit)
	due, err := collect(rows, err, scanAlertDelivery)
	if err != nil {
		return nil, err
	}
	var out []tether.OutgoingAlert
	for _, d := range due {
		a, err := scanAlert(s.write.QueryRowContext(ctx, `SELECT `+alertColumns+` FROM alerts a WHERE a.id = ?`, d.AlertID))
		if err != nil {
			return nil, err
		}
		c, err := s.scanChannel(s.write.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM alert_channels WHERE id = ?`, d.ChannelID))
		if errors.Is(err, tether.ErrNotFound) {
			if _, err := s.write.ExecContext(ctx, `UPDATE alert_deliveries SET status = 'failed', last_error = 'the channel was removed'
				WHERE id = ?`, d.ID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, tether.OutgoingAlert{Alert: a, Delivery: d, Channel: c})
	}
	return out, nil
}

// MarkAlertSent records a successful delivery on it and its channel, with
// its audit entries.
func (s *Store) MarkAlertSent(ctx context.Context, deliveryID, channelID int64, audit ...tether.Audit) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET status = 'sent', sent_at = ?, attempts = attempts + 1,
			next_attempt_at = NULL, last_error = '' WHERE id = ?`, now, deliveryID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alert_channels SET last_sent_at = ?, last_error = '', last_error_at = NULL
			WHERE id = ?`, now, channelID); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, audit...)
	})
}

// MarkAlertFailed records a failed attempt (message safe to show) on the
// delivery and its channel: it is tried again at next, or never again when
// next is zero.
func (s *Store) MarkAlertFailed(ctx context.Context, deliveryID, channelID int64, message string, next time.Time) error {
	now := s.now()
	status := tether.DeliveryPending
	if next.IsZero() {
		status = tether.DeliveryFailed
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE alert_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?,
			last_error = ? WHERE id = ?`, status, nullTime(next.UTC()), message, deliveryID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE alert_channels SET last_error = ?, last_error_at = ? WHERE id = ?`, message, now, channelID)
		return err
	})
}

// MarkChannelTested records the outcome of a "Send test" on the channel:
// an empty message is a success.
func (s *Store) MarkChannelTested(ctx context.Context, channelID int64, message string) error {
	now := s.now()
	if message == "" {
		_, err := s.write.ExecContext(ctx, `UPDATE alert_channels SET last_sent_at = ?, last_error = '', last_error_at = NULL WHERE id = ?`, now, channelID)
		return err
	}
	_, err := s.write.ExecContext(ctx, `UPDATE alert_channels SET last_error = ?, last_error_at = ? WHERE id = ?`, message, now, channelID)
	return err
}
