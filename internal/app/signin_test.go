package app_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"tether/internal/apptest"
)

// rawDB opens Tether's database file read-only, to assert on the tables
// themselves.
func rawDB(t *testing.T, env *apptest.Env) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.DataDir, "tether.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSignUpWithBitbucketThenLogInAgain(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	c := env.Client()

	p := c.SignUpWithBitbucket("alice")
	apptest.MustStatus(t, p, http.StatusOK)
	if p.URL.Path != "/account" {
		t.Fatalf("landed on %s, want /account", p.URL)
	}
	if got := p.Text(`[data-testid="user-name"]`); got != "Alice Tester" {
		t.Errorf("name = %q, want the Bitbucket display name", got)
	}
	if got := p.Text(`[data-testid="user-email"]`); got != "alice@example.com" {
		t.Errorf("e-mail = %q", got)
	}
	if got := p.Attr(`[data-testid="bitbucket-status"]`, "data-status"); got != "connected" {
		t.Errorf("status = %q, want connected", got)
	}
	if got := p.Text(`[data-testid="bitbucket-username"]`); !strings.Contains(got, "@alice") {
		t.Errorf("username row = %q", got)
	}

	db := rawDB(t, env)
	var access, refresh []byte
	var uuid string
	if err := db.QueryRow(`SELECT bitbucket_uuid, access_token, refresh_token FROM bitbucket_identities`).Scan(&uuid, &access, &refresh); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(uuid, "{") || len(access) < 28 || len(refresh) < 28 {
		t.Fatalf("identity not stored as expected: uuid %q, %d/%d token bytes", uuid, len(access), len(refresh))
	}

	// Log out, log in again: the same account, found by Bitbucket uuid.
	c.Submit(p, `form[action="/logout"]`, nil, "")
	if p := c.Get("/account"); p.URL.Path != "/login" {
		t.Fatalf("after logout /account went to %s", p.URL)
	}
	// Signed in, a returning person lands on Projects.
	p = c.SignUpWithBitbucket("alice")
	if p.URL.Path != "/projects" {
		t.Fatalf("second login landed on %s", p.URL)
	}
	if n := count(t, db, `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users after logging in twice, want 1", n)
	}
}

func TestSessionRotatedAtLogin(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	first := sessionCookie(t, c, env)
	p := c.Get("/login")
	c.Submit(p, `form[action="/logout"]`, nil, "")
	p = c.Get("/login")
	p = c.Submit(p, `form[action="/login"]`, map[string]string{"email": "pat@example.com", "password": "long-enough-password"}, "")
	if p.URL.Path != "/projects" {
		t.Fatalf("login landed on %s:\n%s", p.URL, p.Body)
	}
	second := sessionCookie(t, c, env)
	if first == "" || second == "" || first == second {
		t.Fatalf("session not rotated: %q then %q", first, second)
	}
	// The old token no longer works.
	old := env.Client()
	u, _ := url.Parse(env.URL)
	old.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "tether_session", Value: first}})
	if p := old.Get("/account"); p.URL.Path != "/login" {
		t.Fatalf("old session still valid: %s", p.URL)
	}
}

func sessionCookie(t *testing.T, c *apptest.Client, env *apptest.Env) string {
	t.Helper()
	u, _ := url.Parse(env.URL)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == "tether_session" {
			return ck.Value
		}
	}
	return ""
}

func TestOAuthStateMismatchRefused(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	c := env.Client()
	consent := c.StartBitbucket("alice")

	// Stop at the redirect back to Tether and tamper with the state.
	c.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := c.Consent(consent, true)
	loc, err := url.Parse(p.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no callback redirect: %d %v", p.Status, p.Header)
	}
	q := loc.Query()
	q.Set("state", "forged-"+q.Get("state"))
	loc.RawQuery = q.Encode()
	c.HTTP.CheckRedirect = nil
	p = c.Get(loc.String())
	if p.URL.Path != "/login" || !strings.Contains(p.Text(`[data-testid="form-error"]`), "Please try again") {
		t.Fatalf("forged state: landed on %s:\n%s", p.URL, p.Body)
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("forged state created %d users", n)
	}
}

func TestConsentDenied(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	c := env.Client()
	p := c.Consent(c.StartBitbucket("alice"), false)
	if p.URL.Path != "/login" || !strings.Contains(p.Text(`[data-testid="form-error"]`), "cancelled") {
		t.Fatalf("denied consent landed on %s:\n%s", p.URL, p.Body)
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("denied consent created %d users", n)
	}
}

// A grant revoked between consent and the code exchange is refused by
// Bitbucket; Tether says so and creates nothing. Replaying a used callback
// is refused too.
func TestRevokedConsentRefused(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	c := env.Client()
	consent := c.StartBitbucket("alice")
	c.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := c.Consent(consent, true)
	callback := p.Header.Get("Location")
	c.HTTP.CheckRedirect = nil

	env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	p = c.Get(callback)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Text(`[data-testid="error"]`), "Bitbucket did not accept the sign-in") {
		t.Fatalf("revoked grant: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("revoked grant created %d users", n)
	}
	// The same callback again: its state was used up.
	if p := c.Get(callback); p.URL.Path != "/login" {
		t.Fatalf("replayed callback went to %s", p.URL)
	}
}

// A Bitbucket identity is never merged into a password account because the
// e-mail matches: signing up with Bitbucket makes a second account.
func TestEmailCollisionNotMerged(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	pw := env.Client()
	p := pw.SignUpWithPassword("Alice Password", "alice@example.com", "long-enough-password")
	if p.URL.Path != "/account" {
		t.Fatalf("sign-up landed on %s:\n%s", p.URL, p.Body)
	}
	bb := env.Client()
	p = bb.SignUpWithBitbucket("alice")
	if got := p.Text(`[data-testid="user-name"]`); got != "Alice Tester" {
		t.Fatalf("Bitbucket login shows %q: it reached the password account", got)
	}
	db := rawDB(t, env)
	if n := count(t, db, `SELECT count(*) FROM users`); n != 2 {
		t.Fatalf("%d users, want 2 separate accounts", n)
	}
	if n := count(t, db, `SELECT count(*) FROM bitbucket_identities i JOIN password_credentials p ON p.user_id = i.user_id`); n != 0 {
		t.Fatal("the Bitbucket identity was linked to the password account")
	}
	// The password account is untouched: still not connected.
	if got := pw.Get("/account").Attr(`[data-testid="bitbucket-status"]`, "data-status"); got != "not_connected" {
		t.Fatalf("password account status = %q", got)
	}
}

func TestSignUpFormErrors(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.SignUpWithPassword("Taken", "taken@example.com", "long-enough-password")
	c = env.Client()
	cases := []struct {
		name, email, password, field, message string
	}{
		{"", "a@example.com", "long-enough-password", "name", "Enter your name"},
		{"A", "not-an-email", "long-enough-password", "email", "e-mail address like"},
		{"A", "a@example", "long-enough-password", "email", "e-mail address like"},
		{"A", "a@example.com", "short", "password", "at least 10 characters"},
		{"A", "a@example.com", strings.Repeat("x", 73), "password", "at most 72 bytes"},
		{"A", "TAKEN@example.com", "long-enough-password", "email", "already exists"},
	}
	for _, tc := range cases {
		p := c.SignUpWithPassword(tc.name, tc.email, tc.password)
		if p.Status != http.StatusUnprocessableEntity {
			t.Errorf("%+v: status %d", tc, p.Status)
			continue
		}
		if got := p.Text(`[data-testid="` + tc.field + `-error"]`); !strings.Contains(got, tc.message) {
			t.Errorf("%s field message = %q, want %q", tc.field, got, tc.message)
		}
		if p.Attr("#"+tc.field, "aria-invalid") != "true" {
			t.Errorf("%s not marked invalid", tc.field)
		}
		if tc.field != "email" && tc.field != "password" && p.Attr("#email", "value") != tc.email {
			t.Errorf("typed e-mail not kept")
		}
		if p.Attr("#password", "value") != "" {
			t.Errorf("password echoed back into the page")
		}
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM users`); n != 1 {
		t.Fatalf("%d users after bad sign-ups, want only the first", n)
	}
}

func TestLoginDoesNotRevealAccounts(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.Client().SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	c := env.Client()
	wrongPassword := c.Submit(c.Get("/login"), `form[action="/login"]`, map[string]string{"email": "pat@example.com", "password": "wrong-password!"}, "")
	noAccount := c.Submit(c.Get("/login"), `form[action="/login"]`, map[string]string{"email": "nobody@example.com", "password": "wrong-password!"}, "")
	a, b := wrongPassword.Text(`[data-testid="form-error"]`), noAccount.Text(`[data-testid="form-error"]`)
	if a == "" || a != b || wrongPassword.Status != noAccount.Status {
		t.Fatalf("answers differ: %d %q vs %d %q", wrongPassword.Status, a, noAccount.Status, b)
	}
}

func TestStateChangingRequestsNeedCSRF(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.Get("/signup") // has the CSRF cookie now, but will not send the token
	for _, path := range []string{"/signup", "/login", "/logout", "/auth/bitbucket"} {
		resp, err := c.HTTP.PostForm(env.URL+path, url.Values{"name": {"X"}, "email": {"x@example.com"}, "password": {"long-enough-password"}, "intent": {"login"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s without CSRF token: %d, want 403", path, resp.StatusCode)
		}
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM users`); n != 0 {
		t.Fatalf("a request without CSRF token created %d users", n)
	}
}

// A Bitbucket account whose e-mail Tether cannot read (none confirmed, or
// no email scope) still signs up, without an e-mail.
func TestSignUpWithoutReadableEmail(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{Scopes: []string{"account", "repository:admin", "webhook"}})
	env.AddUser("alice")
	p := env.Client().SignUpWithBitbucket("alice")
	if p.URL.Path != "/account" || p.Text(`[data-testid="user-name"]`) != "Alice Tester" {
		t.Fatalf("sign-up without the email scope: %s\n%s", p.URL, p.Body)
	}
	if p.Has(`[data-testid="user-email"]`) {
		t.Fatal("an e-mail was shown that Bitbucket did not give")
	}
	if got := p.Text(`[data-testid="missing-scopes"]`); !strings.Contains(got, "email") {
		t.Fatalf("the missing email scope is not named: %q", got)
	}
}
