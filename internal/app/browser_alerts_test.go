package app_test

import (
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
)

// The project-page part of the story in a real browser (1280×900): the
// webhook is deleted and the badge turns invalid by itself, two branches
// are pushed, Regenerate repairs it, the page offers the two missed
// branches without a reload, and Start missed workflows lists them as
// recovered in place. The Outbox shows the alert and the recovery.
func TestBrowserMissedWorkflows(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true, Cadence: &fastCadence, Env: bigBudget})
	env.App.Alerts.Every, env.App.Alerts.SendEvery, env.App.Recovery.Every = 100*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	env.RunBackground()
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="project-name"]`)
	badge := `document.querySelector('#webhook [data-testid="health-badge"]')?.dataset`
	b.WaitFor(badge+`?.status === "valid"`, 15*time.Second)
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))

	env.Emulator.DeleteHook("alice/api", env.Emulator.Hooks("alice/api")[0].UUID)
	b.WaitFor(badge+`?.reason === "deleted on Bitbucket"`, 30*time.Second)
	for _, branch := range []string{"main", "feature-login"} {
		if _, err := env.Emulator.Push("alice/api", branch, "Work on "+branch, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	b.Eval(`window.confirm = () => true; "ok"`)
	b.Click(`[data-testid="webhook-regenerate"]`)
	b.WaitFor(badge+`?.status === "valid"`, 15*time.Second)
	b.WaitFor(`document.querySelector('[data-testid="missed"]')?.dataset.count === "2"`, 30*time.Second)
	if got := b.Text(`[data-testid="missed-title"]`); !strings.Contains(got, "2 branches changed while deliveries were not arriving") {
		t.Fatalf("title %q", got)
	}
	b.Eval(`document.querySelector('#missed').scrollIntoView(); "ok"`)
	b.Screenshot("missed-workflows-offered")

	b.Click(`[data-testid="start-missed"]`)
	b.WaitFor(`document.querySelectorAll('#activity [data-testid="workflow"][data-trigger="recovered"]').length === 2`, 15*time.Second)
	if got := b.Text(`[data-testid="missed-message"]`); !strings.Contains(got, "Started 2 workflows, marked recovered") {
		t.Fatalf("outcome %q", got)
	}
	if b.Eval(`String(!!document.querySelector('[data-testid="start-missed"]'))`) != "false" {
		t.Fatal("Start missed workflows is still offered")
	}
	b.Eval(`document.querySelector('#activity').scrollIntoView(); "ok"`)
	b.Screenshot("missed-workflows-started")

	b.Navigate(env.URL + "/team/outbox")
	b.WaitFor(`document.querySelectorAll('[data-testid="alert"]').length === 2`, 15*time.Second)
	b.Screenshot("outbox")
	b.Navigate(env.URL + "/team")
	b.WaitVisible(`[data-testid="notifications"]`)
	b.Eval(`document.querySelector('#notifications').scrollIntoView(); "ok"`)
	b.Screenshot("team-notifications")
}
