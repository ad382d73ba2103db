-- Each Bitbucket connection's API budget meter (bitbucket.Meter as JSON):
-- the last hour's calls, a 429's pause, a slow-down. Saved while Tether
-- runs and when it stops, put back when it starts, so a restart does not
-- forget the hour and spend it twice.
CREATE TABLE budget_meters (
    user_id  INTEGER   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    meter    TEXT      NOT NULL,
    saved_at TIMESTAMP NOT NULL
);
