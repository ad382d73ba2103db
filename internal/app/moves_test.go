package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"

	"github.com/PuerkitoBio/goquery"
)

// change submits the Repository URL form the way htmx does.
func change(t *testing.T, h *hooked, typed, confirm string) *apptest.Page {
	t.Helper()
	form := url.Values{"url": {typed}}
	if confirm != "" {
		form.Set("confirm", confirm)
	}
	return h.c.HTMX(http.MethodPost, h.project.URL.Path+"/repository", h.project, form)
}

type projectRow struct{ uuid, workspace, slug, fullName, clone, movedTo string }

func storedProject(t *testing.T, env *apptest.Env) projectRow {
	t.Helper()
	var r projectRow
	rawDB(t, env).QueryRow(`SELECT repo_uuid, workspace, repo_slug, full_name, clone_ssh, moved_to FROM projects`).
		Scan(&r.uuid, &r.workspace, &r.slug, &r.fullName, &r.clone, &r.movedTo)
	return r
}

// Every form people paste names the same repository: Change keeps it.
func TestChangeAcceptsEveryURLForm(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	web := h.env.BBURL
	host := strings.TrimPrefix(web, "http://")
	sshAddr := h.env.App.Config.BitbucketSSHAddr
	before := storedProject(t, h.env)
	for _, typed := range []string{
		"ssh://git@" + sshAddr + "/alice/api.git",
		web + "/alice/api",
		web + "/alice/api.git",
		"http://someone@" + host + "/alice/api.git",
		"  " + web + "/alice/api/src/main/  ",
		before.clone,
	} {
		p := change(t, h, typed, "")
		if p.Status != http.StatusOK || !p.Has(`[data-testid="repository-notice"].ok`) {
			t.Errorf("%q: %d %s", typed, p.Status, p.Text(`[data-testid="url-error"]`))
		}
	}
	if storedProject(t, h.env) != before {
		t.Fatal("the project changed")
	}
}

func TestChangeRejectsBadURLs(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	before := storedProject(t, h.env)
	for _, tc := range []struct{ typed, says string }{
		{"https://github.com/alice/api", "Use the repository's URL"},
		{h.env.BBURL + "/alice", "repository"},
		{h.env.BBURL + "/alice/my repo", "space"},
		{h.env.BBURL + "/alice/../bob/api", ".."},
		{"", "Enter the repository"},
	} {
		p := change(t, h, tc.typed, "")
		msg := p.Text(`[data-testid="url-error"]`)
		if p.Status != http.StatusUnprocessableEntity || msg == "" || p.Attr("#repository-url", "aria-invalid") != "true" {
			t.Errorf("%q: %d %q", tc.typed, p.Status, msg)
		}
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.says)) {
			t.Errorf("%q: message %q does not mention %q", tc.typed, msg, tc.says)
		}
		if p.Attr("#repository-url", "value") != tc.typed {
			t.Errorf("%q: the typed URL was not kept in the field", tc.typed)
		}
	}
	if storedProject(t, h.env) != before {
		t.Fatal("a refused URL changed the project")
	}
}

// moved renames, moves or re-homes the repository on Bitbucket, then
// checks: the move is detected by UUID and Update URL fixes it.
func TestMoveDetectedAndUpdated(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		move     func(e *emulator.Emulator)
		fullName string
	}{
		{"rename", func(e *emulator.Emulator) { e.RenameRepository("alice/api", "api-v2") }, "alice/api-v2"},
		{"move to another workspace", func(e *emulator.Emulator) {
			e.AddWorkspace("acme", "Acme")
			e.AddWorkspaceMember("acme", "alice", true)
			e.MoveRepository("alice/api", "acme")
		}, "acme/api"},
		{"workspace rename", func(e *emulator.Emulator) { e.RenameWorkspace("alice", "alice-ltd") }, "alice-ltd/api"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := withHook(t)
			tc.move(h.env.Emulator)
			// The old name answers 404 on Bitbucket, yet nothing is
			// reported removed: the check follows the UUID.
			row := checkKey(t, h.c, h.project)
			if s, r := keyStatus(row); s != "valid" {
				t.Fatalf("deploy key after the move: %s %q", s, r)
			}
			if s, _ := hookStatus(checkHook(t, h.c, h.project)); s != "valid" {
				t.Fatalf("webhook after the move: %s", s)
			}
			page := h.c.Get(h.project.URL.Path)
			banner := page.Doc.Find(`[data-testid="moved"]`)
			if !strings.Contains(banner.Text(), "moved/renamed to "+tc.fullName) {
				t.Fatalf("no moved banner: %q", banner.Text())
			}
			if poll := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/moved", page, nil); !poll.Has(`[data-testid="update-url"]`) {
				t.Fatal("the banner poll does not offer Update URL")
			}
			typed := buttonValue(banner.Find(`[data-testid="update-url"]`), "url")
			p := change(t, h, typed, "")
			if p.Status != http.StatusOK || !strings.Contains(p.Text(`[data-testid="repository-notice"]`), "now uses "+tc.fullName) {
				t.Fatalf("Update URL: %d %s", p.Status, p.Body)
			}
			if n := p.Doc.Find("hx-partial:has(.health-row)").Length(); n != 2 {
				t.Fatalf("%d refreshed health rows in the answer, want 2", n)
			}
			// The project is named after its repository: heading, title
			// and Delete follow it, in place.
			if got := p.Text(`hx-partial[hx-target="#project-name"] [data-testid="project-name"]`); got != tc.fullName {
				t.Fatalf("heading in the answer: %q", got)
			}
			if got := p.Text("title"); got != tc.fullName+" · Tether" {
				t.Fatalf("title in the answer: %q", got)
			}
			if got := p.Text(`hx-partial[hx-target="#delete-section"] [data-testid="delete-what"] strong`); got != tc.fullName {
				t.Fatalf("Delete in the answer names %q", got)
			}
			again := h.c.Get(h.project.URL.Path)
			if again.Text(`[data-testid="project-name"]`) != tc.fullName || again.Text("title") != tc.fullName+" · Tether" {
				t.Fatalf("the project page still names the old repository: %q", again.Text("title"))
			}
			if list := h.c.Get("/projects"); list.Text(`[data-testid="project-row"] td.name`) != tc.fullName {
				t.Fatalf("the project list names %q", list.Text(`[data-testid="project-row"] td.name`))
			}
			if s, _ := keyStatus(p); s != "valid" {
				t.Fatalf("deploy key in the answer: %s", s)
			}
			stored := storedProject(t, h.env)
			if stored.fullName != tc.fullName || stored.movedTo != "" || !strings.Contains(stored.clone, tc.fullName) {
				t.Fatalf("stored %+v", stored)
			}
			res, _ := h.env.Emulator.Push(tc.fullName, "main", "after the move", "alice")
			if len(res.Deliveries) != 1 || res.Deliveries[0].Status != http.StatusAccepted {
				t.Fatalf("push after the move: %+v", res.Deliveries)
			}
		})
	}
}

func TestChangeToDifferentRepositoryNeedsConfirmation(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	before := storedProject(t, h.env)
	oldKey := h.env.Emulator.DeployKeys("alice/api")[0]
	p := change(t, h, h.env.BBURL+"/alice/site", "")
	confirm := p.Doc.Find(`[data-testid="confirm-switch"]`)
	if p.Status != http.StatusOK || !strings.Contains(confirm.Text(), "alice/site is a different repository") {
		t.Fatalf("no confirmation asked: %s", p.Body)
	}
	if storedProject(t, h.env) != before || len(h.env.Emulator.DeployKeys("alice/site")) != 0 {
		t.Fatal("something changed before confirming")
	}
	uuid := buttonValue(confirm.Find(`[data-testid="confirm-change"]`), "confirm")
	p = change(t, h, h.env.BBURL+"/alice/site", uuid)
	if p.Status != http.StatusOK || !strings.Contains(p.Text(`[data-testid="repository-notice"]`), "now uses alice/site") {
		t.Fatalf("confirm: %d %s", p.Status, p.Body)
	}
	if s, _ := keyStatus(p); s != "valid" {
		t.Fatalf("new key: %s", s)
	}
	if s, _ := hookStatus(p); s != "valid" {
		t.Fatalf("new hook: %s", s)
	}
	if len(h.env.Emulator.DeployKeys("alice/site")) != 1 || len(h.env.Emulator.Hooks("alice/site")) != 1 {
		t.Fatal("no key and hook on the new repository")
	}
	for _, k := range h.env.Emulator.DeployKeys("alice/api") {
		if k.ID == oldKey.ID {
			t.Fatal("the old key is still on the old repository")
		}
	}
	if len(h.env.Emulator.Hooks("alice/api")) != 0 {
		t.Fatal("the old hook is still on the old repository")
	}
	if stored := storedProject(t, h.env); stored.fullName != "alice/site" || stored.uuid == before.uuid {
		t.Fatalf("stored %+v", stored)
	}
}

func TestChangeWithoutAccessOrWhileBitbucketFails(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	h.env.Emulator.AddWorkspace("secret", "Secret")
	h.env.Emulator.AddRepository("secret", "vault", true)
	before := storedProject(t, h.env)

	p := change(t, h, h.env.BBURL+"/secret/vault", "")
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Text(`[data-testid="url-error"]`), "no repository secret/vault that Alice Tester can see") {
		t.Fatalf("no access: %d %s", p.Status, p.Body)
	}
	h.env.Emulator.FailAPI(emulator.Failure{Status: 500})
	p = change(t, h, h.env.BBURL+"/alice/site", "")
	if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="repository-notice"]`), "Nothing was changed") {
		t.Fatalf("Bitbucket failing: %d %s", p.Status, p.Body)
	}
	if storedProject(t, h.env) != before {
		t.Fatal("the project changed")
	}
	// Failing half-way through a switch: the new key is taken back, the
	// project keeps its repository, key and hook.
	h.env.Emulator.ClearFailures()
	p = change(t, h, h.env.BBURL+"/alice/site", "")
	uuid := buttonValue(p.Doc.Find(`[data-testid="confirm-change"]`), "confirm")
	h.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/site/hooks", Method: "POST", Status: 500})
	p = change(t, h, h.env.BBURL+"/alice/site", uuid)
	if p.Status != http.StatusBadGateway {
		t.Fatalf("switch with a failing hook creation: %d %s", p.Status, p.Body)
	}
	if storedProject(t, h.env) != before || len(h.env.Emulator.DeployKeys("alice/site")) != 0 || len(h.env.Emulator.DeployKeys("alice/api")) != 1 {
		t.Fatal("a failed switch left changes behind")
	}
}

func TestTroubleshootingReportsMove(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	h.env.Emulator.RenameRepository("alice/api", "api-v2")
	page := h.c.Get("/troubleshooting")
	p := h.c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	step := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-repository"]`)
	if s, _ := step.Attr("data-status"); s != "failed" || !strings.Contains(step.Text(), "moved/renamed to alice/api-v2") {
		t.Fatalf("repository step: %s %q", s, step.Text())
	}
	if s, _ := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-deploy-key"]`).Attr("data-status"); s != "ok" {
		t.Fatalf("a rename was reported as a deploy key problem: %s", s)
	}
	update := step.Find(`[data-testid="update-url"]`)
	form := url.Values{"url": {buttonValue(update, "url")}, "from": {buttonValue(update, "from")}}
	if form.Get("from") != "checklist" || form.Get("url") == "" {
		t.Fatalf("Update URL's values: %v", form)
	}
	r := h.c.HTMX(http.MethodPost, h.project.URL.Path+"/repository", page, form)
	if !strings.Contains(r.Text(`[data-testid="repository-notice"]`), "now uses alice/api-v2") || r.Has("title") || r.Has("hx-partial") {
		t.Fatalf("Update URL from troubleshooting answers with more than its outcome: %s", r.Body)
	}
}

// buttonValue is the value a button's form posts under name (a hidden
// field beside the button).
func buttonValue(button *goquery.Selection, name string) string {
	return button.Closest("form").Find(`input[name="`+name+`"]`).AttrOr("value", "")
}
