package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
	"tether/views"
)

// createInPicker opens New project and presses Create on repo, then waits
// for the project page.
func createInPicker(b *apptest.Browser, env *apptest.Env, repo string) {
	b.T.Helper()
	b.Navigate(env.URL + "/projects/new")
	b.Click(`[data-repository="` + repo + `"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="project-name"]`)
}

// rowIndicator is the JavaScript test for "the working indicator of the
// picker row for repo is showing".
func rowIndicator(repo string) string {
	return `document.querySelector('[data-repository="` + repo + `"] [data-testid="creating"]')?.classList.contains("htmx-request")`
}

// On a long repository list, Create far down the page shows its working
// indicator and its outcome on the row that was clicked, inside the
// window; repositories the person can read but not administer are marked,
// with why, and offer no Create.
func TestBrowserPickerShowsOutcomeOnTheRow(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Emulator.AddWorkspaceMember("acme", "alice", true)
	for i := 1; i <= 30; i++ {
		env.Emulator.AddRepository("acme", fmt.Sprintf("service-%02d", i), true)
	}
	env.Emulator.SetRepoPermission("alice", "acme/service-05", "read")
	env.Emulator.SetRepoPermission("alice", "acme/service-06", "write")
	// Adding the key to service-28 takes a while, then Bitbucket fails.
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/acme/service-28/deploy-keys", Method: http.MethodPost,
		Stall: 2 * time.Second, Status: http.StatusInternalServerError, Times: 1})
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-repository="acme/service-30"]`)

	for _, repo := range []string{"acme/service-05", "acme/service-06"} {
		row := `[data-repository="` + repo + `"]`
		if b.Attr(row, "data-admin") != "false" || !strings.Contains(b.Text(row), "Needs admin rights") ||
			!strings.Contains(b.Text(row), "not an admin") || !strings.Contains(b.Text(`[data-testid="admin-needed"]`), "only its admins may do") {
			t.Fatalf("%s is not marked as one Alice cannot administer: %q", repo, b.Text(row))
		}
		if b.Eval(`String(!!document.querySelector('`+row+` [data-testid="create"]'))`) != "false" {
			t.Fatalf("%s offers Create", repo)
		}
	}
	if got := b.Text(`[data-testid="repository-count"]`); got != "30 repositories; you administer 28." {
		t.Fatalf("count: %q", got)
	}
	b.Eval(`document.querySelector('[data-repository="acme/service-05"]').scrollIntoView({block: "center"}); "ok"`)
	b.ScreenshotViewport("picker-marks-not-admin")

	// Far down the list: the indicator and then the error show on the row,
	// and the window still shows that row.
	b.Click(`[data-repository="acme/service-28"] [data-testid="create"]`)
	b.WaitFor(rowIndicator("acme/service-28"), 2*time.Second)
	if !b.InViewport(`[data-repository="acme/service-28"] [data-testid="creating"]`) {
		t.Fatal("the working indicator is outside the window")
	}
	if got := b.Eval(`String(document.querySelector('[data-repository="acme/service-28"]').getBoundingClientRect().top + scrollY > 2 * innerHeight && scrollY > 0)`); got != "true" {
		t.Fatal("the row is not far down a scrolled page: the test proves nothing")
	}
	b.ScreenshotViewport("picker-creating-on-row")
	b.WaitFor(`!!document.querySelector('[data-repository="acme/service-28"] [data-testid="create-result"] [data-testid="error"]')`, 10*time.Second)
	if !b.InViewport(`[data-repository="acme/service-28"] [data-testid="create-result"] [data-testid="error"]`) {
		t.Fatal("the error is outside the window")
	}
	if msg := b.Text(`[data-repository="acme/service-28"] [data-testid="error"]`); !strings.Contains(msg, "acme/service-28") {
		t.Fatalf("error on the row: %q", msg)
	}
	if n := b.Eval(`String(document.querySelectorAll('[data-testid="error"]').length)`); n != "1" {
		t.Fatalf("%s error messages on the page, want the one on the row", n)
	}
	if b.Eval(`String(`+rowIndicator("acme/service-28")+`)`) != "false" {
		t.Fatal("the indicator still shows after the answer")
	}
	b.ScreenshotViewport("picker-error-on-row")

	// The search narrows the list in place; "No repositories match" only
	// when a search matches nothing.
	b.Type(`[data-testid="repository-search"]`, "zzz")
	b.WaitFor(`document.querySelector('[data-testid="no-repositories"]')?.textContent.trim() === "No repositories match “zzz”."`, 5*time.Second)
	b.Eval(`document.querySelector('[data-testid="repository-search"]').value = ""; "ok"`)
	b.Type(`[data-testid="repository-search"]`, "service-29")
	b.WaitFor(`document.querySelectorAll('[data-testid="repository"]').length === 1`, 5*time.Second)
	b.ScreenshotViewport("picker-search")

	// Another repository works: it lands on the new project.
	b.Click(`[data-repository="acme/service-29"] [data-testid="create"]`)
	b.WaitFor(`location.pathname.startsWith("/projects/") && !!document.querySelector('[data-testid="project-name"]')`, 10*time.Second)
	if got := b.Text(`[data-testid="project-name"]`); got != "acme/service-29" {
		t.Fatalf("landed on %q", got)
	}
}

// Update URL after a rename: the heading, the window title, Delete and the
// project list follow the repository's new name, without a reload.
func TestBrowserProjectNameFollowsRepository(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Health.Coalesce = 0 // Check now right after creating checks again
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	createInPicker(b, env, "alice/api")

	// Renamed on Bitbucket; Check now finds it and the page offers it.
	env.Emulator.RenameRepository("alice/api", "api-v2")
	b.Press(`[data-testid="deploy-key-check"]`)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-detail"]')?.textContent.includes("alice/api-v2")`, 15*time.Second)
	b.Navigate(env.URL + b.Eval(`location.pathname`))
	b.WaitFor(`!!document.querySelector('[data-testid="update-url"]')`, 5*time.Second)
	b.Eval(`window.tetherMarker = "same page"; "ok"`)
	b.Press(`[data-testid="update-url"]`)
	// htmx sets the title once every part of the answer is swapped in.
	b.WaitFor(`document.querySelector('[data-testid="project-name"]')?.textContent.trim() === "alice/api-v2" && document.title === "alice/api-v2 · Tether"`, 15*time.Second)
	if got := b.Text(`[data-testid="delete-what"] strong`); got != "alice/api-v2" {
		t.Fatalf("Delete names %q", got)
	}
	if got := b.Attr(`[data-testid="delete-section"] form`, "hx-confirm"); !strings.Contains(got, "Delete the project alice/api-v2?") {
		t.Fatalf("Delete asks %q", got)
	}
	if got := b.Eval(`window.tetherMarker || "reloaded"`); got != "same page" {
		t.Fatal("the page was reloaded")
	}
	b.Screenshot("project-renamed-in-place")
	b.Navigate(env.URL + "/projects")
	if got := b.Text(`[data-testid="project-row"] td.name`); got != "alice/api-v2" {
		t.Fatalf("the list names %q", got)
	}
}

// A Member sees on every page only what a Member may do: no New project,
// Regenerate, Change, Update URL, Delete, Invite, role or Remove controls.
func TestBrowserMemberSeesOnlyWhatTheyMayDo(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.env.Emulator.RenameRepository("acme/api", "api-v2")
	checkKey(t, tm.alice, tm.project) // the move is detected: Update URL is offered to admins
	tm.join(t, tm.invite(t))
	b := apptest.NewBrowser(t)
	b.Navigate(tm.env.URL + "/login")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket("bob")
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`location.pathname === "/projects" || location.pathname === "/account"`, 10*time.Second)
	admin := `[data-testid="new-project"], a[href="/projects/new"], [data-testid$="-regenerate"], [data-testid="regenerate"],
		[data-testid="change"], [data-testid="update-url"], [data-testid="delete-project"], [data-testid="invite"],
		[data-testid="change-role"], [data-testid="remove-member"], [data-testid="revoke-invitation"], [data-testid="rehome"]`
	for _, page := range []struct{ path, wait, shot string }{
		{"/projects", `[data-testid="projects"]`, "member-projects"},
		{tm.id, `#deploy-key [data-testid="health-badge"]`, "member-project"},
		{"/team", `[data-testid="members"]`, "member-team"},
		{"/team/audit", `[data-testid="audit"]`, "member-audit"},
		{"/troubleshooting", `[data-testid="checklist"]`, "member-troubleshooting"},
	} {
		b.Navigate(tm.env.URL + page.path)
		b.WaitVisible(page.wait)
		if got := b.Eval(`[...document.querySelectorAll(` + "`" + admin + "`" + `)].map(e => e.outerHTML.slice(0, 80)).join(" | ")`); got != "" {
			t.Errorf("a Member sees on %s: %s", page.path, got)
		}
		b.Screenshot(page.shot)
	}
	// The move is still there to see, with who can fix it.
	b.Navigate(tm.env.URL + tm.id)
	b.WaitVisible(`[data-testid="moved"]`)
	if got := b.Text(`[data-testid="moved"]`); !strings.Contains(got, "An admin can press Update URL") {
		t.Fatalf("moved banner for a Member: %q", got)
	}
}

// After a revoke, the checklist names the one cause with the one fix;
// every step that depends on it waits on it instead of repeating it.
func TestBrowserTroubleshootingOneCauseOneFix(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	env.Emulator.AddRepository("alice", "web", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	createInPicker(b, env, "alice/api")
	createInPicker(b, env, "alice/web")
	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)

	b.Navigate(env.URL + "/troubleshooting")
	b.WaitVisible(`[data-testid="checklist"]`)
	b.Screenshot("troubleshooting-after-revoke")
	if n := b.Eval(`String(document.querySelectorAll('[data-testid="grant-access"]').length)`); n != "1" {
		t.Fatalf("%s Grant access buttons, want one", n)
	}
	if got := b.Attr(`[data-testid="step-connection"]`, "data-status"); got != "failed" {
		t.Fatalf("connection step %q", got)
	}
	if b.Eval(`String(!!document.querySelector('[data-testid="step-connection"] [data-testid="grant-access"]'))`) != "true" {
		t.Fatal("Grant access is not on the connection step")
	}
	// Every later step waits on the connection, the repository place
	// included: nothing is OK that was not checked.
	got := b.Eval(`[...document.querySelectorAll('[data-testid^="step-"]:not([data-testid="step-connection"]):not([data-testid="step-projects"]):not([data-testid="step-delivery"])')]
		.map(s => s.dataset.testid + "=" + s.dataset.status + ":" + (s.querySelector('[data-testid="waits-on"]')?.textContent.trim() || "")).join("\n")`)
	lines := strings.Split(got, "\n")
	if len(lines) != 7 { // repositories, and 3 steps for each of 2 projects
		t.Fatalf("steps:\n%s", got)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "=waiting:Waiting on: Bitbucket connection.") {
			t.Errorf("step does not wait on the connection: %s", l)
		}
	}
	if n := b.Eval(`String(document.querySelectorAll('[data-testid="fix"]').length)`); n != "3" { // the connection, and "push a commit" twice
		t.Errorf("%s fixes on the page, want one per cause", n)
	}

	// The one fix fixes it: every step comes back OK.
	b.Click(`[data-testid="step-connection"] [data-testid="grant-access"]`)
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`location.pathname === "/troubleshooting" && location.search.includes("bitbucket=connected") && !!document.querySelector('[data-testid="checklist"]')`, 15*time.Second)
	b.WaitFor(`[...document.querySelectorAll('[data-testid="step-connection"], [data-testid="step-repositories"], [data-testid="step-deploy-key"], [data-testid="step-webhook"], [data-testid="step-repository"]')].every(s => s.dataset.status === "ok")`, 15*time.Second)
	b.Screenshot("troubleshooting-after-grant")
}

// A grant that lost a scope is offered Grant access on the account page;
// a revoked connection says on the project page, to its owner, where to
// grant access again, as a link and a button.
func TestBrowserGrantAccessWhereItIsNeeded(t *testing.T) {
	t.Parallel()
	// Only Check now checks: no background check races it.
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Health.Coalesce = 0
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")

	env.Emulator.DropScope("alice", apptest.ClientID, "webhook")
	b.Click(`[data-testid="check-now"]`)
	b.WaitVisible(`[data-testid="missing-scopes"]`)
	b.WaitVisible(`#bitbucket-connection [data-testid="grant-access"]`)
	b.Screenshot("account-missing-scope")
	b.Click(`#bitbucket-connection [data-testid="grant-access"]`)
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`location.pathname === "/account" && location.search.includes("bitbucket=connected") && document.readyState === "complete"`, 10*time.Second)
	if b.Eval(`String(!!document.querySelector('[data-testid="missing-scopes"]'))`) != "false" {
		t.Fatal("still missing scopes after Grant access")
	}

	createInPicker(b, env, "alice/api")
	project := b.Eval(`location.pathname`)
	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	b.Press(`[data-testid="deploy-key-check"]`)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.reason === "OAuth permissions revoked"`, 10*time.Second)
	b.Navigate(env.URL + project)
	b.WaitVisible(`#backing [data-testid="grant-access"]`)
	if got := b.Attr(`#deploy-key [data-testid="health-detail"] a`, "href"); got != "/account" {
		t.Fatalf("the detail's account page link goes to %q", got)
	}
	b.Screenshot("project-revoked-owner")
	b.Press(`#backing [data-testid="grant-access"]`)
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`location.pathname === "`+project+`" && location.search.includes("bitbucket=connected") && document.readyState === "complete"`, 10*time.Second)
	b.Press(`[data-testid="deploy-key-check"]`)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.status === "valid"`, 10*time.Second)
}

// Copy on the invitation link says it copied, and when the browser will not
// copy, selects the link and says how.
func TestBrowserCopyInvitationLink(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	b := apptest.NewBrowser(t)
	logInAsAlice(tm, b)
	b.Navigate(tm.env.URL + "/team")
	b.Click(`[data-testid="invite"]`)
	b.WaitVisible(`[data-testid="copy-invite"]`)
	b.Eval(`window.tetherCopied = ""; navigator.clipboard.writeText = (t) => { window.tetherCopied = t; return Promise.resolve() }; "ok"`)
	b.Click(`[data-testid="copy-invite"]`)
	b.WaitFor(`document.querySelector('[data-testid="copy-result"]').textContent === "Copied."`, 2*time.Second)
	if got, link := b.Eval(`window.tetherCopied`), b.Attr(`[data-testid="invite-link"]`, "value"); got != link || link == "" {
		t.Fatalf("copied %q, the link is %q", got, link)
	}
	b.ScreenshotViewport("invite-copied")

	// No clipboard and no copy command: the link is selected and the page
	// says how to copy it.
	b.Eval(`Object.defineProperty(navigator, "clipboard", {value: undefined}); document.execCommand = () => false; "ok"`)
	b.Click(`[data-testid="copy-invite"]`)
	b.WaitFor(`document.querySelector('[data-testid="copy-result"]').textContent.includes("Ctrl+C")`, 2*time.Second)
	if got := b.Eval(`String(document.activeElement.id === "invite-link" && document.activeElement.selectionEnd - document.activeElement.selectionStart === document.activeElement.value.length)`); got != "true" {
		t.Fatal("the link is not selected for copying by hand")
	}
	b.ScreenshotViewport("invite-copy-fallback")
}

// An outcome in a part of the page that polls stays through the polls
// until dismissed, or until the state it reported changes.
func TestBrowserOutcomeSurvivesPolls(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Health.Coalesce = 0
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`#deploy-key [data-testid="health-badge"][data-status="valid"]`)
	b.Eval(`window.tetherPolls = 0; document.addEventListener("htmx:after:swap", e => { if (e.detail.ctx.target?.id === "deploy-key" || e.detail.ctx.sourceElement?.id === "deploy-key") window.tetherPolls++ }); window.confirm = () => true; "ok"`)

	regenerated := `!!document.querySelector('[data-testid="deploy-key-message"]')`
	b.Press(`[data-testid="deploy-key-regenerate"]`)
	b.WaitFor(regenerated, 15*time.Second)
	polls := `window.tetherPolls >= 2` // the Regenerate answer, then a poll
	b.WaitFor(polls, 15*time.Second)
	if b.Eval(`String(`+regenerated+`)`) != "true" {
		t.Fatal("the Regenerate message vanished at a poll")
	}
	b.ScreenshotViewport("outcome-after-polls")
	b.Press(`[data-testid="deploy-key-message"] [data-dismiss]`)
	if b.Eval(`String(`+regenerated+`)`) != "false" {
		t.Fatal("Dismiss left the message")
	}

	// Once more, then the state changes on Bitbucket: once the row shows
	// it, the message goes.
	b.Press(`[data-testid="deploy-key-regenerate"]`)
	b.WaitFor(regenerated, 15*time.Second)
	for _, k := range env.Emulator.DeployKeys("alice/api") {
		env.Emulator.DeleteDeployKey("alice/api", k.ID)
	}
	// Check now records it; the row shows it from its answer or, should a
	// poll swap the row while Check now runs, from the next poll.
	b.Press(`[data-testid="deploy-key-check"]`)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.status === "invalid"`, 25*time.Second)
	if b.Eval(`String(`+regenerated+`)`) != "false" {
		t.Fatal("the message outlived the state it reported")
	}
}

// At 1280 px the header keeps Log out on one line inside the page, status
// pills stay one line, names do not break mid-word, the audit log's When
// stays on one line, Team actions line up, Delete project sits at the end,
// and the repository search draws no outline around Refresh.
func TestBrowserLayoutAt1280(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Health.Coalesce = 0
	env.AddUser("alice")
	env.AddUser("bob")
	ws := "acme-platform-engineering"
	env.Emulator.AddWorkspaceMember(ws, "alice", true)
	env.Emulator.AddWorkspaceMember(ws, "bob", false)
	long := ws + "/customer-billing-and-invoicing-service"
	env.Emulator.AddRepository(ws, "customer-billing-and-invoicing-service", true)
	env.Emulator.AddRepository(ws, "api", true)

	b := apptest.NewBrowser(t)
	// expect fails the test, with a screenshot, unless the JavaScript
	// condition holds and the page is no wider than the window; then it
	// saves the page as shot.
	expect := func(cond, shot, failure string) {
		t.Helper()
		if b.Eval(`String((`+cond+`) && document.documentElement.scrollWidth <= document.documentElement.clientWidth)`) != "true" {
			b.Screenshot(shot + "-broken")
			t.Fatal(failure)
		}
		b.Screenshot(shot)
	}
	b.Navigate(env.URL + "/login")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket("alice")
	b.Click(`#grant-access`)
	b.WaitVisible(`[data-testid="create-organization"]`)
	b.Eval(`document.querySelector("#name").value = "Acme Platform Engineering and Infrastructure Operations"; "ok"`)
	b.Click(`[data-testid="create-organization"]`)
	b.WaitFor(`location.pathname === "/projects"`, 10*time.Second)
	b.WaitVisible(`form[action="/logout"] button`)

	// Header at 1280 px.
	header := `(() => { const out = document.querySelector('form[action="/logout"] button').getBoundingClientRect();
		const lh = parseFloat(getComputedStyle(document.querySelector('form[action="/logout"] button')).lineHeight) || 24;
		const mid = e => { const r = e.getBoundingClientRect(); return (r.top + r.bottom) / 2 };
		const items = [...document.querySelectorAll('header nav li')];
		return out.right <= document.documentElement.clientWidth && out.height < 2.6 * lh &&
			items.every(li => Math.abs(mid(li) - mid(items[0])) < 6) })()`
	expect(header, "layout-header", "the header does not fit one line: Log out wraps, leaves the page, or the navigation breaks into rows")

	// The repository search: no outline around Refresh when it has focus.
	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-testid="refresh-repositories"]`)
	b.Eval(`document.querySelector('[data-testid="refresh-repositories"]').focus(); "ok"`)
	search := `(() => { const f = document.querySelector('.picker-search'), i = f.querySelector('input'), r = f.querySelector('button');
		return !f.closest('[role=search]') && getComputedStyle(f).boxShadow === "none" && i.getBoundingClientRect().width > 2 * r.getBoundingClientRect().width })()`
	expect(search, "layout-picker-search", "the search field and Refresh are drawn as one outlined group, or Refresh is wider than it needs")

	createInPicker(b, env, long)
	createInPicker(b, env, ws+"/api")
	// Break the long one: reasons are long words for a pill.
	env.Emulator.DeleteDeployKey(long, env.Emulator.DeployKeys(long)[0].ID)
	env.Emulator.DeleteHook(long, env.Emulator.Hooks(long)[0].UUID)
	b.Navigate(env.URL + "/projects")
	b.Eval(`[...document.querySelectorAll('[data-testid="project-row"] a')].find(a => a.textContent.includes("customer")).click(); "ok"`)
	b.WaitFor(`document.querySelector('[data-testid="project-name"]')?.textContent.includes("customer")`, 10*time.Second)
	b.Press(`[data-testid="deploy-key-check"]`)
	// A layout test: the check may be slow on a busy machine.
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.status === "invalid"`, 30*time.Second)
	b.WaitFor(`document.querySelector('#webhook [data-testid="health-badge"]')?.dataset.status === "invalid"`, 30*time.Second)

	// The project page: Delete project at the end, not a wide button.
	del := `(() => { const s = document.querySelector('[data-testid="delete-section"]'), main = document.querySelector('main');
		const btn = s.querySelector('button').getBoundingClientRect();
		return main.lastElementChild === s && btn.width < main.getBoundingClientRect().width / 2 &&
			s.getBoundingClientRect().top > document.querySelector('#activity').getBoundingClientRect().top })()`
	expect(del, "layout-project", "Delete project is not a modest button at the end of the project page")

	// Project list: pills on one line, names unbroken.
	b.Navigate(env.URL + "/projects")
	b.WaitVisible(`[data-testid="projects"]`)
	pills := `[...document.querySelectorAll('[data-testid="projects"] .badge')].every(p => p.getClientRects().length === 1 && p.getBoundingClientRect().height < 40)`
	// A name may wrap after its "/", never inside the workspace or slug.
	names := `[...document.querySelectorAll('[data-testid="project-row"] td.name a .seg')].every(s => s.getClientRects().length === 1)`
	expect(pills+" && "+names, "layout-projects", "a pill wraps into two lines or a name breaks")
	if got := b.Text(`[data-testid="project-row"] [data-testid="health-reason"]`); got != "removed from the repository" {
		t.Fatalf("the reason under the pill: %q", got)
	}

	// Team: Bob joins; actions line up in a row and across rows.
	b.Navigate(env.URL + "/team")
	b.Click(`[data-testid="invite"]`)
	b.WaitVisible(`[data-testid="invite-link"]`)
	link := b.Attr(`[data-testid="invite-link"]`, "value")
	bob := env.Client()
	bob.SignUpWithBitbucket("bob")
	p := bob.Get(link)
	bob.Submit(p, `form:has([data-testid="accept"])`, nil, "")
	b.Navigate(env.URL + "/team")
	b.WaitVisible(`[data-testid="remove-member"]`)
	aligned := `(() => { const rows = [...document.querySelectorAll('.member-actions')];
		if (rows.length < 1) return false;
		return rows.every(r => { const tops = [...r.querySelectorAll('button')].map(b => Math.round(b.getBoundingClientRect().top));
			return tops.length >= 2 && Math.max(...tops) - Math.min(...tops) <= 2 }) })()`
	expect(aligned, "layout-team", "Team actions are stacked or misaligned")

	// Audit log: more than 30 entries, When on one line, a page that fits.
	for range 30 {
		b.Click(`[data-testid="invite"]`)
		b.WaitVisible(`[data-testid="invite-link"]`)
		b.Eval(`document.querySelector('[data-testid="new-invitation"]').remove(); "ok"`)
	}
	b.Navigate(env.URL + "/team/audit")
	b.WaitVisible(`[data-testid="audit"]`)
	when := `(() => { const cells = [...document.querySelectorAll('[data-testid="audit-entry"] td.when')];
		return cells.length >= 31 && cells.every(c => c.querySelector('time').getClientRects().length === 1) &&
			document.querySelector('[data-testid="audit"]').getBoundingClientRect().height < cells.length * 80 })()`
	expect(when, "layout-audit", "the audit log's When wraps, its rows are tall, or it is wider than the window")
}

// With scripts off (blocked, or htmx not loaded yet) every action button
// still does its job as a plain form post and lands on the page saying
// what happened: Check now on a project, Invite and Revoke on the Team
// page. No "working" indicator shows when nothing is working.
func TestBrowserActionsWorkWithoutJavaScript(t *testing.T) {
	t.Parallel()
	tm, b := aliceWithoutJavaScript(t)

	b.Navigate(tm.env.URL + tm.id)
	if got := b.Eval(`getComputedStyle(document.querySelector("#deploy-key-indicator")).visibility`); got != "hidden" {
		t.Errorf("the deploy key's indicator is %q: it says Tether is working while nothing is", got)
	}
	b.Click(`[data-testid="deploy-key-check"]`)
	b.WaitVisible(`main > [data-testid="flash"]`)
	if got := b.Text(`main > [data-testid="flash"]`); !strings.Contains(got, "Deploy Key checked with Bitbucket just now: Valid.") {
		t.Errorf("Check now without scripts says %q", got)
	}
	b.ScreenshotViewport("no-js-check-now")

	b.Navigate(tm.env.URL + "/team")
	b.Click(`[data-testid="invite"]`)
	b.WaitVisible(`[data-testid="invite-link"]`)
	if link := b.Attr(`[data-testid="invite-link"]`, "value"); !strings.HasPrefix(link, tm.env.URL+"/invitations/") {
		t.Fatalf("Invite without scripts shows the link %q", link)
	}
	// Copy needs a script: without one it is not offered (the link is
	// there to select by hand).
	if got := b.Eval(`getComputedStyle(document.querySelector('[data-testid="copy-invite"]')).display`); got != "none" {
		t.Errorf("without scripts the Copy button is shown (display %q) and does nothing", got)
	}
	b.Click(`[data-testid="revoke-invitation"]`)
	b.WaitVisible(`main > [data-testid="flash"]`)
	if got := b.Text(`main > [data-testid="flash"]`); !strings.Contains(got, "revoked") {
		t.Errorf("Revoke without scripts says %q", got)
	}
	// Revoke went back to the Team page (303), so a reload reads the page
	// instead of posting Revoke again.
	if got := b.Eval(`location.pathname`); got != "/team" {
		t.Errorf("Revoke without scripts ended at %s", got)
	}
	// The organization switch's Switch button (shown without scripts) sits
	// beside Log out in the header, within the window, covering nothing.
	if got := b.Eval(`(() => {
		const a = document.querySelector(".org-switch button").getBoundingClientRect();
		const b = document.querySelector('header form[action="/logout"] button').getBoundingClientRect();
		return String(a.right <= b.left && b.right <= innerWidth && a.width > 0) })()`); got != "true" {
		t.Error("without scripts the header's Switch button overlaps Log out or leaves the window")
	}
	b.ScreenshotViewport("no-js-revoked")

	// Troubleshooting runs its checklist on Check, and again on Check
	// again, each a page the browser loads itself.
	b.Navigate(tm.env.URL + "/troubleshooting")
	if got := b.Eval(`getComputedStyle(document.querySelector("#checklist-indicator")).visibility`); got != "hidden" {
		t.Errorf("the checklist's indicator is %q without scripts", got)
	}
	b.Click(`[data-testid="run-checks"]`)
	b.WaitVisible(`[data-testid="checklist"] [data-testid="step-connection"]`)
	b.Eval(`document.body.dataset.before = "check-again"; ""`) // gone once the new page is in
	b.Click(`[data-testid="check-again"]`)
	b.WaitVisible(`body:not([data-before]) [data-testid="checklist"] [data-testid="step-connection"]`)
	if got := b.Attr(`[data-testid="step-connection"]`, "data-status"); got != "ok" {
		t.Errorf("the checklist without scripts says the connection is %q", got)
	}
	b.ScreenshotViewport("no-js-troubleshooting")

	// Check now on the Account page says what it found, on the page.
	b.Navigate(tm.env.URL + "/account")
	b.Click(`[data-testid="check-now"]`)
	b.WaitVisible(`main > [data-testid="flash"]`)
	if got := b.Text(`main > [data-testid="flash"]`); got != "✓ Bitbucket connection checked just now: Connected." {
		t.Errorf("the account's Check now without scripts says %q", got)
	}
	if got := b.Eval(`location.pathname`); got != "/account" {
		t.Errorf("the account's Check now without scripts ended at %s", got)
	}
	b.ScreenshotViewport("no-js-account-checked")
}

// Invite pressed three times in quick succession makes one invitation,
// whose link is shown: the button is disabled while the first press is in
// flight, and says it is working.
func TestBrowserInviteTripleClickMakesOneInvitation(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	b := apptest.NewBrowser(t)
	logInAsAlice(tm, b)
	b.Navigate(tm.env.URL + "/team")
	b.WaitFor(`document.readyState === "complete" && !!window.htmx`, 10*time.Second)
	var x, y float64
	if _, err := fmt.Sscanf(b.Eval(`(() => { const e = document.querySelector('[data-testid="invite"]'); e.scrollIntoView({block: "center"});
		const r = e.getBoundingClientRect();
		return (r.left + r.width/2) + " " + (r.top + r.height/2) })()`), "%g %g", &x, &y); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(b.Ctx,
		chromedp.MouseClickXY(x, y, chromedp.ClickCount(1)),
		chromedp.MouseClickXY(x, y, chromedp.ClickCount(2)),
		chromedp.MouseClickXY(x, y, chromedp.ClickCount(3))); err != nil {
		t.Fatal(err)
	}
	b.WaitVisible(`[data-testid="invite-link"]`)
	b.WaitFor(`!document.querySelector(".htmx-request")`, 10*time.Second)
	var n int
	if err := rawDB(t, tm.env).QueryRow(`SELECT COUNT(*) FROM invitations WHERE revoked_at IS NULL AND accepted_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("three quick presses of Invite made %d invitations, want 1", n)
	}
	if rows := b.Eval(`String(document.querySelectorAll('[data-testid="invitation"]').length)`); rows != "1" {
		t.Errorf("the Team page lists %s pending invitations, want 1", rows)
	}
	if link := b.Attr(`[data-testid="invite-link"]`, "value"); !strings.HasPrefix(link, tm.env.URL+"/invitations/") {
		t.Errorf("the link shown is %q", link)
	}
	b.ScreenshotViewport("invite-triple-click")
}

// logInAsAlice logs the browser in with Bitbucket as Alice, the team's
// admin, and waits for where that lands.
func logInAsAlice(tm *team, b *apptest.Browser) {
	b.T.Helper()
	b.Navigate(tm.env.URL + "/login")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket("alice")
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`location.pathname === "/projects" || location.pathname === "/account"`, 10*time.Second)
}

// aliceWithoutJavaScript is Alice's team with Alice signed in, in a
// browser whose scripts are then switched off.
func aliceWithoutJavaScript(t *testing.T) (*team, *apptest.Browser) {
	t.Helper()
	tm := newTeam(t)
	b := apptest.NewBrowser(t)
	logInAsAlice(tm, b)
	b.DisableJavaScript()
	return tm, b
}

// Without JavaScript, Regenerate asks first, on a page of its own: Cancel
// goes back to the project with nothing replaced, and Regenerate there
// replaces the key and lands on the project with the outcome and the new
// fingerprint.
func TestBrowserRegenerateAsksFirstWithoutJavaScript(t *testing.T) {
	t.Parallel()
	tm, b := aliceWithoutJavaScript(t)

	b.Navigate(tm.env.URL + tm.id)
	// The fingerprint is under the row's Details, closed until opened.
	fingerprint := func() string {
		return b.Eval(`document.querySelector('#deploy-key [data-testid="fingerprint"]')?.textContent ?? ""`)
	}
	before := fingerprint()
	keys := bitbucketState(tm.env)
	ask := func() {
		b.Click(`[data-testid="deploy-key-regenerate"]`)
		b.WaitVisible(`[data-testid="confirm-form"]`)
		if got := b.Eval(`location.pathname`); got != tm.id+"/deploy-key/regenerate" {
			t.Fatalf("Regenerate without scripts ended at %s, not on its question", got)
		}
		if got := b.Text(`[data-testid="question"]`) + " " + b.Text(`[data-testid="question-explained"]`); got != views.RegenerateQuestion("deploy-key") {
			t.Errorf("the page asks %q", got)
		}
		if bitbucketState(tm.env) != keys {
			t.Fatal("the key was replaced before the question was answered")
		}
	}
	ask()
	b.Click(`[data-testid="cancel"]`)
	b.WaitVisible(`[data-testid="deploy-key-regenerate"]`)
	if got := b.Eval(`location.pathname`); got != tm.id || fingerprint() != before || bitbucketState(tm.env) != keys {
		t.Fatalf("Cancel ended at %s with the key replaced", got)
	}

	ask()
	b.ScreenshotViewport("no-js-regenerate-asks")
	b.Click(`[data-testid="confirm-form"] [data-testid="confirm"]`)
	b.WaitVisible(`main > [data-testid="flash"]`)
	if got := b.Eval(`location.pathname`); got != tm.id {
		t.Errorf("the confirmed Regenerate ended at %s", got)
	}
	if got := b.Text(`main > [data-testid="flash"]`); !strings.Contains(got, "A new deploy key is in force") {
		t.Errorf("the confirmed Regenerate says %q", got)
	}
	if after := fingerprint(); after == before || !strings.HasPrefix(after, "SHA256:") || !strings.HasPrefix(before, "SHA256:") {
		t.Errorf("the fingerprint is %q after Regenerate (was %q)", after, before)
	}
	b.Click(`#deploy-key details summary`)
	b.WaitVisible(`#deploy-key [data-testid="fingerprint"]`)
	b.Screenshot("no-js-regenerated")
}

// What htmx fetches on a press is a link or a GET form, so it works with
// scripts (in place) and without (the browser follows it): the picker's
// Refresh list asks Bitbucket afresh either way, and Cancel on Change's
// question leaves the project as it was either way.
func TestBrowserRefreshAndCancelWithAndWithoutJavaScript(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.env.App.Projects.ListFresh = 0 // each Refresh list asks Bitbucket
	tm.env.Emulator.AddRepository("acme", "web", true)
	b := apptest.NewBrowser(t)
	logInAsAlice(tm, b)
	listed := func(name string) string {
		return `[...document.querySelectorAll('#repositories [data-testid="repository"]')].some(r => r.textContent.includes("` + name + `"))`
	}
	cancel := func(shot string) {
		t.Helper()
		b.Navigate(tm.env.URL + tm.id)
		b.Eval(`document.querySelector('#repository-url').value = ''; "ok"`)
		b.Type(`#repository-url`, tm.env.BBURL+"/acme/web")
		b.Click(`[data-testid="change"]`)
		b.WaitVisible(`[data-testid="cancel-change"]`) // the question: Use acme/web, or Cancel
		b.Screenshot(shot)
		b.Click(`[data-testid="cancel-change"]`)
		b.WaitFor(`!document.querySelector('[data-testid="cancel-change"]') && document.querySelector('#repository-url') && document.readyState === "complete"`, 10*time.Second)
		if got := b.Eval(`location.pathname`); got != tm.id {
			t.Errorf("Cancel ended at %s", got)
		}
	}

	// With scripts: in place.
	b.Navigate(tm.env.URL + "/projects/new")
	b.WaitFor(listed("acme/web"), 10*time.Second)
	tm.env.Emulator.AddRepository("acme", "fresh-one", true) // the listing Tether holds does not have it yet
	b.Click(`[data-testid="refresh-repositories"]`)
	b.WaitFor(listed("acme/fresh-one"), 10*time.Second)
	if got := b.Eval(`location.pathname + location.search`); got != "/projects/new" {
		t.Errorf("with scripts Refresh list left the page for %s", got)
	}
	cancel("change-question")

	// Without: the browser follows the GET.
	b.DisableJavaScript()
	b.Navigate(tm.env.URL + "/projects/new")
	tm.env.Emulator.AddRepository("acme", "fresher", true)
	b.Click(`[data-testid="refresh-repositories"]`)
	b.WaitFor(listed("acme/fresher")+` && document.readyState === "complete"`, 10*time.Second)
	b.ScreenshotViewport("no-js-refresh-list")
	cancel("no-js-change-question")
	if storedProject(t, tm.env).fullName != "acme/api" {
		t.Fatal("Cancel changed the project's repository")
	}
}
