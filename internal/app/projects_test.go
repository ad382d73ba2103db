package app_test

import (
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
)

// withRepo connects alice, who administers her workspace holding the
// private repository alice/api.
func withRepo(t *testing.T, opts apptest.Options) (*apptest.Env, *apptest.Client) {
	t.Helper()
	opts.NoSchedule = true // tests drive checks explicitly
	env := apptest.Start(t, opts)
	// They break Bitbucket and press Check now at once: every press checks.
	env.App.Health.Coalesce = 0
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	env.Emulator.AddRepository("alice", "site", false)
	return env, c
}

// create presses "Create project" for the repository in the picker and
// returns the project page.
func create(t *testing.T, c *apptest.Client, fullName string) *apptest.Page {
	t.Helper()
	picker := c.Get("/projects/new")
	p := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {fullName}})
	if p.Status != http.StatusCreated {
		t.Fatalf("create %s: %d\n%s", fullName, p.Status, p.Body)
	}
	return c.Get(p.Header.Get("HX-Redirect"))
}

func keyStatus(p *apptest.Page) (status, reason string) {
	b := p.Doc.Find(`#deploy-key [data-testid="health-badge"]`).First()
	s, _ := b.Attr("data-status")
	r, _ := b.Attr("data-reason")
	return s, r
}

// writableDB opens Tether's database for a test to break it on purpose.
func writableDB(t *testing.T, env *apptest.Env) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.DataDir, "tether.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestCreateProjectFromPrivateRepository(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	picker := c.Get("/projects/new")
	rows := picker.Doc.Find(`[data-testid="repository"]`)
	if rows.Length() != 2 {
		t.Fatalf("picker lists %d repositories, want 2\n%s", rows.Length(), picker.Body)
	}
	api := picker.Doc.Find(`[data-repository="alice/api"]`)
	if !strings.Contains(api.Text(), "Private") || !strings.Contains(picker.Doc.Find(`[data-repository="alice/site"]`).Text(), "Public") {
		t.Fatal("visibility not marked")
	}
	search := c.HTMX(http.MethodGet, "/projects/new/repositories?q=SIT", picker, nil)
	if n := search.Doc.Find(`[data-testid="repository"]`).Length(); n != 1 || !search.Has(`[data-repository="alice/site"]`) {
		t.Fatalf("search for SIT gave %d rows", n)
	}

	p := create(t, c, "alice/api")
	if status, _ := keyStatus(p); status != "valid" {
		t.Fatalf("new project's key is %q\n%s", status, p.Body)
	}
	keys := env.Emulator.DeployKeys("alice/api")
	if want := "Tether: alice/api [tether:" + strings.TrimPrefix(env.URL, "http://") + "/projects/1]"; len(keys) != 1 || keys[0].Label != want {
		t.Fatalf("deploy keys on Bitbucket: %+v", keys)
	}
	shown := p.Text(`[data-testid="public-key"]`)
	if !strings.HasPrefix(keys[0].Key, strings.Join(strings.Fields(shown)[:2], " ")) {
		t.Fatalf("page shows %q, Bitbucket has %q", shown, keys[0].Key)
	}
	if !strings.HasPrefix(p.Text(`[data-testid="fingerprint"]`), "SHA256:") {
		t.Fatal("no fingerprint shown")
	}
	if strings.Contains(p.Body, "PRIVATE KEY") {
		t.Fatal("the private key is on the page")
	}
	db := rawDB(t, env)
	var sealed []byte
	var uuid, clone string
	db.QueryRow(`SELECT private_key FROM deploy_keys`).Scan(&sealed)
	db.QueryRow(`SELECT repo_uuid, clone_ssh FROM projects`).Scan(&uuid, &clone)
	if len(sealed) == 0 || strings.Contains(string(sealed), "PRIVATE KEY") {
		t.Fatal("private key not sealed at rest")
	}
	if !strings.HasPrefix(uuid, "{") || clone == "" {
		t.Fatalf("project stored uuid %q clone %q", uuid, clone)
	}
	if strings.Contains(env.Logs.String(), "PRIVATE KEY") {
		t.Fatal("the private key was logged")
	}
	// The picker now marks the repository as used, and refuses it again.
	picker = c.Get("/projects/new")
	if !picker.Doc.Find(`[data-repository="alice/api"]`).Find(`[data-testid="used"]`).Is("*") {
		t.Fatal("used repository not marked")
	}
	again := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/api"}})
	if again.Status != http.StatusConflict || !strings.Contains(again.Text(`[data-testid="error"]`), "already has a project") {
		t.Fatalf("second project for the same repository: %d %s", again.Status, again.Body)
	}
	if n := len(env.Emulator.DeployKeys("alice/api")); n != 1 {
		t.Fatalf("%d keys after the refused second project", n)
	}
	list := c.Get("/projects")
	if list.Doc.Find(`[data-testid="projects"] tbody tr`).Length() != 1 {
		t.Fatal("project list does not show the project")
	}
}

func TestPickerListsAllPages(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	env.Emulator.AddWorkspace("big", "Big")
	env.Emulator.AddWorkspaceMember("big", "alice", false)
	for i := range 35 {
		env.Emulator.AddRepository("big", "repo-"+string(rune('a'+i/10))+string(rune('0'+i%10)), true)
	}
	p := c.Get("/projects/new")
	if n := p.Doc.Find(`[data-testid="repository"]`).Length(); n != 37 {
		t.Fatalf("picker lists %d repositories, want 37", n)
	}
}

func TestCreateProjectErrors(t *testing.T) {
	t.Parallel()
	t.Run("no connection", func(t *testing.T) {
		env := apptest.Start(t, apptest.Options{})
		c := env.Client()
		c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
		picker := c.Get("/projects/new")
		if !strings.Contains(picker.Text(`[data-testid="error"]`), "Bitbucket is not connected") {
			t.Fatalf("picker without connection:\n%s", picker.Body)
		}
		p := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/api"}})
		if p.Status != http.StatusForbidden || !strings.Contains(p.Text(`[data-testid="error"]`), "Bitbucket is not connected") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
	})
	t.Run("not an admin", func(t *testing.T) {
		env, c := withRepo(t, apptest.Options{})
		env.Emulator.AddWorkspace("acme", "Acme")
		env.Emulator.AddWorkspaceMember("acme", "alice", false)
		env.Emulator.AddRepository("acme", "infra", true)
		p := c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), url.Values{"repository": {"acme/infra"}})
		if p.Status != http.StatusForbidden || !strings.Contains(p.Text(`[data-testid="error"]`), "need admin rights on acme/infra") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		assertNoProject(t, env, "acme/infra")
	})
	t.Run("bitbucket fails", func(t *testing.T) {
		env, c := withRepo(t, apptest.Options{})
		env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: "POST", Status: 500})
		p := c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), url.Values{"repository": {"alice/api"}})
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="error"]`), "Nothing was changed") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		assertNoProject(t, env, "alice/api")
	})
	t.Run("store fails", func(t *testing.T) {
		env, c := withRepo(t, apptest.Options{})
		if _, err := writableDB(t, env).Exec(`CREATE TRIGGER fail_project BEFORE INSERT ON projects BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
			t.Fatal(err)
		}
		p := c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), url.Values{"repository": {"alice/api"}})
		if p.Status != http.StatusInternalServerError {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if strings.Contains(p.Body, "injected") {
			t.Fatal("internal error shown to the person")
		}
		assertNoProject(t, env, "alice/api")
	})
	t.Run("unknown repository", func(t *testing.T) {
		env, c := withRepo(t, apptest.Options{})
		p := c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), url.Values{"repository": {"alice/nope"}})
		if p.Status != http.StatusNotFound || !strings.Contains(p.Text(`[data-testid="error"]`), "no repository alice/nope") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		assertNoProject(t, env, "alice/nope")
	})
}

// assertNoProject checks nothing was left behind: no project row, no key.
func assertNoProject(t *testing.T, env *apptest.Env, fullName string) {
	t.Helper()
	db := rawDB(t, env)
	if n := count(t, db, `SELECT count(*) FROM projects`) + count(t, db, `SELECT count(*) FROM deploy_keys`); n != 0 {
		t.Fatalf("%d rows left behind", n)
	}
	if keys := env.Emulator.DeployKeys(fullName); len(keys) != 0 {
		t.Fatalf("deploy keys left on Bitbucket: %+v", keys)
	}
}

// checkKey presses Check now on the Deploy Key row.
func checkKey(t *testing.T, c *apptest.Client, project *apptest.Page) *apptest.Page {
	t.Helper()
	p := c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/check", project, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	return p
}

func TestDeployKeyHealth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		opts           apptest.Options
		breakIt        func(env *apptest.Env)
		status, reason string
	}{
		{"removed from the repository", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
		}, "invalid", "removed from the repository"},
		{"oauth revoked", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
		}, "invalid", "OAuth permissions revoked"},
		{"owner lost access", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.SetRepoPermission("alice", "alice/api", "")
		}, "invalid", "owner no longer has access to the repository"},
		{"owner lost admin", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.SetRepoPermission("alice", "alice/api", "read")
		}, "invalid", "owner no longer has access to the repository"},
		{"key material differs", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.ReplaceDeployKeyMaterial("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID,
				"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO someone-else")
		}, "invalid", "key on Bitbucket differs from ours"},
		{"ssh permission denied", apptest.Options{ForeignSSH: true}, func(env *apptest.Env) {}, "invalid", "SSH Permission denied (publickey)"},
		{"bitbucket 500", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.FailAPI(emulator.Failure{Status: 500})
		}, "unknown", "could not check"},
		{"rate limited", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.FailAPI(emulator.Failure{Status: 429, RetryAfter: 600})
		}, "unknown", "could not check"},
		{"ssh unreachable", apptest.Options{}, func(env *apptest.Env) {
			env.Emulator.CloseSSH()
		}, "unknown", "could not check"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, c := withRepo(t, tc.opts)
			picker := c.Get("/projects/new")
			p := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/api"}})
			if p.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", p.Status, p.Body)
			}
			project := c.Get(p.Header.Get("HX-Redirect"))
			if s, _ := keyStatus(project); !tc.opts.ForeignSSH && s != "valid" {
				t.Fatalf("fresh key %q", s)
			}
			tc.breakIt(env)
			row := checkKey(t, c, project)
			status, reason := keyStatus(row)
			if status != tc.status || reason != tc.reason {
				t.Fatalf("got %s/%q, want %s/%q\n%s", status, reason, tc.status, tc.reason, row.Text(`[data-testid="health-detail"]`))
			}
			if row.Text(`[data-testid="health-detail"]`) == "" {
				t.Fatal("no detail said")
			}
			// The poll shows the same, from the store.
			poll := c.HTMX(http.MethodGet, project.URL.Path+"/deploy-key", project, nil)
			if s, r := keyStatus(poll); s != status || r != reason {
				t.Fatalf("poll shows %s/%q", s, r)
			}
		})
	}
}

// The badge poll reads stored state: it answers at once while Bitbucket
// stalls.
func TestBadgePollNeverWaitsOnBitbucket(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{Cadence: &fastCadence})
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	project := create(t, c, "alice/api")
	env.Emulator.FailAPI(emulator.Failure{Stall: 30 * time.Second})
	c.HTTP.Timeout = 3 * time.Second
	for range 3 {
		p := c.HTMX(http.MethodGet, project.URL.Path+"/deploy-key", project, nil)
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("poll during a stall shows %q", s)
		}
	}
}

func TestRegenerateDeployKey(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*apptest.Env, *apptest.Client, *apptest.Page, emulator.DeployKey) {
		env, c := withRepo(t, apptest.Options{})
		project := create(t, c, "alice/api")
		return env, c, project, env.Emulator.DeployKeys("alice/api")[0]
	}
	regenerate := func(c *apptest.Client, project *apptest.Page) *apptest.Page {
		return c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/regenerate", project, nil)
	}
	activeKeyID := func(t *testing.T, env *apptest.Env) int {
		var id int
		rawDB(t, env).QueryRow(`SELECT bitbucket_key_id FROM deploy_keys WHERE state = 'active'`).Scan(&id)
		return id
	}

	t.Run("success", func(t *testing.T) {
		env, c, project, old := setup(t)
		env.Emulator.DeleteDeployKey("alice/api", old.ID) // broken: removed from the repository
		if s, _ := keyStatus(checkKey(t, c, project)); s != "invalid" {
			t.Fatal("key not invalid after removal")
		}
		p := regenerate(c, project)
		apptest.MustStatus(t, p, http.StatusOK)
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("after Regenerate: %q\n%s", s, p.Body)
		}
		keys := env.Emulator.DeployKeys("alice/api")
		if len(keys) != 1 || keys[0].ID == old.ID || keys[0].ID != activeKeyID(t, env) {
			t.Fatalf("keys on Bitbucket %+v, active %d", keys, activeKeyID(t, env))
		}
		if n := count(t, rawDB(t, env), `SELECT count(*) FROM deploy_keys`); n != 1 {
			t.Fatalf("%d key rows", n)
		}
	})
	t.Run("create fails", func(t *testing.T) {
		env, c, project, old := setup(t)
		env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: "POST", Status: 500})
		p := regenerate(c, project)
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="deploy-key-message"]`), "old key stays in force") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("old key not in force: %q", s)
		}
		keys := env.Emulator.DeployKeys("alice/api")
		if len(keys) != 1 || keys[0].ID != old.ID || activeKeyID(t, env) != old.ID {
			t.Fatalf("keys %+v, active %d", keys, activeKeyID(t, env))
		}
	})
	t.Run("store fails", func(t *testing.T) {
		env, c, project, old := setup(t)
		if _, err := writableDB(t, env).Exec(`CREATE TRIGGER fail_key BEFORE INSERT ON deploy_keys BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
			t.Fatal(err)
		}
		p := regenerate(c, project)
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="deploy-key-message"]`), "old key stays in force") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		keys := env.Emulator.DeployKeys("alice/api")
		if len(keys) != 1 || keys[0].ID != old.ID || activeKeyID(t, env) != old.ID {
			t.Fatalf("after a failed store: keys %+v, active %d", keys, activeKeyID(t, env))
		}
		if s, _ := keyStatus(checkKey(t, c, project)); s != "valid" {
			t.Fatalf("old key not valid: %q", s)
		}
	})
	t.Run("delete fails", func(t *testing.T) {
		env, c, project, old := setup(t)
		env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: "DELETE", Status: 500})
		p := regenerate(c, project)
		apptest.MustStatus(t, p, http.StatusOK)
		if !strings.Contains(p.Text(`[data-testid="deploy-key-message"]`), "could not remove the old") {
			t.Fatalf("no warning: %s", p.Body)
		}
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("new key not valid: %q", s)
		}
		if n := len(env.Emulator.DeployKeys("alice/api")); n != 2 || activeKeyID(t, env) == old.ID {
			t.Fatalf("%d keys on Bitbucket, active %d", n, activeKeyID(t, env))
		}
		// Next time, the leftover is removed too.
		env.Emulator.ClearFailures()
		p = regenerate(c, project)
		if keys := env.Emulator.DeployKeys("alice/api"); len(keys) != 1 || keys[0].ID != activeKeyID(t, env) {
			t.Fatalf("leftover not removed: %+v", keys)
		}
		if n := count(t, rawDB(t, env), `SELECT count(*) FROM deploy_keys`); n != 1 {
			t.Fatalf("%d key rows", n)
		}
	})
}

// Another person gets a plain 404 for every project route, and changes
// nothing.
func TestProjectsAreNotVisibleToOthers(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	keyBefore := env.Emulator.DeployKeys("alice/api")[0].ID
	other := env.Client()
	page := other.SignUpWithPassword("Eve", "eve@example.com", "long-enough-password")
	for _, r := range []struct{ method, path string }{
		{"GET", project.URL.Path},
		{"GET", project.URL.Path + "/deploy-key"},
		{"POST", project.URL.Path + "/deploy-key/check"},
		{"POST", project.URL.Path + "/deploy-key/regenerate"},
	} {
		p := other.HTMX(r.method, r.path, page, nil)
		if p.Status != http.StatusNotFound || strings.Contains(p.Body, "alice/api") || strings.Contains(p.Doc.Text(), "alice/api") {
			t.Errorf("%s %s: %d", r.method, r.path, p.Status)
		}
	}
	if keys := env.Emulator.DeployKeys("alice/api"); len(keys) != 1 || keys[0].ID != keyBefore {
		t.Fatal("an outsider changed the deploy key")
	}
}

func TestTroubleshootingDeployKeyStep(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	page := c.Get("/troubleshooting")
	p := c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	step := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-deploy-key"]`)
	if s, _ := step.Attr("data-status"); s != "ok" {
		t.Fatalf("deploy key step %q: %s", s, step.Text())
	}
	env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
	p = c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	step = p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-deploy-key"]`)
	if s, _ := step.Attr("data-status"); s != "failed" || !strings.Contains(step.Text(), "removed from the repository") {
		t.Fatalf("deploy key step after removal %q: %s", s, step.Text())
	}
	fix, ok := step.Find(`[data-testid="regenerate"]`).Closest("form").Attr("hx-post")
	if !ok || fix != project.URL.Path+"/deploy-key/regenerate" {
		t.Fatalf("no Regenerate next to the failed step (%q)", fix)
	}
	if s, _ := keyStatus(c.HTMX(http.MethodPost, fix, page, nil)); s != "valid" {
		t.Fatalf("after Regenerate from troubleshooting: %q", s)
	}
}
