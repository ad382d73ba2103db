package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
	"tether/internal/health"
)

// The demo's whole story in a real browser: create a project from a
// private repository, see both badges green, watch the deploy key turn
// invalid in place when it is deleted on Bitbucket, Regenerate it, push and
// see the workflow appear, rename the repository and press Update URL.
// Every POST here is an htmx request: it only succeeds because htmx sends
// the CSRF header inherited from <body>.
func TestBrowserProjectLifecycle(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{Cadence: &fastCadence, Env: bigBudget})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")

	b.Navigate(env.URL + "/projects")
	b.Click(`[data-testid="new-project"]`)
	b.WaitVisible(`[data-repository="alice/api"] [data-testid="create"]`)
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="project-name"]`)
	badge := func(part string) string {
		return `document.querySelector('#` + part + ` [data-testid="health-badge"]')?.dataset.status`
	}
	b.WaitFor(badge("deploy-key")+` === "valid" && `+badge("webhook")+` === "valid"`, 10*time.Second)
	b.Screenshot("project-created")
	b.Eval(`window.tetherMarker = "same page"; "ok"`)
	// Record the CSRF header of every request htmx sends from here on.
	b.Eval(`window.tetherPosts = [];
		document.addEventListener("htmx:before:request", e => {
			const r = e.detail.ctx.request;
			if (r.method.toUpperCase() === "POST") window.tetherPosts.push(String(r.headers["X-CSRF-Token"] || ""));
		}); "ok"`)

	// Deleted on Bitbucket: the badge turns invalid by itself.
	env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.reason === "removed from the repository"`, 30*time.Second)
	b.Screenshot("deploy-key-removed")

	// Regenerate (confirming the dialog): green again, in place.
	b.Eval(`window.confirm = () => true; "ok"`)
	b.Click(`[data-testid="deploy-key-regenerate"]`)
	b.WaitFor(badge("deploy-key")+` === "valid" && !!document.querySelector('[data-testid="deploy-key-message"]')`, 15*time.Second)

	// A push starts a workflow that shows up without a reload.
	if _, err := env.Emulator.Push("alice/api", "main", "Ship it", "alice"); err != nil {
		t.Fatal(err)
	}
	b.WaitFor(`!!document.querySelector('[data-testid="workflow"]')`, 15*time.Second)
	b.Screenshot("workflow-started")

	// Renamed on Bitbucket: the page offers the new URL; one click fixes it.
	env.Emulator.RenameRepository("alice/api", "api-v2")
	b.WaitFor(`!!document.querySelector('[data-testid="update-url"]')`, 30*time.Second)
	b.Screenshot("repository-moved")
	b.Click(`[data-testid="update-url"]`)
	b.WaitFor(`document.querySelector('[data-testid="repository-name"]')?.textContent.trim() === "alice/api-v2"`, 15*time.Second)
	// The rows were swapped in place by the answer's <hx-partial>s: their
	// fresh details name the new repository.
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-detail"]').textContent.includes("alice/api-v2") &&
		document.querySelector('#webhook [data-testid="health-detail"]').textContent.includes("alice/api-v2")`, 500*time.Millisecond)
	b.WaitFor(badge("deploy-key")+` === "valid" && `+badge("webhook")+` === "valid"`, 10*time.Second)
	b.Screenshot("repository-updated")

	if got := b.Eval(`window.tetherMarker || "reloaded"`); got != "same page" {
		t.Fatal("the page was reloaded")
	}
	posts := b.Eval(`JSON.stringify(window.tetherPosts)`)
	token := b.Eval(`JSON.parse(document.body.getAttribute("hx-headers:inherited"))["X-CSRF-Token"]`)
	if token == "" || !strings.Contains(posts, token) || strings.Contains(posts, `""`) {
		t.Fatalf("htmx POSTs carried %s, the page's token is %q", posts, token)
	}
}

// Change with a typed URL: a bad URL gets its message on the field, a
// good one updates the project in place.
func TestBrowserChangeRepositoryURL(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="project-name"]`)

	b.Type(`#repository-url`, "https://github.com/alice/api")
	b.Click(`[data-testid="change"]`)
	b.WaitVisible(`[data-testid="url-error"]`)
	if got := b.Attr(`#repository-url`, "aria-invalid"); got != "true" {
		t.Fatalf("field not marked invalid: %q", got)
	}
	b.Screenshot("change-url-refused")

	env.Emulator.RenameRepository("alice/api", "renamed")
	b.Eval(`document.querySelector('#repository-url').value = ''; "ok"`)
	b.Type(`#repository-url`, env.BBURL+"/alice/renamed")
	b.Click(`[data-testid="change"]`)
	b.WaitFor(`document.querySelector('[data-testid="repository-name"]')?.textContent.trim() === "alice/renamed"`, 15*time.Second)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.status === "valid"`, 10*time.Second)
	b.Screenshot("change-url-done")
}

// A second person, invited by link, sees the project's badges and no
// Regenerate.
func TestBrowserInvitedMemberSeesBadgesNotRegenerate(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	link := tm.invite(t)
	b := apptest.NewBrowser(t)
	b.Navigate(link)
	b.WaitVisible(`[data-testid="bitbucket-login"]`)
	b.Screenshot("invitation-signed-out")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket("bob")
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitVisible(`[data-testid="accept"]`)
	b.Click(`[data-testid="accept"]`)
	b.WaitFor(`location.pathname === "/projects"`, 10*time.Second)
	b.Navigate(tm.env.URL + tm.id)
	b.WaitFor(`document.querySelector('#deploy-key [data-testid="health-badge"]')?.dataset.status === "valid" && document.querySelector('#webhook [data-testid="health-badge"]')?.dataset.status === "valid"`, 10*time.Second)
	b.Screenshot("member-project-view")
	if got := b.Eval(`String(document.querySelectorAll('[data-testid$="-regenerate"], [data-testid="change"], [data-testid="delete-project"]').length)`); got != "0" {
		t.Fatalf("a member sees %s admin buttons", got)
	}
	if got := b.Eval(`String(document.querySelectorAll('[data-testid$="-check"]').length)`); got != "2" {
		t.Fatalf("a member sees %s Check now buttons, want 2", got)
	}
}

// fastCadence makes the background schedule look at a watched project
// every second, so a test sees a break on Bitbucket within seconds.
var fastCadence = health.Cadence{
	Watched: time.Second, Unwatched: time.Minute, WebhookWatched: 5 * time.Second, Webhook: time.Minute,
	Moves: time.Hour, Fresh: time.Hour, WatchFor: 30 * time.Second, Workers: 4, Refresh: time.Second,
}

// bigBudget gives each connection Bitbucket's largest hourly budget, for
// tests that look every second.
var bigBudget = map[string]string{"TETHER_BITBUCKET_BUDGET": "10000"}

// With Bitbucket slow, the card's own poll (every 10 s) does not redraw the
// card while Regenerate runs: the working indicator stays, the button stays
// disabled, and the outcome is what the person sees at the end — never an
// older state swapped in mid-action (issue 13, point 5). The same rule
// (hx-sync on the polled part) holds for every action in a polled part.
func TestBrowserActionOutlivesPolls(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	createInPicker(b, env, "alice/api")
	b.WaitVisible(`#webhook [data-testid="health-badge"][data-status="valid"]`)
	b.Eval(`window.tetherSwaps = 0; window.confirm = () => true;
		document.addEventListener("htmx:after:swap", e => { if (e.detail.ctx.target?.id === "webhook") window.tetherSwaps++ }); "ok"`)

	// Creating the new hook takes 12 s: longer than a poll interval.
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: http.MethodPost, Stall: 12 * time.Second, Times: 1})
	start := time.Now()
	b.Press(`[data-testid="webhook-regenerate"]`)
	working := `document.querySelector('#webhook-indicator')?.classList.contains("htmx-request") &&
		document.querySelector('[data-testid="webhook-regenerate"]')?.disabled === true`
	b.WaitFor(working, 5*time.Second)
	time.Sleep(time.Until(start.Add(11 * time.Second))) // a poll came due meanwhile
	if b.Eval(`String(`+working+`)`) != "true" || b.Eval(`String(window.tetherSwaps)`) != "0" {
		b.Screenshot("action-redrawn-by-poll")
		t.Fatalf("a poll redrew the webhook card while Regenerate ran (swaps %s)", b.Eval(`String(window.tetherSwaps)`))
	}
	b.WaitFor(`!!document.querySelector('[data-testid="webhook-message"]')`, 15*time.Second)
	if got := b.Text(`[data-testid="webhook-message"]`); !strings.Contains(got, "new webhook is in force") {
		t.Fatalf("outcome %q", got)
	}
	b.Screenshot("action-outlived-poll")
}
