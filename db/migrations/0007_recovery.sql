-- Missed builds: workflows Tether starts for branches that changed while
-- deliveries were not arriving, the comparisons still to run, and when
-- Tether was last up.

-- workflows is rebuilt: a recovered workflow has no delivery, and its
-- trigger says it was recovered.
CREATE TABLE workflows_new (
    id           INTEGER PRIMARY KEY,
    project_id   INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    delivery_id  INTEGER REFERENCES deliveries (id) ON DELETE CASCADE,
    trigger      TEXT      NOT NULL CHECK (trigger IN ('push', 'pull_request', 'recovered')),
    ref_type     TEXT      NOT NULL,
    ref_name     TEXT      NOT NULL,
    commit_hash  TEXT      NOT NULL,
    message      TEXT      NOT NULL DEFAULT '',
    author       TEXT      NOT NULL DEFAULT '',
    committed_at TIMESTAMP,
    created_at   TIMESTAMP NOT NULL,
    CHECK ((trigger = 'recovered') = (delivery_id IS NULL))
);
INSERT INTO workflows_new (id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, message, author, committed_at, created_at)
    SELECT id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, message, author, committed_at, created_at FROM workflows;
DROP TABLE workflows;
ALTER TABLE workflows_new RENAME TO workflows;
CREATE INDEX workflows_project ON workflows (project_id, id);
CREATE INDEX workflows_ref ON workflows (project_id, ref_type, ref_name, commit_hash);
-- A (branch, commit) is recovered at most once: the key, not a check, says so.
CREATE UNIQUE INDEX workflows_recovered ON workflows (project_id, ref_name, commit_hash) WHERE trigger = 'recovered';

-- The branches a comparison found without a workflow, until started.
CREATE TABLE missed_branches (
    project_id   INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    branch       TEXT      NOT NULL,
    commit_hash  TEXT      NOT NULL,
    message      TEXT      NOT NULL DEFAULT '',
    author       TEXT      NOT NULL DEFAULT '',
    committed_at TIMESTAMP,
    found_at     TIMESTAMP NOT NULL,
    why          TEXT      NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, branch)
);

-- Comparisons to run, one per project at most.
CREATE TABLE recovery_checks (
    project_id INTEGER   PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    why        TEXT      NOT NULL,
    due_at     TIMESTAMP NOT NULL,
    attempts   INTEGER   NOT NULL DEFAULT 0
);

-- Small named facts about this Tether, e.g. when it was last up.
CREATE TABLE instance_state (
    name  TEXT      PRIMARY KEY,
    at    TIMESTAMP NOT NULL
);
