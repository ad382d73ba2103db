package app_test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
)

// team is Alice's organization with a project on acme/api, and Bob, who has
// a Tether account of his own.
type team struct {
	env     *apptest.Env
	alice   *apptest.Client
	bob     *apptest.Client
	project *apptest.Page
	id      string // the project's path
}

func newTeam(t *testing.T) *team {
	t.Helper()
	return newTeamWith(t, apptest.Options{NoSchedule: true})
}

// newTeamWith is newTeam on a Tether started with opts.
func newTeamWith(t *testing.T, opts apptest.Options) *team {
	t.Helper()
	env := apptest.Start(t, opts)
	env.App.Health.Coalesce = 0
	env.AddUser("alice")
	env.AddUser("bob")
	env.Emulator.AddWorkspace("acme", "Acme")
	env.Emulator.AddWorkspaceMember("acme", "alice", true)
	env.Emulator.AddWorkspaceMember("acme", "bob", false)
	env.Emulator.AddRepository("acme", "api", true)
	alice := env.Client()
	alice.SignUpWithBitbucket("alice")
	project := create(t, alice, "acme/api")
	bob := env.Client()
	bob.SignUpWithBitbucket("bob")
	return &team{env: env, alice: alice, bob: bob, project: project, id: project.URL.Path}
}

// invite has Alice press Invite and returns the link shown.
func (tm *team) invite(t *testing.T) string {
	t.Helper()
	page := tm.alice.Get("/team")
	p := tm.alice.HTMX(http.MethodPost, "/team/invitations", page, nil)
	link := p.Attr(`[data-testid="invite-link"]`, "value")
	if p.Status != http.StatusOK || !strings.HasPrefix(link, tm.env.URL+"/invitations/") {
		t.Fatalf("Invite: %d %q\n%s", p.Status, link, p.Body)
	}
	return link
}

// join has Bob open the link and press Accept.
func (tm *team) join(t *testing.T, link string) *apptest.Page {
	t.Helper()
	p := tm.bob.Get(link)
	if !p.Has(`[data-testid="accept"]`) {
		t.Fatalf("no Accept on the invitation: %s", p.Body)
	}
	return tm.bob.Submit(p, `form:has([data-testid="accept"])`, nil, "")
}

// bitbucketState is what Bitbucket holds of the project, to prove a
// refused request changed nothing.
func bitbucketState(env *apptest.Env) string {
	var parts []string
	for _, k := range env.Emulator.DeployKeys("acme/api") {
		parts = append(parts, k.Key)
	}
	for _, h := range env.Emulator.Hooks("acme/api") {
		parts = append(parts, h.UUID+h.URL)
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}

func dbState(t *testing.T, env *apptest.Env) string {
	t.Helper()
	var s string
	rawDB(t, env).QueryRow(`SELECT (SELECT group_concat(id || owner_id || full_name || repo_uuid) FROM projects) ||
		(SELECT group_concat(bitbucket_key_id || state) FROM deploy_keys) ||
		(SELECT group_concat(hook_uuid || state) FROM webhooks) ||
		(SELECT group_concat(user_id || role) FROM memberships) ||
		(SELECT count(*) FROM invitations)`).Scan(&s)
	return s
}

// From the route table itself: on every project route an outsider gets a
// plain 404, and a member gets 403 on everything but reading and Check now,
// with nothing changed on Bitbucket or in the database.
func TestEveryProjectRouteIsAuthorized(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	outsiderPage := tm.bob.Get("/projects")
	var projectRoutes, orgAdminRoutes int
	for _, r := range tm.env.App.Routes {
		if !strings.HasPrefix(r.Path, "/projects/:id") || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
			continue
		}
		projectRoutes++
		path := strings.Replace(r.Path, "/projects/:id", tm.id, 1)
		p := tm.bob.HTMX(r.Method, path, outsiderPage, url.Values{"url": {tm.env.BBURL + "/acme/api"}})
		if p.Status != http.StatusNotFound || strings.Contains(p.Body, "acme/api") || strings.Contains(p.Doc.Text(), "acme/api") {
			t.Errorf("outsider %s %s: %d", r.Method, path, p.Status)
		}
	}
	if projectRoutes < 13 {
		t.Fatalf("only %d project routes found", projectRoutes)
	}

	joined := tm.join(t, tm.invite(t))
	if got := joined.Text(`[data-testid="flash"]`); joined.URL.Path != "/projects" || !strings.Contains(got, "You joined") {
		t.Errorf("after Accept: %s saying %q", joined.URL, got)
	}
	memberPage := tm.bob.Get(tm.id)
	if memberPage.Status != http.StatusOK {
		t.Fatalf("member cannot open the project: %d", memberPage.Status)
	}
	if memberPage.Has(`[data-testid="deploy-key-regenerate"]`) || memberPage.Has(`[data-testid="change"]`) || memberPage.Has(`[data-testid="delete-project"]`) {
		t.Fatal("a member is shown admin buttons")
	}
	bbBefore, dbBefore := bitbucketState(tm.env), dbState(t, tm.env)
	for _, r := range tm.env.App.Routes {
		member := strings.HasPrefix(r.Path, "/projects/:id")
		orgLevel := r.Path == "/projects" && r.Method == http.MethodPost || strings.HasPrefix(r.Path, "/projects/new") || strings.HasPrefix(r.Path, "/team/") && r.Method == http.MethodPost
		if !member && !orgLevel || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
			continue
		}
		path := strings.Replace(strings.Replace(strings.Replace(r.Path, "/projects/:id", tm.id, 1), ":user", "1", 1), ":invitation", "1", 1)
		p := tm.bob.HTMX(r.Method, path, memberPage, url.Values{"url": {tm.env.BBURL + "/acme/api"}, "role": {"member"}, "repository": {"acme/api"}})
		memberMay := member && (r.Method == http.MethodGet || strings.HasSuffix(r.Path, "/check"))
		switch {
		case memberMay && p.Status != http.StatusOK:
			t.Errorf("member %s %s: %d, want 200", r.Method, path, p.Status)
		case !memberMay && p.Status != http.StatusForbidden:
			t.Errorf("member %s %s: %d, want 403", r.Method, path, p.Status)
		}
		if orgLevel {
			orgAdminRoutes++
		}
	}
	if orgAdminRoutes < 5 {
		t.Fatalf("only %d organization admin routes found", orgAdminRoutes)
	}
	if bitbucketState(tm.env) != bbBefore || dbState(t, tm.env) != dbBefore {
		t.Fatal("a refused request changed something")
	}
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	// A person not signed in opens the link, signs up with Bitbucket and
	// comes back to it — no setup step of their own — and accepts.
	link := tm.invite(t)
	tm.env.AddUser("carol")
	carol := tm.env.Client()
	p := carol.Get(link)
	if !strings.Contains(p.Text("h1"), "Join Alice Tester's team") || !p.Has(`[data-testid="bitbucket-login"]`) {
		t.Fatalf("invitation for a signed-out person: %s", p.Body)
	}
	p = carol.Submit(p, `form[action="/auth/bitbucket"]`, nil, "")
	p = carol.Submit(p, "#signin-form", map[string]string{"username": "carol", "password": "secret-password"}, "")
	p = carol.Consent(p, true)
	if p.URL.Path != strings.TrimPrefix(link, tm.env.URL) || !p.Has(`[data-testid="accept"]`) {
		t.Fatalf("after signing up, landed on %s", p.URL)
	}
	p = carol.Submit(p, `form:has([data-testid="accept"])`, nil, "")
	if p.URL.Path != "/projects" || !strings.Contains(p.Text(`[data-testid="projects"]`), "acme/api") {
		t.Fatalf("after Accept: %s", p.URL)
	}
	// Single use.
	p = tm.bob.Get(link)
	if p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="error"]`), "already used") {
		t.Fatalf("reused link: %d %s", p.Status, p.Body)
	}
	// Expired.
	link = tm.invite(t)
	if _, err := writableDB(t, tm.env).Exec(`UPDATE invitations SET expires_at = datetime('now', '-1 minute') WHERE accepted_at IS NULL`); err != nil {
		t.Fatal(err)
	}
	if p := tm.bob.Get(link); p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="error"]`), "expired") {
		t.Fatalf("expired link: %d %s", p.Status, p.Body)
	}
	// Revoked; and another organization's admin cannot revoke it.
	link = tm.invite(t)
	id := tm.alice.Get("/team").Attr(`[data-testid="invitation"]`, "data-id")
	bobsTeam := tm.bob.Get("/team")
	if p := tm.bob.HTMX(http.MethodPost, "/team/invitations/"+id+"/revoke", bobsTeam, nil); p.Status != http.StatusNotFound {
		t.Fatalf("revoking another organization's invitation: %d", p.Status)
	}
	p = tm.alice.HTMX(http.MethodPost, "/team/invitations/"+id+"/revoke", tm.alice.Get("/team"), nil)
	if !strings.Contains(p.Text(`[data-testid="team-message"]`), "revoked") {
		t.Fatalf("revoke: %s", p.Body)
	}
	if p := tm.bob.Get(link); p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="error"]`), "revoked") {
		t.Fatalf("revoked link: %d %s", p.Status, p.Body)
	}
	if p := tm.bob.Get("/invitations/not-a-real-token"); p.Status != http.StatusNotFound {
		t.Fatalf("made-up link: %d", p.Status)
	}
	// The project is still out of Bob's reach.
	if p := tm.bob.Get(tm.id); p.Status != http.StatusNotFound {
		t.Fatalf("Bob sees the project: %d", p.Status)
	}
}

func TestLastAdminRule(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	page := tm.alice.Get("/team")
	alice := page.Attr(`[data-testid="member"][data-role="admin"]`, "data-user")
	p := tm.alice.HTMX(http.MethodPost, "/team/members/"+alice+"/role", page, url.Values{"role": {"member"}})
	if p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="team-message"]`), "needs an admin") {
		t.Fatalf("demoting the last admin: %d %s", p.Status, p.Body)
	}
	p = tm.alice.HTMX(http.MethodPost, "/team/members/"+alice+"/remove", page, url.Values{"force": {"1"}})
	if p.Status != http.StatusConflict {
		t.Fatalf("removing the last admin: %d %s", p.Status, p.Body)
	}
	// With a second admin, the first may step down.
	tm.join(t, tm.invite(t))
	page = tm.alice.Get("/team")
	bob, _ := page.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", page, url.Values{"role": {"admin"}}); p.Status != http.StatusOK {
		t.Fatalf("promoting Bob: %d", p.Status)
	}
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+alice+"/role", page, url.Values{"role": {"member"}}); p.Status != http.StatusOK {
		t.Fatalf("Alice stepping down: %d %s", p.Status, p.Body)
	}
}

// The person who set the project up loses access; Bob, made admin and
// connected with admin rights, re-homes it to himself.
func TestRehome(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*team, *apptest.Page) {
		tm := newTeam(t)
		tm.join(t, tm.invite(t))
		page := tm.alice.Get("/team")
		bob, _ := page.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
		tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", page, url.Values{"role": {"admin"}})
		tm.env.Emulator.SetRepoPermission("alice", "acme/api", "")
		tm.env.Emulator.SetRepoPermission("bob", "acme/api", "admin")
		checkKey(t, tm.bob, tm.bob.Get(tm.id))
		return tm, tm.bob.Get(tm.id)
	}
	rehome := func(tm *team, page *apptest.Page) *apptest.Page {
		return tm.bob.HTMX(http.MethodPost, tm.id+"/rehome", page, nil)
	}
	t.Run("success", func(t *testing.T) {
		tm, page := setup(t)
		warning := page.Text(`[data-testid="backing-warning"]`)
		if !strings.Contains(warning, "no longer has admin access to acme/api") {
			t.Fatalf("no warning about Alice's access: %q", warning)
		}
		oldKeys := bitbucketState(tm.env)
		p := rehome(tm, page)
		if p.Status != http.StatusOK || !strings.Contains(p.Text(`[data-testid="backing-message"]`), "Re-homed") {
			t.Fatalf("Re-home: %d %s", p.Status, p.Body)
		}
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("key after Re-home: %s", s)
		}
		if s, _ := hookStatus(p); s != "valid" {
			t.Fatalf("hook after Re-home: %s", s)
		}
		if bitbucketState(tm.env) == oldKeys || len(tm.env.Emulator.DeployKeys("acme/api")) != 1 || len(tm.env.Emulator.Hooks("acme/api")) != 1 {
			t.Fatal("old key and hook not replaced on Bitbucket")
		}
		if !strings.Contains(tm.bob.Get(tm.id).Text(`[data-testid="backed-by"]`), "Bob Tester") {
			t.Fatal("the project is not backed by Bob")
		}
	})
	t.Run("create fails", func(t *testing.T) {
		tm, page := setup(t)
		before, dbBefore := bitbucketState(tm.env), dbState(t, tm.env)
		tm.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/acme/api/deploy-keys", Method: "POST", Status: 500})
		if p := rehome(tm, page); p.Status != http.StatusBadGateway {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if bitbucketState(tm.env) != before || dbState(t, tm.env) != dbBefore {
			t.Fatal("a failed Re-home changed something")
		}
	})
	t.Run("store fails", func(t *testing.T) {
		tm, page := setup(t)
		before, dbBefore := bitbucketState(tm.env), dbState(t, tm.env)
		if _, err := writableDB(t, tm.env).Exec(`CREATE TRIGGER fail_rehome BEFORE UPDATE OF owner_id ON projects BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
			t.Fatal(err)
		}
		p := rehome(tm, page)
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="backing-message"]`), "Nothing was changed") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if bitbucketState(tm.env) != before || dbState(t, tm.env) != dbBefore {
			t.Fatal("a failed Re-home left changes behind")
		}
	})
	t.Run("delete fails", func(t *testing.T) {
		tm, page := setup(t)
		tm.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/acme/api/deploy-keys", Method: "DELETE", Status: 500})
		p := rehome(tm, page)
		if p.Status != http.StatusOK || !strings.Contains(p.Text(`[data-testid="backing-message"]`), "could not remove the old deploy key") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if s, _ := keyStatus(p); s != "valid" {
			t.Fatalf("new key: %s", s)
		}
		if n := len(tm.env.Emulator.DeployKeys("acme/api")); n != 2 {
			t.Fatalf("%d keys on Bitbucket", n)
		}
	})
}

// Removing a member who backs projects lists them first.
func TestRemovingABackerListsProjects(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	page := tm.alice.Get("/team")
	bob, _ := page.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
	tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", page, url.Values{"role": {"admin"}})
	alice, _ := page.Doc.Find(`[data-testid="member"][data-role="admin"]`).Attr("data-user")
	p := tm.bob.HTMX(http.MethodPost, "/team/members/"+alice+"/remove", tm.bob.Get("/team"), nil)
	if !strings.Contains(p.Text(`[data-testid="removing"]`), "acme/api") {
		t.Fatalf("removing Alice does not list her project: %s", p.Body)
	}
	if n := count(t, rawDB(t, tm.env), `SELECT count(*) FROM memberships WHERE user_id = `+alice); n != 1 {
		t.Fatalf("Alice was removed without confirmation (%d memberships)", n)
	}
	p = tm.bob.HTMX(http.MethodPost, "/team/members/"+alice+"/remove", tm.bob.Get("/team"), url.Values{"force": {"1"}})
	if !strings.Contains(p.Text(`[data-testid="team-message"]`), "removed") {
		t.Fatalf("remove anyway: %s", p.Body)
	}
	if w := tm.bob.Get(tm.id).Text(`[data-testid="backing-warning"]`); !strings.Contains(w, "has left the organization") {
		t.Fatalf("no warning that the backer left: %q", w)
	}
}

// Every kind of change lands in the audit log, with who did it, and no
// secret Tether holds appears in the log, on any page, or in the logs.
func TestAuditLogAndNoSecrets(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	h := &hooked{env: tm.env, c: tm.alice, project: tm.project}
	hooks := tm.env.Emulator.Hooks("acme/api")
	h.hook, h.hookURL = hooks[0], hooks[0].URL
	tm.alice.HTMX(http.MethodPost, tm.id+"/deploy-key/regenerate", tm.project, nil)
	tm.alice.HTMX(http.MethodPost, tm.id+"/webhook/regenerate", tm.project, nil)
	tm.join(t, tm.invite(t))
	team := tm.alice.Get("/team")
	bob, _ := team.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
	tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", team, url.Values{"role": {"admin"}})
	tm.env.Emulator.RenameRepository("acme/api", "api-v2")
	checkKey(t, tm.alice, tm.project)
	change(t, h, tm.env.BBURL+"/acme/api-v2", "")
	tm.env.Emulator.SetRepoPermission("bob", "acme/api-v2", "admin")
	tm.bob.HTMX(http.MethodPost, tm.id+"/rehome", tm.bob.Get(tm.id), nil)
	tm.env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	check(t, tm.alice, tm.alice.Get("/account"))
	tm.bob.HTMX(http.MethodPost, "/account/bitbucket/disconnect", tm.bob.Get("/account"), nil)

	log := tm.alice.Get("/team/audit")
	var actions []string
	log.Doc.Find(`[data-testid="audit-entry"]`).Each(func(_ int, s *goquery.Selection) {
		a, _ := s.Attr("data-action")
		actions = append(actions, a)
	})
	for _, want := range []string{"organization created", "project created", "deploy key created", "webhook created",
		"deploy key regenerated", "webhook regenerated", "member invited", "member joined", "role changed",
		"move detected", "repository URL changed", "re-homed", "revocation detected", "Bitbucket disconnected"} {
		found := false
		for _, a := range actions {
			found = found || a == want
		}
		if !found {
			t.Errorf("audit log has no %q entry (has %v)", want, actions)
		}
	}
	first := log.Doc.Find(`[data-testid="audit-entry"]`).First()
	if a, _ := first.Attr("data-action"); a != "Bitbucket disconnected" || !strings.Contains(first.Text(), "Bob Tester") {
		t.Fatalf("newest entry is %q: %s", a, first.Text())
	}
	if tether := log.Doc.Find(`[data-action="move detected"]`).Text(); !strings.Contains(tether, "Tether") {
		t.Fatalf("a detected move is not Tether's: %q", tether)
	}
	projectID := strings.TrimPrefix(tm.id, "/projects/")
	filtered := tm.alice.Get("/team/audit?project=" + projectID + "&person=" + bob)
	filtered.Doc.Find(`[data-testid="audit-entry"]`).Each(func(_ int, s *goquery.Selection) {
		if !strings.Contains(s.Text(), "Bob Tester") || !strings.Contains(s.Text(), "acme/api") {
			t.Errorf("filtered entry not Bob's on the project: %s", s.Text())
		}
	})
	if filtered.Doc.Find(`[data-testid="audit-entry"]`).Length() == 0 {
		t.Fatal("the filter found nothing")
	}

	// Every secret this test made, looked for everywhere it must not be.
	var secrets []string
	for _, k := range tm.env.Emulator.Hooks("acme/api-v2") {
		secrets = append(secrets, k.Secret)
	}
	secrets = append(secrets, h.hook.Secret, apptest.ClientSecret)
	rows, _ := writableDB(t, tm.env).Query(`SELECT id FROM users`)
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		if ident, err := tm.env.App.Store.IdentityByUser(t.Context(), id); err == nil {
			secrets = append(secrets, ident.AccessToken, ident.RefreshToken)
		}
	}
	rows.Close()
	if key, err := tm.env.App.Store.ActiveDeployKey(t.Context(), 1); err == nil {
		secrets = append(secrets, string(key.PrivateKey))
	}
	pages := []*apptest.Page{log, filtered, tm.alice.Get(tm.id), tm.bob.Get(tm.id), tm.alice.Get("/team"), tm.alice.Get("/account"),
		tm.alice.HTMX(http.MethodGet, "/troubleshooting/checks", tm.alice.Get("/troubleshooting"), nil)}
	haystacks := []string{tm.env.Logs.String()}
	for _, p := range pages {
		haystacks = append(haystacks, p.Body)
	}
	var dump strings.Builder
	drows, _ := writableDB(t, tm.env).Query(`SELECT actor_name || action || project_name || detail FROM audit_log`)
	for drows.Next() {
		var s string
		drows.Scan(&s)
		dump.WriteString(s)
	}
	drows.Close()
	haystacks = append(haystacks, dump.String())
	for _, s := range secrets {
		if len(s) < 8 {
			continue
		}
		for i, hay := range haystacks {
			if strings.Contains(hay, s) {
				t.Errorf("a secret (%d chars) appears in haystack %d", len(s), i)
			}
		}
	}
	if len(secrets) < 5 {
		t.Fatalf("only %d secrets collected", len(secrets))
	}
}

func TestSwitchOrganizationKeepsProjectURLsWorking(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	page := tm.bob.Get("/projects")
	options := page.Doc.Find(`#org-select option`)
	if options.Length() != 2 {
		t.Fatalf("Bob belongs to %d organizations, want 2", options.Length())
	}
	own := ""
	options.Each(func(_ int, s *goquery.Selection) {
		if strings.Contains(s.Text(), "Bob") {
			own, _ = s.Attr("value")
		}
	})
	p := tm.bob.Submit(page, `form[action="/orgs/switch"]`, map[string]string{"org": own}, "")
	if strings.Contains(p.Body, "acme/api") || strings.Contains(p.Doc.Text(), "acme/api") {
		t.Fatal("Bob's own organization lists Alice's project")
	}
	if p := tm.bob.Get(tm.id); p.Status != http.StatusOK {
		t.Fatalf("the project URL stopped working after switching: %d", p.Status)
	}
	// Someone else's organization cannot be switched to.
	if p := tm.alice.Submit(tm.alice.Get("/projects"), `form[action="/orgs/switch"]`, map[string]string{"org": own}, ""); p.Status != http.StatusNotFound {
		t.Fatalf("switching to an organization Alice is not in: %d", p.Status)
	}
}

func TestSetupStepValidates(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	p := c.Get("/signup")
	p = c.Submit(p, `form[action="/signup"]`, map[string]string{"name": "Pat", "email": "pat@example.com", "password": "long-enough-password"}, "")
	if p.URL.Path != "/setup" || p.Attr("#name", "value") != "Pat's team" {
		t.Fatalf("first sign-in did not end in the setup step: %s", p.URL)
	}
	if q := c.Get("/projects"); q.URL.Path != "/setup" {
		t.Fatalf("projects before setup went to %s", q.URL)
	}
	p = c.Submit(p, `form[action="/setup"]`, map[string]string{"name": "  "}, "")
	if p.Status != http.StatusUnprocessableEntity || p.Text(`[data-testid="name-error"]`) == "" {
		t.Fatalf("empty name: %d", p.Status)
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM organizations`); n != 0 {
		t.Fatalf("%d organizations after a refused setup", n)
	}
	p = c.Submit(p, `form[action="/setup"]`, map[string]string{"name": "Pat Co"}, "")
	if p.URL.Path != "/projects" || !strings.Contains(p.Body, "Pat Co") {
		t.Fatalf("after setup: %s", p.URL)
	}
}

// An admin deletes a project: its key and hook leave the repository, its
// rows go, and the audit log keeps the deletion.
func TestDeleteProject(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	p := tm.alice.HTMX(http.MethodPost, tm.id+"/delete", tm.project, nil)
	if p.Status != http.StatusOK || p.Header.Get("HX-Redirect") != "/projects" {
		t.Fatalf("delete: %d %v", p.Status, p.Header)
	}
	if len(tm.env.Emulator.DeployKeys("acme/api")) != 0 || len(tm.env.Emulator.Hooks("acme/api")) != 0 {
		t.Fatal("key or hook left on Bitbucket")
	}
	db := rawDB(t, tm.env)
	if n := count(t, db, `SELECT count(*) FROM projects`) + count(t, db, `SELECT count(*) FROM deploy_keys`) + count(t, db, `SELECT count(*) FROM webhooks`); n != 0 {
		t.Fatalf("%d rows left", n)
	}
	if p := tm.alice.Get(tm.id); p.Status != http.StatusNotFound {
		t.Fatalf("deleted project page: %d", p.Status)
	}
	audit := tm.alice.Get("/team/audit")
	for _, action := range []string{"project deleted", "deploy key removed", "webhook removed"} {
		if !audit.Has(`[data-action="` + action + `"]`) {
			t.Errorf("no %q audit entry", action)
		}
	}
	// The repository can be used again.
	create(t, tm.alice, "acme/api")
}
