package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
)

// In Chromium: the picker lists what it could read and says which
// workspace refused and why; a consumer secret Bitbucket refuses is a
// line on the account page and a banner for admins, not Not Connected.
func TestBrowserFieldNotices(t *testing.T) {
	env := apptest.Start(t, apptest.Options{NoSchedule: true, Env: fastBudget.Env})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	env.Emulator.AddWorkspaceMember("acme", "alice", false)
	env.Emulator.AddRepository("acme", "billing", true)
	env.Emulator.RefuseWorkspace("acme", http.StatusForbidden, "To access this repository, an admin must whitelist your IP.")
	b := apptest.NewBrowser(t)
	b.SignUpWithBitbucket(env, "alice")

	b.Navigate(env.URL + "/projects/new")
	b.WaitVisible(`[data-testid="unread-workspace"]`)
	if got := b.Text(`[data-testid="unread-workspace"]`); !strings.Contains(got, "acme") || !strings.Contains(got, "whitelist your IP") {
		t.Errorf("unread workspace: %q", got)
	}
	if got := b.Attr(`[data-testid="repository"]`, "data-repository"); got != "alice/api" {
		t.Errorf("first repository listed %q", got)
	}
	b.Screenshot("picker-one-workspace-refused")

	env.Emulator.SetConsumerSecret(apptest.ClientID, "rotated")
	env.Emulator.ExpireTokens("alice")
	b.Navigate(env.URL + "/account")
	b.Click(`[data-testid="check-now"]`)
	b.WaitFor(`!!document.querySelector('[data-testid="client-fault"]')`, 10*time.Second)
	if got := b.Attr(`[data-testid="bitbucket-status"]`, "data-status"); got != "connected" {
		t.Errorf("status %q", got)
	}
	b.Navigate(env.URL + "/account")
	b.WaitVisible(`[data-testid="client-fault-banner"]`)
	b.Screenshot("client-credentials-refused")
}
