package app_test

import (
	"testing"
	"time"

	"tether/internal/apptest"
)

// A new person clicks "Log in with Bitbucket", signs in to Bitbucket,
// grants access and lands on their account page, signed in and connected.
func TestBrowserSignUpWithBitbucket(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	b := apptest.NewBrowser(t)

	b.Navigate(env.URL + "/")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket("alice")
	b.WaitVisible(`#grant-access`)
	b.Screenshot("bitbucket-consent")
	b.Click(`#grant-access`)
	b.WaitVisible(`[data-testid="create-organization"]`)
	b.Screenshot("setup-organization")
	b.FinishSetup(env)
	b.Screenshot("signed-up-with-bitbucket")

	if path := b.Eval(`location.pathname`); path != "/account" {
		t.Fatalf("landed on %s", path)
	}
	if name := b.Text(`[data-testid="user-name"]`); name != "Alice Tester" {
		t.Fatalf("name %q", name)
	}
	if status := b.Attr(`[data-testid="bitbucket-status"]`, "data-status"); status != "connected" {
		t.Fatalf("status %q", status)
	}
}

// Revoking the app on Bitbucket turns the badge Not Connected in place, by
// the page's own polling: no reload, no navigation.
func TestBrowserBadgeTurnsNotConnectedInPlace(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.App.Connections.Stale = 0
	env.AddUser("alice")
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")
	b.Eval(`window.tetherMarker = "same page"; "ok"`)

	// Alice revokes Tether on Bitbucket's own page, in another browser.
	bb := apptest.NewBrowser(t)
	bb.Navigate(env.BBURL + "/account/settings/app-authorizations/")
	bb.SignInToBitbucket("alice")
	bb.WaitVisible(`#app-authorizations button[name="revoke"]`)
	bb.Screenshot("bitbucket-app-authorizations")
	bb.Click(`#app-authorizations button[name="revoke"]`)
	bb.WaitFor(`!document.querySelector('#app-authorizations button[name="revoke"]')`, 10*time.Second)

	b.WaitFor(`document.querySelector('[data-testid="bitbucket-status"]').dataset.status === "not_connected"`, 25*time.Second)
	b.Screenshot("badge-not-connected")
	if got := b.Eval(`window.tetherMarker || "reloaded"`); got != "same page" {
		t.Fatal("the page was reloaded or navigated")
	}
	if got := b.Text(`[data-testid="bitbucket-reason"]`); got == "" {
		t.Fatal("no reason shown")
	}
	// Grant access again from the same row.
	b.Click(`[data-testid="grant-access"]`)
	b.WaitVisible(`#grant-access`)
	b.Click(`#grant-access`)
	b.WaitFor(`document.querySelector('[data-testid="bitbucket-status"]')?.dataset.status === "connected"`, 10*time.Second)
}
