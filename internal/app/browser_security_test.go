package app_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"

	"tether/internal/apptest"
)

// A session that runs out while the project page is open: the next htmx
// poll sends the browser to the login page, and logging in with Bitbucket
// brings it back to the project.
func TestBrowserSessionExpiresOnProjectPage(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Navigate(env.URL + "/projects/new")
	b.Click(`[data-repository="alice/api"] [data-testid="create"]`)
	b.WaitVisible(`[data-testid="project-name"]`)
	project := b.Eval(`location.pathname`)

	expireSessions(t, env)
	// The activity section polls every 5 s.
	b.WaitFor(`location.pathname === "/login"`, 15*time.Second)
	next, _ := url.ParseQuery(strings.TrimPrefix(b.Eval(`location.search`), "?"))
	if next.Get("next") != project {
		t.Fatalf("the login page will not bring the person back: %s", b.Eval(`location.href`))
	}
	b.Screenshot("session-expired-login")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.WaitFor(`location.pathname === "`+project+`" || !!document.querySelector("#grant-access") || !!document.querySelector("#signin-form")`, 10*time.Second)
	if b.Eval(`document.querySelector("#signin-form") ? "signin" : ""`) != "" {
		b.SignInToBitbucket("alice")
	}
	if b.Eval(`document.querySelector("#grant-access") ? "consent" : ""`) != "" {
		b.Click(`#grant-access`)
	}
	b.WaitFor(`location.pathname === "`+project+`"`, 10*time.Second)
	b.WaitVisible(`[data-testid="project-name"]`)
	b.Screenshot("session-expired-back-on-project")
}

// What used to be inline handlers works from static/app.js under the
// Content-Security-Policy: the organization menu switches on change, Enter
// in the repository search does not submit a form, and Copy copies the
// invitation link or selects it, saying which on the button.
func TestBrowserPageScriptsUnderCSP(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")

	// A second organization, then switch back with the menu.
	b.Navigate(env.URL + "/setup?new=1")
	b.WaitVisible(`form[action="/setup"] input[name="name"]`)
	b.Eval(`document.querySelector('form[action="/setup"] input[name="name"]').value = "Second team"; "ok"`)
	b.Submit(`form[action="/setup"]`)
	b.WaitFor(`location.pathname === "/projects" && document.querySelector("#org-select option:checked")?.textContent === "Second team"`, 10*time.Second)
	b.Eval(`const s = document.querySelector("#org-select");
		s.value = [...s.options].find(o => o.textContent !== "Second team").value;
		s.dispatchEvent(new Event("change", {bubbles: true})); "ok"`)
	b.WaitFor(`document.readyState === "complete" && document.querySelector("#org-select option:checked")?.textContent !== "Second team"`, 10*time.Second)

	// Enter in the search asks htmx, not a form submission.
	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-testid="repository-search"]`)
	b.Eval(`window.tetherMarker = "same page"; "ok"`)
	b.Type(`[data-testid="repository-search"]`, "nothing-like-this"+kb.Enter)
	b.WaitVisible(`[data-testid="no-repositories"]`)
	if got := b.Eval(`(window.tetherMarker || "reloaded") + location.search`); got != "same page" {
		t.Fatalf("Enter in the search submitted a form: %q", got)
	}

	// Invite, then Copy: copied, or the link selected for Ctrl+C, and said.
	b.Navigate(env.URL + "/team")
	b.Click(`[data-testid="invite"]`)
	b.WaitVisible(`[data-testid="copy-invite"]`)
	b.Click(`[data-testid="copy-invite"]`)
	b.WaitFor(`document.querySelector('[data-testid="copy-result"]').textContent !== ""`, 5*time.Second)
	if b.Text(`[data-testid="copy-result"]`) != "Copied." {
		// No clipboard in this browser: the link is selected instead.
		sel := b.Eval(`const f = document.querySelector('[data-testid="invite-link"]');
			String(document.activeElement === f && f.selectionEnd - f.selectionStart === f.value.length)`)
		if sel != "true" {
			t.Fatal("Copy neither copied nor selected the link")
		}
	}
	b.Screenshot("invite-link-copied")
}
