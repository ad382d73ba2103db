-- What Tether put on a repository and no longer wants there — a replaced
-- deploy key or webhook, one undone after a failure, those of a deleted
-- project — or may have created without hearing back (remote_id empty:
-- match_on then holds the key's fingerprint or the hook's marker attempt).
-- A row is written in the transaction that lets go of the part and
-- deleted when Bitbucket confirms it gone; until then the cleanup retries
-- it. project_id has no foreign key: a deleted project's leftovers stay.
CREATE TABLE leftovers (
    id           INTEGER PRIMARY KEY,
    org_id       INTEGER   NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    project_id   INTEGER   NOT NULL,
    project_name TEXT      NOT NULL,
    owner_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    repo_uuid    TEXT      NOT NULL,
    full_name    TEXT      NOT NULL,
    part         TEXT      NOT NULL CHECK (part IN ('deploy_key', 'webhook')),
    remote_id    TEXT      NOT NULL DEFAULT '',
    label        TEXT      NOT NULL DEFAULT '',
    match_on     TEXT      NOT NULL DEFAULT '',
    why          TEXT      NOT NULL DEFAULT '',
    attempts     INTEGER   NOT NULL DEFAULT 0,
    next_at      TIMESTAMP NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    CHECK (remote_id != '' OR match_on != '')
);
CREATE UNIQUE INDEX leftovers_remote ON leftovers (repo_uuid, part, remote_id) WHERE remote_id != '';
CREATE INDEX leftovers_due ON leftovers (next_at);

-- Keys replaced before are leftovers now; replaced hooks too (their rows
-- stay for the delivery grace window). A hook Bitbucket already deleted
-- is settled by the cleanup's first try (404).
INSERT INTO leftovers (org_id, project_id, project_name, owner_id, repo_uuid, full_name, part, remote_id, label, why, next_at, created_at)
SELECT p.org_id, p.id, p.name, p.owner_id, p.repo_uuid, p.full_name, 'deploy_key', CAST(k.bitbucket_key_id AS TEXT), k.fingerprint,
       'replaced by Regenerate', datetime('now'), datetime('now')
FROM deploy_keys k JOIN projects p ON p.id = k.project_id WHERE k.state = 'retiring' AND p.org_id IS NOT NULL;
DELETE FROM deploy_keys WHERE state = 'retiring';
INSERT OR IGNORE INTO leftovers (org_id, project_id, project_name, owner_id, repo_uuid, full_name, part, remote_id, why, next_at, created_at)
SELECT p.org_id, p.id, p.name, p.owner_id, p.repo_uuid, p.full_name, 'webhook', h.hook_uuid,
       'replaced by Regenerate', datetime('now'), datetime('now')
FROM webhooks h JOIN projects p ON p.id = h.project_id WHERE h.state = 'retiring' AND p.org_id IS NOT NULL;

-- Project ids are handed out before a project is stored, since its deploy
-- key and webhook carry the id in their marker, and never again: a
-- marker names one project for good.
CREATE TABLE project_ids (id INTEGER PRIMARY KEY AUTOINCREMENT);
INSERT INTO project_ids (id) SELECT max(id) FROM projects HAVING max(id) IS NOT NULL;
DELETE FROM project_ids;
