-- Organizations own projects; people are members with a role; invitations
-- bring new members in; the audit log records who did what.
CREATE TABLE organizations (
    id         INTEGER PRIMARY KEY,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE memberships (
    org_id    INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id   INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT      NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- The link carries a random token; only its SHA-256 is stored.
CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    token_hash  BLOB      NOT NULL UNIQUE,
    invited_by  INTEGER   NOT NULL REFERENCES users (id),
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    accepted_by INTEGER REFERENCES users (id),
    accepted_at TIMESTAMP,
    revoked_at  TIMESTAMP
);
CREATE INDEX invitations_org ON invitations (org_id);

-- Who (a person, or Tether itself when actor_id is NULL) did what, to
-- which project, when. Written in the transaction of the change.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    actor_id     INTEGER REFERENCES users (id),
    actor_name   TEXT      NOT NULL,
    action       TEXT      NOT NULL,
    project_id   INTEGER,
    project_name TEXT      NOT NULL DEFAULT '',
    detail       TEXT      NOT NULL DEFAULT '',
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, id);

ALTER TABLE projects ADD COLUMN org_id INTEGER REFERENCES organizations (id);
ALTER TABLE users ADD COLUMN current_org_id INTEGER REFERENCES organizations (id) ON DELETE SET NULL;

-- Existing data: every existing person gets an organization of their own
-- (same id as theirs), is its admin, and their projects move into it.
INSERT INTO organizations (id, name, created_at) SELECT id, name || '''s organization', created_at FROM users;
INSERT INTO memberships (org_id, user_id, role, joined_at) SELECT id, id, 'admin', created_at FROM users;
UPDATE users SET current_org_id = id;
UPDATE projects SET org_id = owner_id;
CREATE INDEX projects_org ON projects (org_id);
