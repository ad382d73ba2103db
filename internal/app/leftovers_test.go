package app_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"golang.org/x/crypto/ssh"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
	"tether/internal/tether"
)

// partsOn lists what the repository holds of one part: deploy key ids or
// hook uuids (without braces, lower case).
func partsOn(env *apptest.Env, fullName, part string) []string {
	var out []string
	if part == "deploy-key" {
		for _, k := range env.Emulator.DeployKeys(fullName) {
			out = append(out, strconv.Itoa(k.ID))
		}
		return out
	}
	for _, h := range env.Emulator.Hooks(fullName) {
		out = append(out, tether.NormalizeHookUUID(h.UUID))
	}
	return out
}

// storedPart is the key id or hook uuid in force, as stored.
func storedPart(t *testing.T, env *apptest.Env, part string) string {
	t.Helper()
	var v string
	q := `SELECT CAST(bitbucket_key_id AS TEXT) FROM deploy_keys WHERE state = 'active'`
	if part == "webhook" {
		q = `SELECT hook_uuid FROM webhooks WHERE state = 'active'`
	}
	rawDB(t, env).QueryRow(q).Scan(&v)
	return v
}

// shortBackoff makes the Cleanup retry leftovers within milliseconds.
func shortBackoff(env *apptest.Env) {
	env.App.Projects.Cleanup.Backoff = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
}

// cleanUntil runs the Cleanup until done.
func cleanUntil(t *testing.T, env *apptest.Env, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal("the cleanup did not finish")
		}
		env.App.Projects.Cleanup.Step(context.Background())
		time.Sleep(20 * time.Millisecond)
	}
}

// auditEntries are the audit log's entries as "action: text".
func auditEntries(c *apptest.Client) []string {
	var out []string
	c.Get("/team/audit").Doc.Find(`[data-testid="audit-entry"]`).Each(func(_ int, s *goquery.Selection) {
		a, _ := s.Attr("data-action")
		out = append(out, a+": "+strings.Join(strings.Fields(s.Text()), " "))
	})
	return out
}

func hasEntry(entries []string, action string, says ...string) bool {
	for _, e := range entries {
		if !strings.HasPrefix(e, action+": ") {
			continue
		}
		all := true
		for _, s := range says {
			all = all && strings.Contains(e, s)
		}
		if all {
			return true
		}
	}
	return false
}

// Regenerate while Bitbucket answers late or unclearly: Bitbucket makes
// the new key or hook anyway, and in the end exactly one remains — the
// one Tether stored — and the person was told what happened.
func TestRegenerateWhenBitbucketAnswersLate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, part, api string
		failure         emulator.Failure
		status          int
		says            string
		adopted         bool
	}{
		{"hook created after the client gave up", "webhook", "hooks",
			emulator.Failure{Stall: 1500 * time.Millisecond, Commit: true}, http.StatusBadGateway, "If Bitbucket creates the webhook after all, Tether removes it", false},
		{"key created after the client gave up", "deploy-key", "deploy-keys",
			emulator.Failure{Stall: 1500 * time.Millisecond, Commit: true}, http.StatusBadGateway, "If Bitbucket creates the deploy key after all, Tether removes it", false},
		{"hook created, answered 500", "webhook", "hooks",
			emulator.Failure{Status: 500, Commit: true}, http.StatusOK, "had created the new webhook; Tether found it", true},
		{"key created, answered 500", "deploy-key", "deploy-keys",
			emulator.Failure{Status: 500, Commit: true}, http.StatusOK, "had created the new deploy key; Tether found it", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, c := withRepo(t, apptest.Options{BitbucketTimeout: 500 * time.Millisecond})
			shortBackoff(env)
			project := create(t, c, "alice/api")
			old := storedPart(t, env, tc.part)
			f := tc.failure
			f.PathPrefix, f.Method, f.Times = "/repositories/alice/api/"+tc.api, http.MethodPost, 1
			env.Emulator.FailAPI(f)
			p := c.HTMX(http.MethodPost, project.URL.Path+"/"+tc.part+"/regenerate", project, nil)
			msg := p.Text(`[data-testid="` + tc.part + `-message"]`)
			if p.Status != tc.status || !strings.Contains(msg, tc.says) {
				t.Fatalf("Regenerate: %d %q", p.Status, msg)
			}
			if b := p.Doc.Find(`[data-testid="health-badge"]`); b.AttrOr("data-status", "") != "valid" {
				t.Fatalf("badge after Regenerate: %s", b.AttrOr("data-status", ""))
			}
			if !tc.adopted {
				// Bitbucket finishes the create after Tether gave up.
				deadline := time.Now().Add(5 * time.Second)
				for len(partsOn(env, "alice/api", tc.part)) != 2 {
					if time.Now().After(deadline) {
						t.Fatal("the late create never happened")
					}
					time.Sleep(20 * time.Millisecond)
				}
				cleanUntil(t, env, func() bool { return len(partsOn(env, "alice/api", tc.part)) == 1 })
			}
			left, inForce := partsOn(env, "alice/api", tc.part), storedPart(t, env, tc.part)
			if len(left) != 1 || left[0] != inForce || (inForce == old) == tc.adopted {
				t.Fatalf("on Bitbucket %v, in force %s (old %s)", left, inForce, old)
			}
			if !tc.adopted && !hasEntry(auditEntries(c), strings.ReplaceAll(tc.part, "-", " ")+" removed", "after Tether stopped waiting") {
				t.Errorf("no audit entry for the removed leftover: %q", auditEntries(c))
			}
			if tc.part == "webhook" {
				res, _ := env.Emulator.Push("alice/api", "main", "after the late create", "alice")
				if len(res.Deliveries) != 1 || res.Deliveries[0].Status != http.StatusAccepted {
					t.Errorf("push: %+v", res.Deliveries)
				}
			}
		})
	}
}

// Deleting a project while Bitbucket answers 500 to DELETE says, where the
// person pressed Delete, what was left on Bitbucket, and the audit log
// records it; the Cleanup removes it once Bitbucket lets it.
func TestDeleteWhileBitbucketRefusesDeletes(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	shortBackoff(env)
	project := create(t, c, "alice/api")
	key, hook := storedPart(t, env, "deploy-key"), storedPart(t, env, "webhook")
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api", Method: http.MethodDelete, Status: 500})
	p := c.HTMX(http.MethodPost, project.URL.Path+"/delete", project, nil)
	msg := p.Text(`[data-testid="delete-message"]`)
	if p.Status != http.StatusOK || p.Header.Get("HX-Redirect") != "" || !p.Has(`[data-testid="back-to-projects"]`) {
		t.Fatalf("delete: %d %v\n%s", p.Status, p.Header, p.Body)
	}
	for _, want := range []string{"The project is deleted", "deploy key " + key, "webhook {" + hook + "}", "alice/api", "Bitbucket answered 500"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if len(partsOn(env, "alice/api", "deploy-key")) != 1 || len(partsOn(env, "alice/api", "webhook")) != 1 {
		t.Fatal("Bitbucket removed something it answered 500 for")
	}
	entries := auditEntries(c)
	if !hasEntry(entries, "project deleted") || !hasEntry(entries, "left on Bitbucket", "deploy key "+key, "alice/api") || !hasEntry(entries, "left on Bitbucket", "webhook {"+hook+"}") {
		t.Fatalf("audit log: %q", entries)
	}
	if p := c.Get(project.URL.Path); p.Status != http.StatusNotFound {
		t.Fatalf("the deleted project's page: %d", p.Status)
	}
	env.Emulator.ClearFailures()
	cleanUntil(t, env, func() bool {
		return len(partsOn(env, "alice/api", "deploy-key"))+len(partsOn(env, "alice/api", "webhook")) == 0
	})
	entries = auditEntries(c)
	if !hasEntry(entries, "deploy key removed", key) || !hasEntry(entries, "webhook removed", hook) {
		t.Errorf("audit log after the cleanup: %q", entries)
	}
}

// A write Bitbucket redirects (the repository moved to another workspace)
// is an error naming the move: the old key or hook stays in force on
// Bitbucket and in the store, and no key id 0 or empty hook uuid is ever
// stored.
func TestRedirectedWriteKeepsTheOldPart(t *testing.T) {
	t.Parallel()
	for _, part := range []string{"deploy-key", "webhook"} {
		t.Run(part, func(t *testing.T) {
			t.Parallel()
			env, c := withRepo(t, apptest.Options{})
			project := create(t, c, "alice/api")
			old := storedPart(t, env, part)
			env.Emulator.AddWorkspaceMember("acme", "alice", true)
			env.Emulator.MoveRepository("alice/api", "acme")
			p := c.HTMX(http.MethodPost, project.URL.Path+"/"+part+"/regenerate", project, nil)
			msg := p.Text(`[data-testid="` + part + `-message"]`)
			if p.Status != http.StatusConflict || !strings.Contains(msg, "was moved or renamed") || !strings.Contains(msg, "Update URL") {
				t.Fatalf("Regenerate: %d %q", p.Status, msg)
			}
			if left := partsOn(env, "acme/api", part); len(left) != 1 || left[0] != old || storedPart(t, env, part) != old {
				t.Fatalf("on Bitbucket %v, stored %s, want %s", left, storedPart(t, env, part), old)
			}
			db := rawDB(t, env)
			if n := count(t, db, `SELECT count(*) FROM deploy_keys WHERE bitbucket_key_id <= 0`) + count(t, db, `SELECT count(*) FROM webhooks WHERE hook_uuid = ''`); n != 0 {
				t.Fatalf("%d parts stored without their Bitbucket id", n)
			}
			if s := checkPart(t, c, project, part); s != "valid" {
				t.Fatalf("%s after the refused write: %s", part, s)
			}
		})
	}
}

func checkPart(t *testing.T, c *apptest.Client, project *apptest.Page, part string) string {
	t.Helper()
	p := c.HTMX(http.MethodPost, project.URL.Path+"/"+part+"/check", project, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	return p.Doc.Find(`[data-testid="health-badge"]`).AttrOr("data-status", "")
}

// A check that reads a part from Bitbucket anyway reports the extra keys
// and hooks Tether made for the project, for the same API calls, and the
// Cleanup removes them; nobody else's are reported or touched.
func TestCheckReportsExtraTetherParts(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	id, _ := strconv.ParseInt(strings.TrimPrefix(project.URL.Path, "/projects/"), 10, 64)
	mark := tether.Marker{Instance: strings.TrimPrefix(env.URL, "http://"), ProjectID: id, Attempt: "0badc0de"}
	hookURL := project.Text(`[data-testid="hook-url"]`)
	extraHook, _ := env.Emulator.AddHook("alice/api", emulator.Hook{Description: mark.Label("alice/api"), URL: hookURL, Active: true, Events: []string{"repo:push"}, Secret: "x"})
	theirHook, _ := env.Emulator.AddHook("alice/api", emulator.Hook{Description: "Someone's CI", URL: "https://ci.example.org/hook", Active: true, Events: []string{"repo:push"}})
	extraKey, _ := env.Emulator.AddDeployKey("alice/api", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO", mark.Label("alice/api"))
	theirKey, _ := env.Emulator.AddDeployKey("alice/api", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO6q8FbhM42puSUKuBiK24ahANMwc994MDHj+GuPBlvK", "Tether: alice/api [tether:other.example.com/projects/1]")

	before := env.Emulator.APICallsOf("alice").Total
	p := c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil)
	if calls := env.Emulator.APICallsOf("alice").Total - before; calls != 3 {
		t.Errorf("Check now cost %d API calls, want 3 as before", calls)
	}
	detail := p.Text(`[data-testid="health-detail"]`)
	if !strings.Contains(detail, "1 more webhook Tether made for this project ({"+tether.NormalizeHookUUID(extraHook.UUID)+"})") ||
		strings.Contains(detail, tether.NormalizeHookUUID(theirHook.UUID)) {
		t.Errorf("webhook detail: %q", detail)
	}
	keyDetail := c.Get(project.URL.Path).Text(`#deploy-key [data-testid="health-detail"]`)
	if !strings.Contains(keyDetail, "1 more deploy key Tether made for this project (id "+strconv.Itoa(extraKey.ID)+")") {
		t.Errorf("deploy key detail: %q", keyDetail)
	}
	cleanUntil(t, env, func() bool {
		return len(env.Emulator.Hooks("alice/api")) == 2 && len(env.Emulator.DeployKeys("alice/api")) == 2
	})
	hooks, keys := partsOn(env, "alice/api", "webhook"), partsOn(env, "alice/api", "deploy-key")
	if !strings.Contains(strings.Join(hooks, " "), tether.NormalizeHookUUID(theirHook.UUID)) || !strings.Contains(strings.Join(keys, " "), strconv.Itoa(theirKey.ID)) {
		t.Fatalf("someone else's parts were removed: hooks %v keys %v", hooks, keys)
	}
	if s := checkPart(t, c, project, "webhook"); s != "valid" {
		t.Fatalf("webhook after the cleanup: %s", s)
	}
}

// Tether removes only the key it let go of, never one that took its id
// since: the demo's Bitbucket numbers keys from 1 again after a restart
// (Bitbucket itself never reuses an id), so after Grant access and
// Regenerate the old key's id may name Tether's own new key, or a key
// somebody added. Both stay, through Regenerate and the Cleanup; the old
// key counts as gone.
func TestRemovalNeverTakesAKeyThatTookTheOldID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		someone bool // a person's own key takes the old id
	}{{"Tether's new key takes the old id", false}, {"somebody's key takes the old id", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, c := withRepo(t, apptest.Options{NoSchedule: true})
			project := create(t, c, "alice/api")
			shortBackoff(env)
			old := env.Emulator.DeployKeys("alice/api")[0].ID
			env.Emulator.DeleteDeployKey("alice/api", old) // gone with the emulator's restart
			env.Emulator.NumberDeployKeysFrom(old)
			theirs := 0
			if tc.someone {
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				pub, _ := ssh.NewPublicKey(priv.Public())
				k, err := env.Emulator.AddDeployKey("alice/api", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))+" alice@laptop", "alice's laptop")
				if err != nil || k.ID != old {
					t.Fatalf("somebody's key: id %d, %v; want id %d", k.ID, err, old)
				}
				theirs = k.ID
			}
			p := c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/regenerate", project, nil)
			if s, _ := keyStatus(p); s != "valid" {
				t.Fatalf("Regenerate: %q\n%s", s, p.Body)
			}
			ours := storedPart(t, env, "deploy-key")
			cleanUntil(t, env, func() bool {
				var n int
				rawDB(t, env).QueryRow(`SELECT count(*) FROM leftovers`).Scan(&n)
				return n == 0
			})
			want := []string{ours}
			if tc.someone {
				want = []string{strconv.Itoa(theirs), ours}
			}
			if got := partsOn(env, "alice/api", "deploy-key"); !slices.Equal(got, want) {
				t.Fatalf("keys on alice/api after Regenerate and the Cleanup: %v, want %v (ours %s)", got, want, ours)
			}
			if s, _ := keyStatus(c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/check", project, nil)); s != "valid" {
				t.Fatalf("after the Cleanup the deploy key is %q", s)
			}
		})
	}
}
