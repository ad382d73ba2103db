-- Bitbucket API retirements Tether ran into (410 Gone naming a CHANGE-nnnn),
-- one row per change.
CREATE TABLE deprecations (
    change     TEXT      PRIMARY KEY,
    message    TEXT      NOT NULL DEFAULT '',
    method     TEXT      NOT NULL DEFAULT '',
    path       TEXT      NOT NULL DEFAULT '',
    first_seen TIMESTAMP NOT NULL,
    last_seen  TIMESTAMP NOT NULL,
    count      INTEGER   NOT NULL DEFAULT 1
);
