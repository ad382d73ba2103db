-- Webhooks, the deliveries Bitbucket sends to them, and the workflows
-- those start.

-- The random path token of a project's webhook URL: the URL reveals no
-- internal id.
ALTER TABLE projects ADD COLUMN hook_token TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX projects_hook_token ON projects (hook_token) WHERE hook_token != '';

-- A project has one active hook; after Regenerate the old one is kept as
-- 'retiring' for a grace window so deliveries already in flight from it
-- are still accepted.
CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    hook_uuid  TEXT      NOT NULL,
    url        TEXT      NOT NULL,
    events     TEXT      NOT NULL,
    secret     BLOB      NOT NULL,
    state      TEXT      NOT NULL CHECK (state IN ('active', 'retiring')),
    retired_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhooks_active ON webhooks (project_id) WHERE state = 'active';
CREATE INDEX webhooks_project ON webhooks (project_id, hook_uuid);

-- Every delivery, accepted or refused. An accepted delivery's request
-- uuid is unique: a retry is acknowledged, not processed again.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    project_id   INTEGER REFERENCES projects (id) ON DELETE CASCADE,
    request_uuid TEXT      NOT NULL DEFAULT '',
    hook_uuid    TEXT      NOT NULL DEFAULT '',
    event_key    TEXT      NOT NULL DEFAULT '',
    attempt      INTEGER   NOT NULL DEFAULT 0,
    status       TEXT      NOT NULL CHECK (status IN ('accepted', 'refused')),
    reason       TEXT      NOT NULL DEFAULT '',
    size         INTEGER   NOT NULL DEFAULT 0,
    received_at  TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX deliveries_request ON deliveries (request_uuid) WHERE status = 'accepted';
CREATE INDEX deliveries_project ON deliveries (project_id, id);

CREATE TABLE workflows (
    id           INTEGER PRIMARY KEY,
    project_id   INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    delivery_id  INTEGER   NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    trigger      TEXT      NOT NULL CHECK (trigger IN ('push', 'pull_request')),
    ref_type     TEXT      NOT NULL,
    ref_name     TEXT      NOT NULL,
    commit_hash  TEXT      NOT NULL,
    message      TEXT      NOT NULL DEFAULT '',
    author       TEXT      NOT NULL DEFAULT '',
    committed_at TIMESTAMP,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX workflows_project ON workflows (project_id, id);
