-- A project's name is its repository's full name and follows it through
-- renames and moves. Before this, Update URL and Change left the old name
-- behind; bring such names up to date.
UPDATE projects SET name = full_name WHERE name != full_name;
