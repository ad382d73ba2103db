package db

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/internal/secrets"
	"tether/internal/tether"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "tether.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const hookUUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

// A stored key always names its Bitbucket key id, a stored hook its uuid:
// the tables refuse anything else, whoever writes.
func TestPartsNameTheirRemote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t)
	u, _ := s.CreatePasswordUser(ctx, "A", "a@example.com", "x")
	org, _ := s.CreateOrganization(ctx, u.ID, "Org")
	p := tether.Project{OrgID: org.ID, Name: "ws/r", OwnerID: u.ID, RepoUUID: "{r}", Workspace: "ws", RepoSlug: "r", FullName: "ws/r", CloneSSH: "git@x:ws/r.git", HookToken: "tok"}
	key := tether.DeployKey{BitbucketKeyID: 7, PublicKey: "ssh-ed25519 AAAA", Fingerprint: "SHA256:x", PrivateKey: []byte("k")}
	hook := tether.Webhook{UUID: hookUUID, URL: "https://ci/h", Events: []string{"repo:push"}, Secret: "s"}
	for _, tc := range []struct {
		name string
		key  tether.DeployKey
		hook tether.Webhook
	}{
		{"key id 0", func() tether.DeployKey { k := key; k.BitbucketKeyID = 0; return k }(), hook},
		{"empty hook uuid", key, func() tether.Webhook { h := hook; h.UUID = "{}"; return h }()},
	} {
		if _, err := s.CreateProject(ctx, p, tc.key, tc.hook, u.ID); err == nil || !strings.Contains(err.Error(), "CHECK constraint") {
			t.Errorf("%s: stored (%v)", tc.name, err)
		}
	}
	stored, err := s.CreateProject(ctx, p, key, hook, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	zero := key
	zero.BitbucketKeyID = 0
	if err := s.ChangeParts(ctx, stored.ID, tether.PartsChange{Key: &zero}); err == nil {
		t.Fatal("a key with id 0 replaced the one in force")
	}
	if k, err := s.ActiveDeployKeyPublic(ctx, stored.ID); err != nil || k.BitbucketKeyID != 7 {
		t.Fatalf("key in force after the refused change: %+v %v", k, err)
	}
	// Ids are handed out once: a deleted project's is not given again.
	if err := s.DeleteProject(ctx, stored.ID, nil); err != nil {
		t.Fatal(err)
	}
	if next, err := s.ReserveProjectID(ctx); err != nil || next <= stored.ID {
		t.Fatalf("reserved %d after deleting %d (%v)", next, stored.ID, err)
	}
}

// Rows stored before the constraints without their Bitbucket id are
// dropped with an audit entry, the key or hook they replaced is put back
// in force, and replaced keys and hooks become leftovers.
func TestMigrationDropsPartsWithoutTheirRemote(t *testing.T) {
	t.Parallel()
	path, raw := migratedBefore(t, "0013")
	now := time.Now()
	for _, q := range []string{
		`INSERT INTO users (id, name, created_at) VALUES (1, 'A', ?)`,
		`INSERT INTO organizations (id, name, created_at) VALUES (1, 'Org', ?)`,
		// Project 1: Regenerate followed a redirect — key id 0 and an empty
		// hook uuid in force, the replaced ones retiring.
		`INSERT INTO projects (id, org_id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at) VALUES (1, 1, 'ws/a', 1, '{a}', 'ws', 'a', 'ws/a', 'git@x:ws/a.git', ?, ?)`,
		`INSERT INTO deploy_keys (project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at) VALUES (1, 5, 'ssh-ed25519 A', 'SHA256:five', x'00', 'retiring', ?)`,
		`INSERT INTO deploy_keys (project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at) VALUES (1, 0, 'ssh-ed25519 B', 'SHA256:zero', x'00', 'active', ?)`,
		`INSERT INTO webhooks (project_id, hook_uuid, url, events, secret, state, retired_at, created_at) VALUES (1, '` + hookUUID + `', 'u', 'repo:push', x'00', 'retiring', ?, ?)`,
		`INSERT INTO webhooks (project_id, hook_uuid, url, events, secret, state, created_at) VALUES (1, '', 'u', 'repo:push', x'00', 'active', ?)`,
		// Project 2: a key replaced by Regenerate whose delete failed.
		`INSERT INTO projects (id, org_id, name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at) VALUES (2, 1, 'ws/b', 1, '{b}', 'ws', 'b', 'ws/b', 'git@x:ws/b.git', ?, ?)`,
		`INSERT INTO deploy_keys (project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at) VALUES (2, 9, 'ssh-ed25519 C', 'SHA256:nine', x'00', 'retiring', ?)`,
		`INSERT INTO deploy_keys (project_id, bitbucket_key_id, public_key, fingerprint, private_key, state, created_at) VALUES (2, 10, 'ssh-ed25519 D', 'SHA256:ten', x'00', 'active', ?)`,
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
	ctx := context.Background()
	if k, err := s.ActiveDeployKeyPublic(ctx, 1); err != nil || k.BitbucketKeyID != 5 {
		t.Errorf("project 1's key in force: %+v %v, want the replaced one (5) back", k, err)
	}
	if h, err := s.ActiveWebhookPublic(ctx, 1); err != nil || h.UUID != hookUUID {
		t.Errorf("project 1's hook in force: %+v %v", h, err)
	}
	audit, _ := s.AuditLog(ctx, 1, tether.AuditFilter{Limit: 10})
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	if got := strings.Join(actions, ","); !strings.Contains(got, "deploy key forgotten") || !strings.Contains(got, "webhook forgotten") {
		t.Errorf("audit log: %s", got)
	}
	ls, err := s.ProjectLeftovers(ctx, 2)
	if err != nil || len(ls) != 1 || ls[0].RemoteID != "9" || ls[0].Part != tether.PartDeployKey || ls[0].FullName != "ws/b" {
		t.Errorf("project 2's leftovers: %+v %v", ls, err)
	}
	if k, err := s.ActiveDeployKeyPublic(ctx, 2); err != nil || k.BitbucketKeyID != 10 {
		t.Errorf("project 2's key in force: %+v %v", k, err)
	}
	if id, err := s.ReserveProjectID(ctx); err != nil || id != 3 {
		t.Errorf("first id after the migration: %d %v, want 3", id, err)
	}
}

// A create Tether stopped waiting for is watched for (a leftover with no
// remote id); when a check finds the part it was (the same marker attempt
// or key fingerprint), that one part is one leftover: the watch ends,
// and another project's or another attempt's watch stays.
func TestFoundPartEndsItsWatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTemp(t)
	u, _ := s.CreatePasswordUser(ctx, "A", "a@example.com", "x")
	org, err := s.CreateOrganization(ctx, u.ID, "Org")
	if err != nil {
		t.Fatal(err)
	}
	watch := func(part, match string) tether.Leftover {
		return tether.Leftover{OrgID: org.ID, ProjectID: 7, ProjectName: "ws/r", RepoUUID: "{r}", FullName: "ws/r", Part: part,
			Label: "Tether: ws/r [tether:ci/projects/7#" + match + "]", Match: match, Why: "the create never answered"}
	}
	if err := s.AddLeftovers(ctx, []tether.Leftover{watch(tether.PartWebhook, "1f8dfd7a"), watch(tether.PartWebhook, "2222aaaa"),
		watch(tether.PartDeployKey, "SHA256:abc")}); err != nil {
		t.Fatal(err)
	}
	found := watch(tether.PartWebhook, "1f8dfd7a")
	found.RemoteID, found.Why = "{"+hookUUID+"}", "found on the repository by a check"
	key := watch(tether.PartDeployKey, "SHA256:abc")
	key.RemoteID, key.Why = "42", "found on the repository by a check"
	if err := s.AddLeftovers(ctx, []tether.Leftover{found, key}); err != nil {
		t.Fatal(err)
	}
	ls, err := s.ProjectLeftovers(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.Part+" "+l.RemoteID+" "+l.Match)
	}
	want := []string{"webhook  2222aaaa", "webhook " + hookUUID + " 1f8dfd7a", "deploy_key 42 SHA256:abc"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("leftovers\n%q\nwant\n%q", got, want)
	}
}
