-- E-mail sign-up refuses an address that belongs to any account, including
-- the Bitbucket e-mail of one made through Bitbucket: look it up by index.
CREATE INDEX bitbucket_identities_email ON bitbucket_identities (email COLLATE NOCASE);
