-- Bounded growth: refusals are counted, accepted bodies remembered for a
-- day, and old deliveries, workflows and sessions cheap to prune.

-- Refused deliveries are counted per project and reason — how many, first
-- and last seen, the latest few samples (JSON) — instead of stored one row
-- each: a stream of forged deliveries costs no disk and never pushes
-- accepted ones out of a project's list. Refusals for no project (an
-- unknown hook URL) are not written at all.
CREATE TABLE delivery_refusals (
    project_id INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    reason     TEXT      NOT NULL,
    count      INTEGER   NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen  TIMESTAMP NOT NULL,
    samples    TEXT      NOT NULL DEFAULT '[]',
    PRIMARY KEY (project_id, reason)
) WITHOUT ROWID;

INSERT INTO delivery_refusals (project_id, reason, count, first_seen, last_seen)
SELECT project_id, substr(reason, 1, 200), count(*), min(received_at), max(received_at)
FROM deliveries WHERE status = 'refused' AND project_id IS NOT NULL
GROUP BY project_id, substr(reason, 1, 200);
DELETE FROM deliveries WHERE status = 'refused';

-- The SHA-256 of each body a project accepted in the last 24 hours: the
-- same body again, under a fresh X-Request-UUID, is a replay and starts
-- nothing. Rows older than a day are pruned.
CREATE TABLE delivery_digests (
    project_id  INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    body_sha256 BLOB      NOT NULL,
    received_at TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, body_sha256)
) WITHOUT ROWID;
CREATE INDEX delivery_digests_received ON delivery_digests (received_at);

-- Deleting a delivery deletes its workflows (ON DELETE CASCADE), which
-- needs them found by delivery.
CREATE INDEX workflows_delivery ON workflows (delivery_id);

-- Expired sessions are pruned in batches, found by when they expire.
CREATE INDEX sessions_expires ON sessions (expires_at);
