package app_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
)

// connected signs alice up with Bitbucket and returns her client and the
// account page.
func connected(t *testing.T, env *apptest.Env) (*apptest.Client, *apptest.Page) {
	t.Helper()
	env.AddUser("alice")
	c := env.Client()
	p := c.SignUpWithBitbucket("alice")
	if got := p.Attr(`[data-testid="bitbucket-status"]`, "data-status"); got != "connected" {
		t.Fatalf("alice not connected after sign-up: %q\n%s", got, p.Body)
	}
	return c, p
}

// check presses "Check now" the way htmx does and returns the fragment.
func check(t *testing.T, c *apptest.Client, from *apptest.Page) *apptest.Page {
	t.Helper()
	p := c.HTMX(http.MethodPost, "/account/bitbucket/check", from, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	if p.Has("html > head > title") && strings.Contains(p.Body, "<!doctype") {
		t.Fatalf("htmx request got a full page")
	}
	return p
}

func status(p *apptest.Page) string {
	return p.Attr(`[data-testid="bitbucket-status"]`, "data-status")
}

func TestGrantAccessFromPasswordAccount(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	c := env.Client()
	p := c.SignUpWithPassword("Alice Password", "ap@example.com", "long-enough-password")
	if status(p) != "not_connected" || !p.Has(`[data-testid="grant-access"]`) {
		t.Fatalf("new password account should offer Grant access:\n%s", p.Body)
	}
	p = c.Submit(p, `form:has([data-testid="grant-access"])`, nil, "")
	p = c.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "secret-password"}, "")
	p = c.Consent(p, true)
	if p.URL.Path != "/account" || status(p) != "connected" {
		t.Fatalf("after Grant access: %s status %q\n%s", p.URL, status(p), p.Body)
	}
	if got := p.Text(`[data-testid="notice"]`); got != "Bitbucket is connected." {
		t.Errorf("notice %q", got)
	}
	if got := p.Text(`[data-testid="user-name"]`); got != "Alice Password" {
		t.Errorf("the account changed name to %q", got)
	}
	if got := p.Text(`[data-testid="bitbucket-allows"]`); !strings.Contains(got, "public and private repositories") {
		t.Errorf("grant described as %q", got)
	}
	db := rawDB(t, env)
	if n := count(t, db, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
}

func TestGrantAccessRefusedWhenLinkedElsewhere(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	connected(t, env) // alice's Bitbucket identity belongs to her Bitbucket account
	db := rawDB(t, env)
	var ownerBefore int64
	db.QueryRow(`SELECT user_id FROM bitbucket_identities`).Scan(&ownerBefore)

	other := env.Client()
	p := other.SignUpWithPassword("Mallory", "m@example.com", "long-enough-password")
	p = other.Submit(p, `form:has([data-testid="grant-access"])`, nil, "")
	p = other.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "secret-password"}, "")
	p = other.Consent(p, true)
	if p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="error"]`), "already linked to another Tether account") {
		t.Fatalf("linking alice twice: %d\n%s", p.Status, p.Body)
	}
	if got := status(other.Get("/account")); got != "not_connected" {
		t.Fatalf("the refused account is %q", got)
	}
	var ownerAfter int64
	db.QueryRow(`SELECT user_id FROM bitbucket_identities`).Scan(&ownerAfter)
	if n := count(t, db, `SELECT count(*) FROM bitbucket_identities`); n != 1 || ownerAfter != ownerBefore {
		t.Fatalf("identities changed: %d rows, owner %d → %d", n, ownerBefore, ownerAfter)
	}
}

func TestRevocationDetectedOnNextCheck(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c, page := connected(t, env)
	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)

	p := check(t, c, page)
	if status(p) != "not_connected" {
		t.Fatalf("after revocation status %q\n%s", status(p), p.Body)
	}
	if got := p.Text(`[data-testid="bitbucket-reason"]`); !strings.Contains(got, "access was revoked on Bitbucket") {
		t.Errorf("reason %q", got)
	}
	if !p.Has(`[data-testid="grant-access"]`) {
		t.Error("no Grant access offered")
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM bitbucket_identities WHERE access_token IS NULL AND refresh_token IS NULL AND status = 'not_connected'`); n != 1 {
		t.Fatal("revoked tokens still stored")
	}

	// Grant access again: connected.
	p = c.Submit(c.Get("/account"), `form:has([data-testid="grant-access"])`, nil, "")
	p = c.Consent(p, true)
	if status(p) != "connected" {
		t.Fatalf("after granting again: %q", status(p))
	}
}

func TestBadgePollDetectsRevocation(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.App.Connections.Stale = 0
	c, page := connected(t, env)
	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := c.HTMX(http.MethodGet, "/account/bitbucket", page, nil)
		if p.Has("html body main") {
			t.Fatal("the poll got a full page")
		}
		if !strings.Contains(strings.Join(p.Header.Values("Vary"), ","), "HX-Request") {
			t.Fatal("no Vary: HX-Request")
		}
		if status(p) == "not_connected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the poll never showed the revocation")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExpiredTokenRefreshedAndRotated(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.App.Connections.Coalesce = 0 // the second press must ask again
	c, page := connected(t, env)
	ctx := context.Background()
	before, err := env.App.Store.IdentityByUser(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	env.Emulator.ExpireTokens("alice")

	p := check(t, c, page)
	if status(p) != "connected" || p.Has(`[data-testid="bitbucket-notice"]`) {
		t.Fatalf("after expiry: %q\n%s", status(p), p.Body)
	}
	if n := env.Emulator.TokenRefreshes("alice"); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	after, _ := env.App.Store.IdentityByUser(ctx, 1)
	if after.RefreshToken == before.RefreshToken || after.AccessToken == before.AccessToken || after.RefreshToken == "" {
		t.Fatal("tokens not rotated in the store")
	}
	// The rotated pair keeps working; the old refresh token does not.
	env.Emulator.ExpireTokens("alice")
	if p := check(t, c, page); status(p) != "connected" {
		t.Fatalf("second refresh failed: %s", p.Body)
	}
	if n := env.Emulator.TokenRefreshes("alice"); n != 2 {
		t.Fatalf("%d refreshes, want 2", n)
	}
}

func TestConcurrentChecksRefreshOnce(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c, page := connected(t, env)
	env.Emulator.ExpireTokens("alice")
	var wg sync.WaitGroup
	results := make([]string, 12)
	for i := range results {
		wg.Go(func() {
			p := c.HTMX(http.MethodPost, "/account/bitbucket/check", page, nil)
			results[i] = status(p)
		})
	}
	wg.Wait()
	for i, s := range results {
		if s != "connected" {
			t.Errorf("check %d: %q", i, s)
		}
	}
	if n := env.Emulator.TokenRefreshes("alice"); n != 1 {
		t.Fatalf("%d refreshes for 12 concurrent checks, want 1", n)
	}
}

// A 5xx, a 429 or a stall never flips a healthy connection.
func TestTransientFailuresLeaveStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		f      emulator.Failure
		notice string // what the account page says instead of a verdict
	}{
		{"500", emulator.Failure{PathPrefix: "/user", Status: 500}, "Bitbucket answered 500, will retry"},
		{"429", emulator.Failure{PathPrefix: "/user", Status: 429, RetryAfter: 60}, "Bitbucket is rate limiting Tether until "},
		{"stall", emulator.Failure{PathPrefix: "/user", Stall: 5 * time.Second}, "could not reach Bitbucket, will retry"},
		{"refresh 503", emulator.Failure{PathPrefix: "/site/oauth2/access_token", Status: 503}, "Bitbucket answered 503, will retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := apptest.Start(t, apptest.Options{})
			env.App.Connections.CheckTimeout = 1500 * time.Millisecond
			env.App.Connections.Coalesce = 0 // every press asks
			c, page := connected(t, env)
			if tc.name == "refresh 503" {
				env.Emulator.ExpireTokens("alice")
			}
			env.Emulator.FailAPI(tc.f)
			p := check(t, c, page)
			if status(p) != "connected" {
				t.Fatalf("status flipped to %q", status(p))
			}
			if got := p.Text(`[data-testid="bitbucket-notice"]`); !strings.Contains(got, tc.notice) {
				t.Fatalf("notice %q\n%s", got, p.Body)
			}
			if n := count(t, rawDB(t, env), `SELECT count(*) FROM bitbucket_identities WHERE status = 'connected' AND access_token IS NOT NULL`); n != 1 {
				t.Fatal("stored connection changed")
			}
			env.Emulator.ClearFailures()
			before := env.Emulator.APICallsOf("alice").Total
			p = check(t, c, page)
			if tc.f.Status == http.StatusTooManyRequests {
				// Retry-After: 60 pauses the whole connection: the next
				// press does not reach Bitbucket, and nothing flips.
				if got := env.Emulator.APICallsOf("alice").Total; got != before || status(p) != "connected" || !p.Has(`[data-testid="bitbucket-notice"]`) {
					t.Fatalf("during the pause: %d calls reached Bitbucket, status %q", got-before, status(p))
				}
				return
			}
			if status(p) != "connected" || p.Has(`[data-testid="bitbucket-notice"]`) {
				t.Fatalf("after recovery: %q\n%s", status(p), p.Body)
			}
		})
	}
}

func TestDisconnectForgetsTokens(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c, page := connected(t, env)
	p := c.HTMX(http.MethodPost, "/account/bitbucket/disconnect", page, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	if status(p) != "not_connected" || !strings.Contains(p.Text(`[data-testid="bitbucket-reason"]`), "disconnected in Tether") {
		t.Fatalf("after Disconnect: %q\n%s", status(p), p.Body)
	}
	db := rawDB(t, env)
	if n := count(t, db, `SELECT count(*) FROM bitbucket_identities WHERE access_token IS NULL AND refresh_token IS NULL AND token_expires_at IS NULL`); n != 1 {
		t.Fatal("tokens still in the table after Disconnect")
	}
	// Without the token, Disconnect is refused.
	resp, err := c.HTTP.Post(env.URL+"/account/bitbucket/disconnect", "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Disconnect without CSRF token: %d", resp.StatusCode)
	}
}

func TestMissingScopeNamed(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c, page := connected(t, env)
	env.Emulator.DropScope("alice", apptest.ClientID, "webhook")
	p := check(t, c, page)
	got := p.Text(`[data-testid="missing-scopes"]`)
	if !strings.Contains(got, "webhook") || !strings.Contains(got, "pushes will not start workflows") {
		t.Fatalf("missing scope not named: %q\n%s", got, p.Body)
	}
}

func TestTroubleshootingChecklist(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	// The test breaks Bitbucket and reloads the checklist at once: every
	// reload asks again.
	env.App.Connections.Coalesce, env.App.Projects.ListFresh = 0, 0
	c, _ := connected(t, env)
	env.Emulator.AddWorkspace("acme", "Acme")
	env.Emulator.AddWorkspaceMember("acme", "alice", false)
	for _, slug := range []string{"api", "web", "infra", "docs", "site", "tools", "zeta"} {
		env.Emulator.AddRepository("acme", slug, true)
	}
	page := c.Get("/troubleshooting")
	apptest.MustStatus(t, page, http.StatusOK)
	if page.Attr("#checklist", "hx-trigger") != "load" {
		t.Fatal("checklist does not load in place")
	}
	p := c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	if got := p.Attr(`[data-testid="step-connection"]`, "data-status"); got != "ok" {
		t.Fatalf("connection step %q\n%s", got, p.Body)
	}
	repos := p.Doc.Find(`[data-testid="step-repositories"]`)
	if s, _ := repos.Attr("data-status"); s != "ok" || !strings.Contains(repos.Text(), "7 repositories") {
		t.Fatalf("repositories step: %s %q", s, repos.Text())
	}
	if n := repos.Find(`[data-testid="items"] li`).Length(); n != 5 {
		t.Fatalf("%d repository names shown, want the first 5", n)
	}

	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories", Status: 502})
	p = c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	if got := p.Attr(`[data-testid="step-repositories"]`, "data-status"); got != "unknown" {
		t.Fatalf("repositories step during a 502: %q", got)
	}
	env.Emulator.ClearFailures()

	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	p = c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	conn := p.Doc.Find(`[data-testid="step-connection"]`)
	if s, _ := conn.Attr("data-status"); s != "failed" || !strings.Contains(conn.Text(), "access was revoked on Bitbucket") {
		t.Fatalf("connection step after revocation: %s %q", s, conn.Text())
	}
	if conn.Find(`[data-testid="grant-access"]`).Length() != 1 {
		t.Fatal("no Grant access next to the failed step")
	}
	repos = p.Doc.Find(`[data-testid="step-repositories"]`)
	if s, _ := repos.Attr("data-status"); s != "waiting" || !strings.Contains(repos.Find(`[data-testid="waits-on"]`).Text(), "Waiting on: Bitbucket connection") {
		t.Fatalf("repositories step after revocation: %q %q", s, repos.Text())
	}
	if n := p.Doc.Find(`[data-testid="grant-access"]`).Length(); n != 1 {
		t.Fatalf("%d Grant access buttons after a revoke, want the one next to the connection", n)
	}
}
