-- The full name a project's repository was last seen under on Bitbucket,
-- when it differs from the stored one (a rename or move Tether detected).
ALTER TABLE projects ADD COLUMN moved_to TEXT NOT NULL DEFAULT '';
