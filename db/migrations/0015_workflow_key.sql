-- A workflow is keyed by what it would build: the project, its trigger,
-- the ref (type and name) and the commit. A delivery that names a build
-- already made (a pull request's title edited, the same push delivered
-- again under another body) starts nothing; the key, not a check, says so.

-- Before the key, such deliveries started the same build again: keep the
-- first workflow of each build, the one that ran.
DELETE FROM workflows WHERE id NOT IN (
    SELECT min(id) FROM workflows GROUP BY project_id, trigger, ref_type, ref_name, commit_hash
);
CREATE UNIQUE INDEX workflows_build ON workflows (project_id, trigger, ref_type, ref_name, commit_hash);
