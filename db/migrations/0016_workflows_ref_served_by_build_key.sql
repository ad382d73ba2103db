-- Every delivery wrote four indexes with random keys (request UUID, body
-- digest, and two on the commit): a fifth of each group commit's pages.
-- workflows_ref (project, ref type, ref name, commit) says nothing the
-- build key (project, trigger, ref type, ref name, commit) cannot, when a
-- query names the triggers: "trigger IN ('push', 'pull_request',
-- 'recovered')" (every trigger the table allows) walks the build key
-- three times instead.
DROP INDEX workflows_ref;
