package app_test

import (
	"testing"

	"tether/apptest"
)

// A new person clicks "Log in with Bitbucket", signs in to Bitbucket,
// grants access and lands on their account page, signed in and connected.
func TestBrowserSignUpWithBitbucket(t *testing.T) {
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	b := apptest.NewBrowser(t)

	b.Navigate(env.URL + "/")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.WaitVisible(`#signin-form`)
	b.Type(`#signin-form input[name="username"]`, "alice")
	b.Type(`#signin-form input[name="password"]`, "secret-password")
	b.Submit(`#signin-form`)
	b.WaitVisible(`#grant-access`)
	b.Screenshot("bitbucket-consent")
	b.Click(`#grant-access`)
	b.WaitVisible(`[data-testid="bitbucket-connection"]`)
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
