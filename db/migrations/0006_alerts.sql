-- Alerts: where an organization's alerts go, the incidents Tether tracks
-- from what it records, the messages it composed and their deliveries.

-- url and secret are AES-GCM sealed (see package secrets).
CREATE TABLE alert_channels (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind          TEXT      NOT NULL CHECK (kind IN ('email', 'webhook')),
    email_backer  INTEGER   NOT NULL DEFAULT 0,
    url           BLOB,
    secret        BLOB,
    created_by    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at    TIMESTAMP NOT NULL,
    last_sent_at  TIMESTAMP,
    last_error    TEXT      NOT NULL DEFAULT '',
    last_error_at TIMESTAMP
);
CREATE INDEX alert_channels_org ON alert_channels (org_id);
-- One e-mail channel per organization.
CREATE UNIQUE INDEX alert_channels_email ON alert_channels (org_id) WHERE kind = 'email';

-- An incident is open while closed_at is NULL; at most one per subject, so
-- a restart or a second watcher can neither lose nor repeat one.
CREATE TABLE alert_incidents (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id  INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    subject     TEXT      NOT NULL CHECK (subject IN ('deploy_key', 'webhook', 'connection')),
    reason      TEXT      NOT NULL DEFAULT '',
    detail      TEXT      NOT NULL DEFAULT '',
    opened_at   TIMESTAMP NOT NULL,
    notified_at TIMESTAMP NOT NULL,
    closed_at   TIMESTAMP
);
CREATE UNIQUE INDEX alert_incidents_open ON alert_incidents (project_id, subject) WHERE closed_at IS NULL;

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id   INTEGER REFERENCES projects (id) ON DELETE SET NULL,
    incident_id  INTEGER REFERENCES alert_incidents (id) ON DELETE SET NULL,
    kind         TEXT      NOT NULL CHECK (kind IN ('broken', 'recovered', 'reminder', 'test')),
    subject      TEXT      NOT NULL DEFAULT '',
    project_name TEXT      NOT NULL DEFAULT '',
    title        TEXT      NOT NULL,
    body         TEXT      NOT NULL,
    link         TEXT      NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX alerts_org ON alerts (org_id, id);

CREATE TABLE alert_deliveries (
    id              INTEGER PRIMARY KEY,
    alert_id        INTEGER   NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel_id      INTEGER REFERENCES alert_channels (id) ON DELETE SET NULL,
    channel_kind    TEXT      NOT NULL,
    recipients      TEXT      NOT NULL DEFAULT '',
    status          TEXT      NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'demo')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    sent_at         TIMESTAMP,
    last_error      TEXT      NOT NULL DEFAULT ''
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE status = 'pending';
