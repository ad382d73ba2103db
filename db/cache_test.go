package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"tether/internal/secrets"
	"tether/internal/tether"
)

// cacheFixture is a store with one person (a session, an organization they
// administer) and one project with its health, key and hook recorded.
type cacheFixture struct {
	s                  *Store
	user, org, project int64
	session            []byte
	hookUUID           string
	sessionExpires     time.Time
}

func newCacheFixture(t *testing.T) *cacheFixture {
	t.Helper()
	box, err := secrets.NewBox("cache-test-secret-key-at-least-32-characters")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "tether.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f := &cacheFixture{s: s, hookUUID: "0f6a5b7e-3c1d-4e2f-9a8b-7c6d5e4f3a2b"}
	now := s.now()
	f.sessionExpires = now.Add(time.Hour)
	hash := sha256.Sum256([]byte("session-token"))
	f.session = hash[:]
	exec := func(query string, args ...any) int64 {
		t.Helper()
		res, err := s.write.ExecContext(context.Background(), query, args...)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	f.user = exec(`INSERT INTO users (name, created_at) VALUES ('Pat', ?)`, now)
	f.org = exec(`INSERT INTO organizations (name, created_at) VALUES ('Acme', ?)`, now)
	exec(`INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?, ?, 'admin', ?)`, f.org, f.user, now)
	exec(`UPDATE users SET current_org_id = ? WHERE id = ?`, f.org, f.user)
	exec(`INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`, f.session, f.user, now, f.sessionExpires)
	f.project = exec(`INSERT INTO projects (org_id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, hook_token, created_at, updated_at)
		VALUES (?, 'acme/api', ?, '{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}', 'acme', 'api', 'acme/api', 'git@bitbucket.org:acme/api.git', 'hook-token', ?, ?)`,
		f.org, f.user, now, now)
	if err := s.RecordHealth(context.Background(), tether.Health{ProjectID: f.project, Part: tether.PartDeployKey, Status: "valid"}); err != nil {
		t.Fatal(err)
	}
	exec(`INSERT INTO deploy_keys (project_id, bitbucket_key_id, public_key, private_key, fingerprint, state, created_at)
		VALUES (?, 7, 'ssh-ed25519 AAAA', x'00', 'SHA256:first', 'active', ?)`, f.project, now)
	if err := s.tx(context.Background(), func(tx *sql.Tx) error {
		return s.insertWebhook(context.Background(), tx, tether.Webhook{ProjectID: f.project, UUID: f.hookUUID,
			URL: "https://tether.example/hooks/bitbucket/hook-token", Events: []string{"repo:push"}, Secret: "first-secret"}, now)
	}); err != nil {
		t.Fatal(err)
	}
	return f
}

// read is every cached read at once, as one string, so a case can say
// what a change must make visible.
func (f *cacheFixture) read(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	say := func(name string, v any, err error) {
		if errors.Is(err, tether.ErrNotFound) {
			out[name] = "not found"
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = fmtValue(v)
	}
	u, err := f.s.SessionUser(ctx, f.session)
	say("session", u.Name, err)
	ms, err := f.s.Memberships(ctx, f.user)
	names := ""
	for _, m := range ms {
		names += m.Org.Name + ":" + m.Role + " "
	}
	say("memberships", names, err)
	cur, err := f.s.CurrentOrgID(ctx, f.user)
	say("current org", cur, err)
	role, err := f.s.Role(ctx, f.org, f.user)
	say("role", role, err)
	p, err := f.s.Project(ctx, f.project)
	say("project", p.Name+" moved to "+p.MovedTo+" owner "+p.OwnerName, err)
	p, err = f.s.ProjectByHookToken(ctx, "hook-token")
	say("project by hook", p.Name, err)
	h, err := f.s.Health(ctx, f.project, tether.PartDeployKey)
	say("health", h.Status, err)
	k, err := f.s.ActiveDeployKeyPublic(ctx, f.project)
	say("key", k.Fingerprint, err)
	w, err := f.s.DeliveryHook(ctx, f.project, f.hookUUID, f.s.now().Add(-10*time.Minute))
	say("hook", w.Secret+" "+w.State, err)
	return out
}

func fmtValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	panic("fmtValue")
}

// Every cached read sees each kind of write from the next read on:
// updates, deletes, upserts, foreign-key cascades, writes in a
// transaction. Each case changes one thing and says what must show.
func TestCachedReadsSeeTheNextWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name  string
		write func(t *testing.T, f *cacheFixture) error
		want  map[string]string
	}{
		{"logout (delete)", func(t *testing.T, f *cacheFixture) error { return f.s.DeleteSession(ctx, f.session) },
			map[string]string{"session": "not found"}},
		{"rename (update of users)", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `UPDATE users SET name = 'Pat Renamed' WHERE id = ?`, f.user)
			return err
		}, map[string]string{"session": "Pat Renamed", "project": "acme/api moved to  owner Pat Renamed"}},
		{"role changed (transaction)", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES ('Other', ?)`, f.s.now())
			if err != nil {
				return err
			}
			_, err = f.s.write.ExecContext(ctx, `INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?, 2, 'admin', ?)`, f.org, f.s.now())
			if err != nil {
				return err
			}
			return f.s.SetRole(ctx, f.org, f.user, tether.RoleMember, tether.Audit{OrgID: f.org, ActorID: 2, Action: "role"})
		}, map[string]string{"role": "member", "memberships": "Acme:member "}},
		{"organization deleted (cascade to memberships, SET NULL on users)", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `UPDATE projects SET org_id = NULL`)
			if err != nil {
				return err
			}
			_, err = f.s.write.ExecContext(ctx, `DELETE FROM organizations WHERE id = ?`, f.org)
			return err
		}, map[string]string{"memberships": "", "role": "not found", "current org": "0"}},
		{"user deleted (cascade to sessions)", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `DELETE FROM projects`)
			if err != nil {
				return err
			}
			_, err = f.s.write.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, f.user)
			return err
		}, map[string]string{"session": "not found", "memberships": "", "current org": "not found", "role": "not found",
			"project": "not found", "project by hook": "not found", "health": "not found", "key": "not found", "hook": "not found"}},
		{"moved (update of projects)", func(t *testing.T, f *cacheFixture) error {
			return f.s.SetMovedTo(ctx, f.project, "acme/api-2")
		}, map[string]string{"project": "acme/api moved to acme/api-2 owner Pat"}},
		{"check recorded (upsert)", func(t *testing.T, f *cacheFixture) error {
			return f.s.RecordHealth(ctx, tether.Health{ProjectID: f.project, Part: tether.PartDeployKey, Status: "invalid"})
		}, map[string]string{"health": "invalid"}},
		{"key replaced", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `UPDATE deploy_keys SET fingerprint = 'SHA256:second'`)
			return err
		}, map[string]string{"key": "SHA256:second"}},
		{"hook replaced: the old one within its grace", func(t *testing.T, f *cacheFixture) error {
			return f.s.ChangeParts(ctx, f.project, tether.PartsChange{Hook: &tether.Webhook{UUID: "1a2b3c4d-0000-4000-8000-000000000000",
				URL: "https://tether.example/hooks/bitbucket/hook-token", Events: []string{"repo:push"}, Secret: "second-secret"},
				Audit: []tether.Audit{{OrgID: f.org, ActorID: f.user, Action: "regenerate"}}})
		}, map[string]string{"hook": "first-secret retiring"}},
		{"hook deleted", func(t *testing.T, f *cacheFixture) error {
			_, err := f.s.write.ExecContext(ctx, `DELETE FROM webhooks`)
			return err
		}, map[string]string{"hook": "not found"}},
		{"rolled back: nothing changes", func(t *testing.T, f *cacheFixture) error {
			err := f.s.tx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `DELETE FROM sessions`); err != nil {
					return err
				}
				return errors.New("changed my mind")
			})
			if err == nil {
				t.Fatal("the transaction committed")
			}
			return nil
		}, map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newCacheFixture(t)
			before := f.read(t)
			f.read(t) // from the cache now
			if err := tc.write(t, f); err != nil {
				t.Fatal(err)
			}
			after := f.read(t)
			for name, was := range before {
				want, changes := tc.want[name]
				if !changes {
					want = was
				}
				if after[name] != want {
					t.Errorf("%s: %q, want %q (was %q)", name, after[name], want, was)
				}
			}
		})
	}
}

// A cached session ends at its expiry, with no write to tell the cache.
func TestCachedSessionExpires(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	ctx := context.Background()
	if _, err := f.s.SessionUser(ctx, f.session); err != nil {
		t.Fatal(err)
	}
	f.s.now = func() time.Time { return f.sessionExpires.Add(time.Second) }
	if _, err := f.s.SessionUser(ctx, f.session); !errors.Is(err, tether.ErrNotFound) {
		t.Fatalf("an expired cached session: %v, want ErrNotFound", err)
	}
}

// Deliveries, workflows, digests and refusals are written all the time
// and never read through the cache: writing them keeps what is cached.
func TestIngestKeepsTheCache(t *testing.T) {
	t.Parallel()
	f := newCacheFixture(t)
	ctx := context.Background()
	f.read(t)
	caches := map[string]interface{ version() uint64 }{
		"sessions": f.s.hot.sessions, "memberships": f.s.hot.memberships, "roles": f.s.hot.roles,
		"projects": f.s.hot.projects, "hook tokens": f.s.hot.hookTokens, "health": f.s.hot.health,
		"keys": f.s.hot.keys, "hooks": f.s.hot.hooks, "current org": f.s.hot.currentOrg,
	}
	before := map[string]uint64{}
	for name, c := range caches {
		before[name] = c.version()
	}
	sum := sha256.Sum256([]byte("body"))
	if _, err := f.s.AcceptDeliveries(ctx, []tether.Accept{{BodySHA256: sum[:],
		Delivery:  tether.Delivery{ProjectID: f.project, RequestUUID: "r-1", HookUUID: f.hookUUID, EventKey: "repo:push", Attempt: 1},
		Workflows: []tether.Workflow{{Trigger: "push", RefType: "branch", RefName: "main", CommitHash: "abc"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.RecordRefusals(ctx, []tether.Refusal{{ProjectID: f.project, Reason: "bad signature", Count: 1,
		FirstSeen: f.s.now(), LastSeen: f.s.now()}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range caches {
		if c.version() != before[name] {
			t.Errorf("storing a delivery made the %s cache read again", name)
		}
	}
}

// A cache holds at most maxCached rows, whatever keys it is asked for.
func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newCache[int, int](newVersions().of("sessions"))
	for i := range 3 * maxCached {
		if _, err := c.get(i, func() (int, error) { return i, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.m) > maxCached {
		t.Fatalf("%d rows cached, at most %d", len(c.m), maxCached)
	}
	reads := 0
	for range 3 {
		c.get(-1, func() (int, error) { reads++; return 0, tether.ErrNotFound })
	}
	if reads != 3 || len(c.m) > maxCached {
		t.Fatalf("a row that does not exist was cached (%d reads of 3)", reads)
	}
}
