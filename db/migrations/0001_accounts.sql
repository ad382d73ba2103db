-- Users, their ways in (password, Bitbucket) and their sessions.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE password_credentials (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email         TEXT      NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT      NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

-- One Bitbucket identity per user and one user per identity. Tokens are
-- AES-GCM sealed (see package secrets); NULL once disconnected.
CREATE TABLE bitbucket_identities (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER   NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    bitbucket_uuid   TEXT      NOT NULL UNIQUE,
    username         TEXT      NOT NULL,
    display_name     TEXT      NOT NULL,
    email            TEXT      NOT NULL DEFAULT '',
    access_token     BLOB,
    refresh_token    BLOB,
    token_expires_at TIMESTAMP,
    scopes           TEXT      NOT NULL DEFAULT '',
    status           TEXT      NOT NULL CHECK (status IN ('connected', 'not_connected')),
    status_reason    TEXT      NOT NULL DEFAULT '',
    connected_at     TIMESTAMP,
    verified_at      TIMESTAMP,
    check_error      TEXT      NOT NULL DEFAULT '',
    checked_at       TIMESTAMP,
    updated_at       TIMESTAMP NOT NULL
);

-- The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
