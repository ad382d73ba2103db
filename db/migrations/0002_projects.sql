-- Projects, each tied to one Bitbucket repository by its UUID, with the
-- deploy key Tether registered on it and the last health of each part.
CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    name        TEXT      NOT NULL,
    owner_id    INTEGER   NOT NULL REFERENCES users (id),
    repo_uuid   TEXT      NOT NULL UNIQUE,
    workspace   TEXT      NOT NULL,
    repo_slug   TEXT      NOT NULL,
    full_name   TEXT      NOT NULL,
    clone_ssh   TEXT      NOT NULL,
    html_url    TEXT      NOT NULL DEFAULT '',
    is_private  INTEGER   NOT NULL DEFAULT 1,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX projects_owner ON projects (owner_id);

-- A project has one active key; during Regenerate the old one is kept as
-- 'retiring' until Bitbucket has deleted it.
CREATE TABLE deploy_keys (
    id               INTEGER PRIMARY KEY,
    project_id       INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    bitbucket_key_id INTEGER   NOT NULL,
    public_key       TEXT      NOT NULL,
    fingerprint      TEXT      NOT NULL,
    private_key      BLOB      NOT NULL,
    state            TEXT      NOT NULL CHECK (state IN ('active', 'retiring')),
    created_at       TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX deploy_keys_active ON deploy_keys (project_id) WHERE state = 'active';

-- The last check of each part of a project's integration.
CREATE TABLE health (
    project_id INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    part       TEXT      NOT NULL CHECK (part IN ('deploy_key', 'webhook')),
    status     TEXT      NOT NULL CHECK (status IN ('valid', 'invalid', 'unknown')),
    reason     TEXT      NOT NULL DEFAULT '',
    detail     TEXT      NOT NULL DEFAULT '',
    checked_at TIMESTAMP NOT NULL,
    since      TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, part)
);
