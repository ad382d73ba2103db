-- The audit log is filtered by project and by person, and those filters
-- list every project and person it names (deleted projects and people who
-- left included): both walk these indexes instead of the whole log.
CREATE INDEX audit_log_org_project ON audit_log (org_id, project_id, id);
CREATE INDEX audit_log_org_actor ON audit_log (org_id, actor_id, id);
