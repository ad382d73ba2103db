package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
)

// Delete project while Bitbucket answers 500 to DELETE, in a real browser:
// the message naming what is left on Bitbucket takes the place of the
// deleted project's page, where the person pressed Delete.
func TestBrowserDeleteSaysWhatIsLeft(t *testing.T) {
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-repository="alice/api"] [data-testid="create"]`)
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="delete-project"]`)

	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api", Method: http.MethodDelete, Status: 500})
	b.Eval(`window.confirm = () => true; "ok"`)
	b.Click(`[data-testid="delete-project"]`)
	b.WaitFor(`(document.querySelector('[data-testid="delete-message"]')?.textContent || "").includes("Tether could not remove its deploy key")`, 15*time.Second)
	b.Screenshot("delete-left-on-bitbucket")
	msg := b.Text(`[data-testid="delete-message"]`)
	for _, want := range []string{"The project is deleted", "its webhook {", "Bitbucket answered 500"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if b.Eval(`String(!!document.querySelector('#deploy-key, #webhook'))`) != "false" {
		t.Error("the deleted project's health rows still poll")
	}
	b.Click(`[data-testid="back-to-projects"]`)
	b.WaitFor(`location.pathname === "/projects"`, 10*time.Second)
}

// A Delete that went through, in a real browser: the person lands on
// Projects, which says what was deleted and removed, once.
func TestBrowserDeleteLandsOnProjectsSayingSo(t *testing.T) {
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-repository="alice/api"] [data-testid="create"]`)
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="delete-project"]`)
	b.Eval(`window.confirm = () => true; "ok"`)
	b.Click(`[data-testid="delete-project"]`)
	// Loaded, not only arrived: under load Chromium answered DOM queries
	// from the page before while /projects was still loading.
	b.WaitFor(`location.pathname === "/projects" && document.readyState === "complete" && !!document.querySelector('main > [data-testid="flash"]')`, 15*time.Second)
	b.Screenshot("project-deleted")
	if got := b.Text(`main > [data-testid="flash"]`); !strings.Contains(got, "alice/api was deleted") {
		t.Errorf("the Projects page says %q", got)
	}
	if n := len(env.Emulator.DeployKeys("alice/api")) + len(env.Emulator.Hooks("alice/api")); n != 0 {
		t.Errorf("%d keys and hooks left on the repository", n)
	}
	b.Navigate(env.URL + "/projects")
	b.WaitVisible(`[data-testid="no-projects"]`)
	if b.Eval(`String(!!document.querySelector('[data-testid="flash"]'))`) != "false" {
		t.Error("the outcome is said again on the next visit")
	}
}
