package app_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/app"
	"tether/internal/apptest"
	"tether/internal/config"
)

// postTargets lists every POST a page offers: htmx's hx-post (with its
// hx-vals) and plain forms (with their inputs).
func postTargets(p *apptest.Page) map[string]url.Values {
	out := map[string]url.Values{}
	p.Doc.Find("[hx-post]").Each(func(_ int, s *goquery.Selection) {
		target, _ := s.Attr("hx-post")
		form := url.Values{}
		if raw, ok := s.Attr("hx-vals"); ok {
			var vals map[string]string
			json.Unmarshal([]byte(raw), &vals)
			for k, v := range vals {
				form.Set(k, v)
			}
		}
		s.Find("input, select").Each(func(_ int, in *goquery.Selection) {
			name, _ := in.Attr("name")
			v, _ := in.Attr("value")
			form.Set(name, v)
		})
		out[target] = form
	})
	p.Doc.Find(`form[method="post"]`).Each(func(_ int, s *goquery.Selection) {
		target, _ := s.Attr("action")
		form := url.Values{}
		s.Find("input").Each(func(_ int, in *goquery.Selection) {
			name, _ := in.Attr("name")
			v, _ := in.Attr("value")
			form.Set(name, v)
		})
		out[target] = form
	})
	return out
}

// The kind behind "Members see New project and land on Not allowed": on
// no page does a Member get a control whose request Tether refuses them.
// Every POST a Member's pages offer is sent as that Member; none is
// answered 403. The same pages for the admin offer admin actions, so the
// collection itself is proven to find them.
func TestMemberPagesOfferNothingForbidden(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.env.Emulator.RenameRepository("acme/api", "api-v2")
	checkKey(t, tm.alice, tm.project)
	tm.join(t, tm.invite(t))
	tm.alice.HTMX(http.MethodPost, "/team/invitations", tm.alice.Get("/team"), nil) // a pending invitation to revoke

	pages := func(c *apptest.Client) map[string]url.Values {
		all := map[string]url.Values{}
		for _, path := range []string{"/projects", tm.id, "/team", "/team/audit", "/account", "/troubleshooting"} {
			p := c.Get(path)
			apptest.MustStatus(t, p, http.StatusOK)
			for k, v := range postTargets(p) {
				all[k] = v
			}
			for _, a := range []string{"/projects/new"} {
				if p.Has(`a[href="` + a + `"]`) {
					all["GET "+a] = nil
				}
			}
		}
		checks := c.HTMX(http.MethodGet, "/troubleshooting/checks", c.Get("/troubleshooting"), nil)
		for k, v := range postTargets(checks) {
			all[k] = v
		}
		return all
	}
	adminTargets := pages(tm.alice)
	for _, want := range []string{tm.id + "/deploy-key/regenerate", tm.id + "/delete", tm.id + "/repository", "/team/invitations", "GET /projects/new"} {
		if _, ok := adminTargets[want]; !ok {
			t.Fatalf("the admin's pages offer no %s: the collection misses things (%v)", want, slices.Collect(mapKeys(adminTargets)))
		}
	}

	memberTargets := pages(tm.bob)
	keys := slices.Sorted(mapKeys(memberTargets))
	// Ending the session comes last.
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "/logout" || k == "/account/bitbucket/disconnect" })
	keys = append(keys, "/account/bitbucket/disconnect")
	from := tm.bob.Get("/projects")
	for _, target := range keys {
		if strings.HasPrefix(target, "GET ") {
			if p := tm.bob.Get(strings.TrimPrefix(target, "GET ")); p.Status == http.StatusForbidden {
				t.Errorf("a Member's page links to %s, which answers 403", target)
			}
			continue
		}
		p := tm.bob.HTMX(http.MethodPost, target, from, memberTargets[target])
		if p.Status == http.StatusForbidden {
			t.Errorf("a Member's page offers POST %s, which answers 403: %s", target, p.Body)
		}
	}
	if len(keys) < 3 {
		t.Fatalf("a Member's pages offer only %v: the test looked at nothing", keys)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// E-mail sign-up refuses an address that already belongs to any account,
// one made through Bitbucket included, in any case, with the same words
// whichever kind of account has it; nothing is created.
func TestEmailSignUpRefusesAnyAccountsAddress(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice") // alice@example.com on Bitbucket
	env.Client().SignUpWithBitbucket("alice")
	env.Client().SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	db := rawDB(t, env)
	users := count(t, db, `SELECT count(*) FROM users`)

	var messages []string
	for _, email := range []string{"ALICE@example.com", "alice@example.com", "pat@example.com"} {
		p := env.Client().SignUpWithPassword("Someone", email, "long-enough-password")
		if p.Status != http.StatusUnprocessableEntity || p.Attr("#email", "aria-invalid") != "true" {
			t.Fatalf("sign-up with %s: %d\n%s", email, p.Status, p.Body)
		}
		messages = append(messages, p.Text(`[data-testid="email-error"]`))
	}
	if !strings.Contains(messages[0], "already exists") || messages[0] != messages[2] {
		t.Fatalf("messages differ by the kind of account, or say too little: %q", messages)
	}
	if n := count(t, db, `SELECT count(*) FROM users`); n != users {
		t.Fatalf("%d users after refused sign-ups, want %d", n, users)
	}
	// A new address still works.
	if p := env.Client().SignUpWithPassword("New", "new@example.com", "long-enough-password"); p.URL.Path != "/account" {
		t.Fatalf("a fresh address was refused: %s", p.URL)
	}
}

// The messages a newcomer reads say whose, what, and how many.
func TestMessagesSayWhoseWhatAndHowMany(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	team := tm.alice.Get("/team")
	if got := team.Text(`[data-testid="member"][data-role="admin"] [data-testid="backs"]`); got != "backs 1 project" {
		t.Errorf("backs: %q", got)
	}
	bob, _ := team.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
	p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", team, url.Values{"role": {"admin"}})
	if got := p.Text(`[data-testid="team-message"]`); got != "✓ Bob Tester is now Admin." {
		t.Errorf("role change says %q", got)
	}
	p = tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", team, url.Values{"role": {"member"}})
	if got := p.Text(`[data-testid="team-message"]`); got != "✓ Bob Tester is now Member." {
		t.Errorf("role change says %q", got)
	}

	// A second project: "backs 2 projects".
	tm.env.Emulator.AddRepository("acme", "web", true)
	create(t, tm.alice, "acme/web")
	if got := tm.alice.Get("/team").Text(`[data-testid="member"][data-role="admin"] [data-testid="backs"]`); got != "backs 2 projects" {
		t.Errorf("backs: %q", got)
	}

	// Delete asks about the project by name, and the list says it went.
	page := tm.alice.Get(tm.id)
	if got := page.Attr(`[data-testid="delete-section"] form`, "hx-confirm"); !strings.Contains(got, "Delete the project acme/api?") {
		t.Errorf("Delete asks %q", got)
	}
	if !page.Has(`#activity + [data-testid="delete-section"]`) {
		t.Error("Delete project is not at the end of the page, after the workflows")
	}
	del := tm.alice.HTMX(http.MethodPost, tm.id+"/delete", page, nil)
	if del.Header.Get("HX-Redirect") != "/projects" {
		t.Fatalf("delete: %d %v", del.Status, del.Header)
	}
	if got := tm.alice.Get("/projects").Text(`[data-testid="flash"]`); !strings.Contains(got, "The project acme/api was deleted") {
		t.Errorf("the list after Delete says %q", got)
	}
	if tm.alice.Get("/projects").Has(`[data-testid="flash"]`) {
		t.Error("the deletion notice shows twice")
	}

	// The only admin, who backs a project, is told first that an
	// organization needs an admin — not sent to re-home first.
	alice, _ := tm.alice.Get("/team").Doc.Find(`[data-testid="member"][data-role="admin"]`).Attr("data-user")
	team = tm.alice.Get("/team")
	if team.Has(`[data-user="`+alice+`"] [data-testid="remove-member"]`) || !team.Has(`[data-user="`+alice+`"] [data-testid="only-admin"]`) {
		t.Error("the only admin is offered Leave")
	}
	p = tm.alice.HTMX(http.MethodPost, "/team/members/"+alice+"/remove", team, nil)
	if p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="team-message"]`), "An organization needs an admin") || p.Has(`[data-testid="removing"]`) {
		t.Fatalf("the only admin leaving: %d %s", p.Status, p.Body)
	}
}

// "No repositories match" only after a search; no repositories at all
// says why and what to do.
func TestPickerEmptyMessages(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	picker := c.Get("/projects/new")
	p := c.HTMX(http.MethodGet, "/projects/new/repositories?q=zzz", picker, nil)
	if got := p.Text(`[data-testid="no-repositories"]`); got != "No repositories match “zzz”." {
		t.Errorf("search without matches: %q", got)
	}
	env.AddUser("carol")
	carol := env.Client()
	carol.SignUpWithBitbucket("carol")
	got := carol.Get("/projects/new").Text(`[data-testid="no-repositories"]`)
	if strings.Contains(got, "match") || !strings.Contains(got, "no repositories in the Bitbucket workspaces you belong to") {
		t.Errorf("nothing to list: %q", got)
	}
}

// The audit log pages with Newer and Older, says when a filter matches
// nothing, and filters by projects that were deleted and people who left.
func TestAuditLogPagingAndFilters(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	team := tm.alice.Get("/team")
	for range 60 {
		tm.alice.HTMX(http.MethodPost, "/team/invitations", team, nil)
	}
	first := tm.alice.Get("/team/audit")
	entries := func(p *apptest.Page) int { return p.Doc.Find(`[data-testid="audit-entry"]`).Length() }
	total := count(t, rawDB(t, tm.env), `SELECT count(*) FROM audit_log WHERE org_id = 1`) // Alice's, made first
	if entries(first) != 50 || first.Has(`[data-testid="newer"]`) || !first.Has(`[data-testid="older"]`) {
		t.Fatalf("first page: %d entries, pager %q", entries(first), first.Text(`[data-testid="audit-pager"]`))
	}
	if got := first.Text(`[data-testid="audit-total"]`); got != fmt.Sprintf("%d entries in all; 50 on this page.", total) {
		t.Errorf("summary %q", got)
	}
	older := tm.alice.Get(first.Attr(`[data-testid="older"]`, "href"))
	if entries(older) != total-50 || older.Has(`[data-testid="older"]`) || !older.Has(`[data-testid="newer"]`) {
		t.Fatalf("older page: %d entries of %d", entries(older), total)
	}
	newer := tm.alice.Get(older.Attr(`[data-testid="newer"]`, "href"))
	if newer.Text(`[data-testid="audit-entry"]`) != first.Text(`[data-testid="audit-entry"]`) || entries(newer) != 50 || newer.Has(`[data-testid="newer"]`) {
		t.Fatalf("Newer from the second page is not the first page: %d entries", entries(newer))
	}

	// Delete the project: it stays in the filter, marked, and filters.
	projectID := strings.TrimPrefix(tm.id, "/projects/")
	tm.alice.HTMX(http.MethodPost, tm.id+"/delete", tm.project, nil)
	log := tm.alice.Get("/team/audit")
	if got := log.Text(`select[name="project"] option[value="` + projectID + `"]`); got != "acme/api (deleted)" {
		t.Fatalf("deleted project in the filter: %q", got)
	}
	byProject := tm.alice.Get("/team/audit?project=" + projectID)
	actions := map[string]bool{}
	byProject.Doc.Find(`[data-testid="audit-entry"]`).Each(func(_ int, s *goquery.Selection) {
		a, _ := s.Attr("data-action")
		actions[a] = true
	})
	if !actions["project created"] || !actions["project deleted"] || actions["member invited"] {
		t.Fatalf("filtered by the deleted project: %v", actions)
	}

	// A filter that matches nothing says so, and how to see everything.
	bob, _ := tm.alice.Get("/team").Doc.Find(`[data-testid="member"]`).Last().Attr("data-user")
	none := tm.alice.Get("/team/audit?project=" + projectID + "&person=" + bob + "9")
	if got := none.Text(`[data-testid="no-entries"]`); !strings.HasPrefix(got, "No entries match this filter.") || !none.Has(`[data-testid="no-entries"] a[href="/team/audit"]`) {
		t.Fatalf("empty filter: %q", got)
	}
}

// A demo restarted on a data folder with projects from an earlier run says
// so on every page; its emulator knows the same people and repositories.
func TestDemoSaysSoWhenItFindsAnEarlierRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"TETHER_DATA_DIR": dir, "TETHER_PUBLIC_URL": "http://127.0.0.1:1"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if first.DemoLeftovers != 0 {
		t.Fatalf("a fresh demo found %d projects", first.DemoLeftovers)
	}
	repoUUID := first.Emulator.AddRepository("acme", "api", true).UUID // the seeded one
	first.Close()
	raw := writableRawDB(t, dir)
	for _, q := range []string{
		`INSERT INTO users (id, name, created_at) VALUES (1, 'Alice', CURRENT_TIMESTAMP)`,
		`INSERT INTO organizations (id, name, created_at) VALUES (1, 'Team', CURRENT_TIMESTAMP)`,
		`INSERT INTO projects (name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at, org_id, hook_token)
			VALUES ('acme/api', 1, '` + repoUUID + `', 'acme', 'api', 'acme/api', 'ssh://x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, 'tok')`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	raw.Close()

	second, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.DemoLeftovers != 1 {
		t.Fatalf("the restarted demo found %d projects, want 1", second.DemoLeftovers)
	}
	if got := second.Emulator.AddRepository("acme", "api", true).UUID; got != repoUUID {
		t.Fatalf("the demo's acme/api is %s after a restart, was %s", got, repoUUID)
	}
	srv := httptest.NewServer(second.Handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `data-testid="demo-leftovers"`) || !strings.Contains(string(body), "1 project from an earlier run") {
		t.Fatalf("the demo banner does not say so:\n%s", body)
	}
}

func writableRawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tether.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}
