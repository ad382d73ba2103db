-- A stored deploy key always names its key on Bitbucket (an id above 0)
-- and a stored webhook its hook (a uuid): a create answer without them —
-- a redirect followed as a GET, an empty body — names nothing to check,
-- replace or remove, and the tables now refuse it as the client does.
--
-- Rows stored before without them named nothing on Bitbucket: they are
-- dropped, each with an audit entry, and the key or hook they replaced,
-- when still stored as retiring, is put back in force.
INSERT INTO audit_log (org_id, actor_id, actor_name, action, project_id, project_name, detail, created_at)
SELECT p.org_id, NULL, 'Tether', 'deploy key forgotten', p.id, p.name,
       'it was stored without its Bitbucket key id (a redirected create); press Regenerate if the badge is not valid', datetime('now')
FROM deploy_keys k JOIN projects p ON p.id = k.project_id
WHERE k.bitbucket_key_id <= 0 AND p.org_id IS NOT NULL;
DELETE FROM deploy_keys WHERE bitbucket_key_id <= 0;
UPDATE deploy_keys SET state = 'active' WHERE id IN (
    SELECT max(id) FROM deploy_keys k WHERE state = 'retiring'
    AND NOT EXISTS (SELECT 1 FROM deploy_keys a WHERE a.project_id = k.project_id AND a.state = 'active')
    GROUP BY project_id);

INSERT INTO audit_log (org_id, actor_id, actor_name, action, project_id, project_name, detail, created_at)
SELECT p.org_id, NULL, 'Tether', 'webhook forgotten', p.id, p.name,
       'it was stored without its Bitbucket uuid (a redirected create); press Regenerate if the badge is not valid', datetime('now')
FROM webhooks h JOIN projects p ON p.id = h.project_id
WHERE trim(h.hook_uuid, '{} ') = '' AND p.org_id IS NOT NULL;
DELETE FROM webhooks WHERE trim(hook_uuid, '{} ') = '';
UPDATE webhooks SET state = 'active', retired_at = NULL WHERE id IN (
    SELECT max(id) FROM webhooks h WHERE state = 'retiring'
    AND NOT EXISTS (SELECT 1 FROM webhooks a WHERE a.project_id = h.project_id AND a.state = 'active')
    GROUP BY project_id);

CREATE TABLE deploy_keys_checked (
    id               INTEGER PRIMARY KEY,
    project_id       INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    bitbucket_key_id INTEGER   NOT NULL CHECK (bitbucket_key_id > 0),
    public_key       TEXT      NOT NULL,
    fingerprint      TEXT      NOT NULL,
    private_key      BLOB      NOT NULL,
    state            TEXT      NOT NULL CHECK (state IN ('active', 'retiring')),
    created_at       TIMESTAMP NOT NULL
);
INSERT INTO deploy_keys_checked SELECT id, project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at FROM deploy_keys;
DROP TABLE deploy_keys;
ALTER TABLE deploy_keys_checked RENAME TO deploy_keys;
CREATE UNIQUE INDEX deploy_keys_active ON deploy_keys (project_id) WHERE state = 'active';

CREATE TABLE webhooks_checked (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    hook_uuid  TEXT      NOT NULL CHECK (hook_uuid != '' AND hook_uuid NOT GLOB '*[{} ]*'),
    url        TEXT      NOT NULL,
    events     TEXT      NOT NULL,
    secret     BLOB      NOT NULL,
    state      TEXT      NOT NULL CHECK (state IN ('active', 'retiring')),
    retired_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO webhooks_checked SELECT id, project_id, hook_uuid, url, events, secret, state, retired_at, created_at FROM webhooks;
DROP TABLE webhooks;
ALTER TABLE webhooks_checked RENAME TO webhooks;
CREATE UNIQUE INDEX webhooks_active ON webhooks (project_id) WHERE state = 'active';
CREATE INDEX webhooks_project ON webhooks (project_id, hook_uuid);
