package db

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"tether/internal/secrets"
	"tether/internal/tether"
)

// A database made before organizations existed migrates: each person gets
// an organization of their own, as its admin, and their projects move in.
func TestMigrationMovesProjectsIntoOrganizations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tether.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)`)
	for v, name := range []string{"0001_accounts.sql", "0002_projects.sql", "0003_webhooks.sql", "0004_moves.sql"} {
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?)`, v+1, time.Now())
	}
	now := time.Now()
	raw.Exec(`INSERT INTO users (id, name, created_at) VALUES (7, 'Old Timer', ?)`, now)
	raw.Exec(`INSERT INTO projects (id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at)
		VALUES (3, 'ws/repo', 7, '{u}', 'ws', 'repo', 'ws/repo', 'git@x:ws/repo.git', ?, ?)`, now, now)
	raw.Close()

	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	s, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	ms, err := s.Memberships(ctx, 7)
	if err != nil || len(ms) != 1 || ms[0].Role != tether.RoleAdmin || ms[0].Org.Name != "Old Timer's organization" {
		t.Fatalf("memberships %+v %v", ms, err)
	}
	p, err := s.Project(ctx, 3)
	if err != nil || p.OrgID != ms[0].Org.ID {
		t.Fatalf("project %+v %v", p, err)
	}
	if cur, _ := s.CurrentOrgID(ctx, 7); cur != ms[0].Org.ID {
		t.Fatalf("current organization %d", cur)
	}
}

// Rebuilding workflows for recovered ones keeps every workflow and its
// delivery, and from then on a push needs a delivery while a recovered
// workflow must have none.
func TestMigrationKeepsWorkflows(t *testing.T) {
	path, raw := migratedBefore(t, "0007")
	now := time.Now()
	for _, q := range []string{
		`INSERT INTO users (id, name, created_at) VALUES (1, 'A', ?)`,
		`INSERT INTO projects (id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at) VALUES (1, 'ws/r', 1, '{u}', 'ws', 'r', 'ws/r', 'git@x:ws/r.git', ?, ?)`,
		`INSERT INTO deliveries (id, project_id, request_uuid, status, received_at) VALUES (5, 1, 'req', 'accepted', ?)`,
		`INSERT INTO workflows (id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (9, 1, 5, 'push', 'branch', 'main', 'abc', ?)`,
	} {
		if _, err := raw.Exec(q, now, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	s, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws, err := s.RecentWorkflows(context.Background(), 1, 10)
	if err != nil || len(ws) != 1 || ws[0].ID != 9 || ws[0].DeliveryID != 5 || ws[0].Trigger != "push" {
		t.Fatalf("workflows %+v %v", ws, err)
	}
	for _, q := range []string{
		`INSERT INTO workflows (project_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (1, 'push', 'branch', 'x', 'def', datetime('now'))`,
		`INSERT INTO workflows (project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (1, 5, 'recovered', 'branch', 'x', 'def', datetime('now'))`,
	} {
		if _, err := s.write.ExecContext(context.Background(), q); err == nil {
			t.Errorf("accepted: %s", q)
		}
	}
}

// The workflow key keeps the first workflow of each build a database made
// before it holds (the duplicates a title edit or the same push started),
// and refuses another from then on, while other builds stay.
func TestMigrationKeysWorkflowsByBuild(t *testing.T) {
	path, raw := migratedBefore(t, "0015")
	now := time.Now()
	for _, q := range []string{
		`INSERT INTO users (id, name, created_at) VALUES (1, 'A', ?)`,
		`INSERT INTO organizations (id, name, created_at) VALUES (1, 'O', ?)`,
		`INSERT INTO projects (id, org_id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at) VALUES (1, 1, 'ws/r', 1, '{u}', 'ws', 'r', 'ws/r', 'git@x:ws/r.git', ?, ?)`,
		`INSERT INTO deliveries (id, project_id, request_uuid, status, received_at) VALUES (5, 1, 'a', 'accepted', ?)`,
		`INSERT INTO deliveries (id, project_id, request_uuid, status, received_at) VALUES (6, 1, 'b', 'accepted', ?)`,
		`INSERT INTO workflows (id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (9, 1, 5, 'pull_request', 'branch', 'develop', '0704fc5beccc', ?)`,
		`INSERT INTO workflows (id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (10, 1, 6, 'pull_request', 'branch', 'develop', '0704fc5beccc', ?)`,
		`INSERT INTO workflows (id, project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at) VALUES (11, 1, 6, 'push', 'branch', 'develop', '0704fc5beccc', ?)`,
	} {
		if _, err := raw.Exec(q, now, now); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	s, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ws, err := s.RecentWorkflows(context.Background(), 1, 10)
	if err != nil || len(ws) != 2 || ws[0].ID != 11 || ws[1].ID != 9 {
		t.Fatalf("workflows %+v %v", ws, err)
	}
	if _, err := s.write.ExecContext(context.Background(), `INSERT INTO workflows (project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at)
		VALUES (1, 6, 'push', 'branch', 'develop', '0704fc5beccc', datetime('now'))`); err == nil {
		t.Error("a second workflow of the same build was stored")
	}
}

// migratedBefore is a database file with the migrations before first
// applied (and recorded), open for a test to fill as that Tether would.
func migratedBefore(t *testing.T, first string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tether.db")
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	raw.Exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)`)
	names, _ := migrations.ReadDir("migrations")
	for _, n := range names {
		if n.Name() >= first {
			break
		}
		body, _ := migrations.ReadFile("migrations/" + n.Name())
		if _, err := raw.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", n.Name(), err)
		}
		var v int
		fmt.Sscanf(n.Name(), "%d", &v)
		raw.Exec(`INSERT INTO schema_migrations VALUES (?, ?)`, v, time.Now())
	}
	return path, raw
}
