package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/app"
	"tether/internal/apptest"
	"tether/internal/config"
)

// clientFrom is a browser-like client whose connections come from ip, a
// loopback address of its own: Tether throttles per client address.
func clientFrom(env *apptest.Env, ip string) *apptest.Client {
	c := env.Client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.HTTP.Transport = &http.Transport{DialContext: d.DialContext}
	return c
}

// firstAnswers makes c stop at the first answer instead of following
// redirects, until the returned func is called.
func firstAnswers(c *apptest.Client) func() {
	c.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return func() { c.HTTP.CheckRedirect = nil }
}

// Tricks that would send people to another site after logging in; each
// must land on Tether's own fallback instead.
var redirectTricks = []string{
	"/\t/evil.example/path", "//evil.example", `/\evil.example`, "https://evil.example/",
	"/%2F%2Fevil.example", "/%252F%252Fevil.example", "/／／evil.example", " //evil.example", "/\n/evil.example",
}

// Through real HTTP, every way in that takes a next or return_to — login,
// sign-up, Log in with Bitbucket — refuses the tricks and keeps a real
// path.
func TestLoginRedirectsStayOnTether(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Client().SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	for i, trick := range redirectTricks {
		// Each trick from an account of its own: logins per account are
		// throttled.
		email := fmt.Sprintf("kim%d@example.com", i)
		clientFrom(env, fmt.Sprintf("127.0.2.%d", i+1)).SignUpWithPassword("Kim", email, "long-enough-password")
		c := env.Client()
		page := c.Get("/login")
		done := firstAnswers(c)
		p := c.Submit(page, `form[action="/login"]`, map[string]string{"email": email, "password": "long-enough-password", "next": trick}, "")
		done()
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/projects" {
			t.Errorf("login next=%q: %d Location %q, want /projects", trick, p.Status, p.Header.Get("Location"))
		}
		s := clientFrom(env, fmt.Sprintf("127.0.1.%d", i+1))
		page = s.Get("/signup")
		done = firstAnswers(s)
		p = s.Submit(page, `form[action="/signup"]`, map[string]string{"name": "Sam", "email": fmt.Sprintf("sam%d@example.com", i),
			"password": "long-enough-password", "next": trick}, "")
		done()
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/setup" {
			t.Errorf("sign-up next=%q: %d Location %q, want /setup", trick, p.Status, p.Header.Get("Location"))
		}
	}
	// The login page itself drops a trick, so its forms never carry one.
	p := env.Client().Get("/login?next=" + url.QueryEscape("//evil.example"))
	if v := p.Attr(`form[action="/login"] input[name="next"]`, "value"); v != "" {
		t.Errorf("the login form carries next=%q", v)
	}
	// A real path is kept, for e-mail and for Bitbucket.
	c := env.Client()
	page := c.Get("/login?next=" + url.QueryEscape("/team/audit?person=1"))
	if got := c.Submit(page, `form[action="/login"]`, map[string]string{"email": "pat@example.com", "password": "long-enough-password"}, ""); got.URL.Path != "/team/audit" {
		t.Errorf("login with next=/team/audit landed on %s", got.URL)
	}
	b := env.Client()
	page = b.Get("/login?next=" + url.QueryEscape("/troubleshooting"))
	p = b.Submit(page, `form[action="/auth/bitbucket"]`, map[string]string{"return_to": "//evil.example"}, "")
	p = b.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "secret-password"}, "")
	p = b.Consent(p, true)
	if p.URL.Host != strings.TrimPrefix(env.URL, "http://") || p.URL.Path != "/setup" {
		t.Errorf("Log in with Bitbucket, return_to=//evil.example, landed on %s", p.URL)
	}
}

// Signed in, / and the login and sign-up pages go to Projects.
func TestSignedInLandsOnProjects(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	for _, path := range []string{"/", "/login", "/signup"} {
		if p := c.Get(path); p.URL.Path != "/projects" {
			t.Errorf("signed in, %s went to %s", path, p.URL)
		}
	}
}

// expireSessions ends every session as if its time ran out and retention
// pruned it. It goes through Tether's own store, which caches sessions
// and learns of a change only from its own writes.
func expireSessions(t *testing.T, env *apptest.Env) {
	t.Helper()
	if _, err := env.App.Store.PruneSessions(context.Background(), time.Now().AddDate(100, 0, 0), 1000); err != nil {
		t.Fatal(err)
	}
}

// A session that expires on a project page — loading the page, or in an
// htmx poll from it — sends the person back to that page once they have
// logged in again, with Bitbucket or with e-mail.
func TestExpiredSessionReturnsToThePage(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	path := project.URL.Path

	expireSessions(t, env)
	login := c.Get(path)
	if login.URL.Path != "/login" || login.URL.Query().Get("next") != path {
		t.Fatalf("an expired session on %s went to %s", path, login.URL)
	}
	p := c.Submit(login, `form[action="/auth/bitbucket"]`, nil, "")
	if p.Has("#signin-form") {
		p = c.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "secret-password"}, "")
	}
	if p.Has("#grant-access") {
		p = c.Consent(p, true)
	}
	if p.URL.Path != path {
		t.Fatalf("after logging in again with Bitbucket: %s, want %s", p.URL, path)
	}

	// The badge poll finds the session gone: htmx is told to load the
	// login page, which brings the person back to the page polling.
	expireSessions(t, env)
	req, _ := http.NewRequest(http.MethodGet, env.URL+path+"/deploy-key", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Current-URL", env.URL+path+"?tab=activity")
	poll := c.Do(req)
	want := "/login?next=" + url.QueryEscape(path+"?tab=activity")
	if poll.Status != http.StatusUnauthorized || poll.Header.Get("HX-Redirect") != want {
		t.Fatalf("poll with an expired session: %d HX-Redirect %q, want %q", poll.Status, poll.Header.Get("HX-Redirect"), want)
	}
	login = c.Get(want)
	p = c.Submit(login, `form[action="/auth/bitbucket"]`, nil, "")
	if p.Has("#grant-access") {
		p = c.Consent(p, true)
	}
	if p.URL.RequestURI() != path+"?tab=activity" {
		t.Fatalf("after the poll's login: %s", p.URL)
	}
	// A poll claiming to come from another site is sent to plain login.
	expireSessions(t, env)
	req.Header.Set("HX-Current-URL", "https://evil.example//evil.example/x")
	if poll = c.Do(req); poll.Header.Get("HX-Redirect") != "/login" {
		t.Fatalf("HX-Current-URL from elsewhere: HX-Redirect %q", poll.Header.Get("HX-Redirect"))
	}
}

// pathOf fills a route pattern's parameters.
func pathOf(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || p == "*" {
			parts[i] = "1"
		}
	}
	return strings.Join(parts, "/")
}

// Every route refuses a body over its limit before anything reads it —
// whether the length is declared or the body just keeps coming — and
// headers over 16 KB.
func TestRequestLimitsOnEveryRoute(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	if len(env.App.Routes) < 30 {
		t.Fatalf("only %d routes", len(env.App.Routes))
	}
	for _, r := range env.App.Routes {
		limit := 64 << 10
		if strings.HasPrefix(r.Path, "/hooks/") {
			limit = 256 << 10
		}
		for _, chunked := range []bool{false, true} {
			var body io.Reader = strings.NewReader(strings.Repeat("a", limit+1))
			if chunked {
				body = io.MultiReader(body) // no length: sent chunked
			}
			req, _ := http.NewRequest(r.Method, env.URL+pathOf(r.Path), body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.HTTP.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", r.Method, r.Path, err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// A route that reads no body never sees the rest of a chunked
			// one; what it must not do is take a declared one.
			if !chunked && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s with a %d-byte body: %d, want 413", r.Method, r.Path, limit+1, resp.StatusCode)
			}
			if chunked && r.Method == http.MethodPost && !strings.HasPrefix(r.Path, "/hooks/") && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s with a chunked %d-byte body: %d, want 413", r.Method, r.Path, limit+1, resp.StatusCode)
			}
			if resp.StatusCode == http.StatusRequestEntityTooLarge && !strings.Contains(string(msg), "larger than") {
				t.Errorf("%s %s: the 413 says %q", r.Method, r.Path, msg)
			}
		}
	}
	for size, want := range map[int]int{8 << 10: http.StatusOK, 32 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/login", nil)
		req.Header.Set("X-Fat", strings.Repeat("x", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%d KB of headers: %d, want %d", size>>10, resp.StatusCode, want)
		}
	}
}

// Every field has a limit, and going over it is said on the field.
func TestFieldLimitsSaidWhereTyped(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	long := strings.Repeat("b", 300) + "@example.com"
	s := env.Client()
	p := s.Submit(s.Get("/signup"), `form[action="/signup"]`, map[string]string{"name": "Sam", "email": long, "password": "long-enough-password"}, "")
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Text(`[data-testid="email-error"]`), "at most 254 characters") {
		t.Errorf("sign-up with a 312-character e-mail: %d %q", p.Status, p.Text(`[data-testid="email-error"]`))
	}
	p = s.Submit(s.Get("/login"), `form[action="/login"]`, map[string]string{"email": long, "password": "long-enough-password"}, "")
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Text(`[data-testid="email-error"]`), "at most 254 characters") {
		t.Errorf("login with a 312-character e-mail: %d %q", p.Status, p.Text(`[data-testid="email-error"]`))
	}
	p = s.Submit(s.Get("/login"), `form[action="/login"]`, map[string]string{"email": "a@example.com", "password": strings.Repeat("p", 73)}, "")
	if !strings.Contains(p.Text(`[data-testid="password-error"]`), "72 bytes") {
		t.Errorf("login with a 73-byte password: %d %q", p.Status, p.Text(`[data-testid="password-error"]`))
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM password_credentials`); n != 0 {
		t.Fatalf("%d password accounts after refused sign-ups", n)
	}
	picker := c.Get("/projects/new")
	found := c.HTMX(http.MethodGet, "/projects/new/repositories?q="+strings.Repeat("x", 201), picker, nil)
	if !strings.Contains(found.Text(`#repositories [data-testid="error"]`), "at most 200 characters") {
		t.Errorf("a 201-character search: %d %q", found.Status, found.Body)
	}
	created := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/" + strings.Repeat("r", 63)}})
	if created.Status != http.StatusUnprocessableEntity || !strings.Contains(created.Body, "at most 62 characters") {
		t.Errorf("creating from a 63-character slug: %d %s", created.Status, created.Body)
	}
}

// Login is throttled per account and per client address: a burst of wrong
// passwords is refused after a few with 429, Retry-After and when to try
// again, before any password is checked; other people log in meanwhile.
func TestLoginThrottled(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.Client().SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	env.Client().SignUpWithPassword("Sam", "sam@example.com", "long-enough-password")

	attacker := clientFrom(env, "127.0.0.2")
	page := attacker.Get("/login")
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		refused  *apptest.Page
		wg       sync.WaitGroup
	)
	for range 40 {
		wg.Go(func() {
			p := attacker.Submit(page, `form[action="/login"]`, map[string]string{"email": "PAT@example.com", "password": "wrong-password-1"}, "")
			mu.Lock()
			defer mu.Unlock()
			statuses[p.Status]++
			if p.Status == http.StatusTooManyRequests {
				refused = p
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusUnprocessableEntity] > 10 || statuses[http.StatusTooManyRequests] < 30 {
		t.Fatalf("40 wrong passwords: %v, want at most 10 checked and the rest 429", statuses)
	}
	retry, _ := strconv.Atoi(refused.Header.Get("Retry-After"))
	if retry < 1 || retry > 30*40 || !strings.Contains(refused.Text(`[data-testid="form-error"]`), "Try again in") {
		t.Fatalf("429 with Retry-After %q and message %q", refused.Header.Get("Retry-After"), refused.Text(`[data-testid="form-error"]`))
	}

	// Someone else, elsewhere, logs in meanwhile.
	other := clientFrom(env, "127.0.0.3")
	if p := other.Submit(other.Get("/login"), `form[action="/login"]`, map[string]string{"email": "sam@example.com", "password": "long-enough-password"}, ""); p.URL.Path != "/projects" {
		t.Fatalf("Sam could not log in during Pat's lockout: %d %s", p.Status, p.URL)
	}

	// One address guessing at many accounts at once is held back too:
	// the address's attempts are counted as they arrive, whatever the
	// password checks then take (under the race detector, seconds each).
	spray := clientFrom(env, "127.0.0.4")
	page = spray.Get("/login")
	got := map[int]int{}
	for i := range 25 {
		wg.Go(func() {
			p := spray.Submit(page, `form[action="/login"]`, map[string]string{"email": fmt.Sprintf("user%d@example.com", i), "password": "wrong-password-1"}, "")
			mu.Lock()
			defer mu.Unlock()
			got[p.Status]++
		})
	}
	wg.Wait()
	if checked := got[http.StatusUnprocessableEntity]; checked < 20 || checked > 21 || checked+got[http.StatusTooManyRequests] != 25 {
		t.Fatalf("25 accounts tried from one address: %v, want 20 checked (21 if one came back meanwhile) and the rest 429", got)
	}
}

// Sign-up says whether an e-mail has an account, so it is throttled per
// e-mail and per address; accepting invitations per person and address.
func TestSignupAndInvitationThrottled(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	env.Client().SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	prober := clientFrom(env, "127.0.0.5")
	page := prober.Get("/signup")
	said, throttled := 0, 0
	for range 10 {
		p := prober.Submit(page, `form[action="/signup"]`, map[string]string{"name": "X", "email": "pat@example.com", "password": "long-enough-password"}, "")
		switch {
		case strings.Contains(p.Body, "already exists"):
			said++
		case p.Status == http.StatusTooManyRequests && strings.Contains(p.Text(`[data-testid="form-error"]`), "Try again in"):
			throttled++
		}
	}
	if said > 3 || throttled < 7 {
		t.Fatalf("10 sign-ups with a taken e-mail: %d said it exists, %d throttled", said, throttled)
	}

	bob := clientFrom(env, "127.0.0.6")
	bob.SignUpWithPassword("Bob", "bob@example.com", "long-enough-password")
	statuses := map[int]int{}
	page = bob.Get("/team")
	for i := range 15 {
		p := bob.HTMX(http.MethodPost, "/invitations/guess-"+strconv.Itoa(i)+"/accept", page, nil)
		statuses[p.Status]++
	}
	if statuses[http.StatusTooManyRequests] < 5 {
		t.Fatalf("15 invitation guesses by one person: %v, want 429 after 10", statuses)
	}
}

// Every page Tether serves carries the policy: scripts only from Tether
// (no inline script, no eval), nobody frames it; no directory listings;
// HSTS only when Tether is reached over https.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	for _, r := range env.App.Routes {
		if r.Method != http.MethodGet {
			continue
		}
		p := c.Get(pathOf(r.Path))
		csp := p.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", r.Path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-") || strings.Contains(p.Body, " onclick=") || strings.Contains(p.Body, " onchange=") || strings.Contains(p.Body, " onsubmit=") {
			t.Errorf("GET %s: unsafe script allowed or inline handler served", r.Path)
		}
		if p.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s: HSTS over plain http", r.Path)
		}
	}
	for _, dir := range []string{"/static/", "/static/vendor/", "/static/vendor"} {
		if p := c.Get(dir); p.Status != http.StatusNotFound || strings.Contains(p.Body, "htmx.min.js") {
			t.Errorf("GET %s: %d, lists the directory: %v", dir, p.Status, strings.Contains(p.Body, "htmx.min.js"))
		}
	}
	if p := c.Get("/static/app.js"); p.Status != http.StatusOK || !strings.Contains(p.Header.Get("Content-Type"), "javascript") {
		t.Errorf("GET /static/app.js: %d %s", p.Status, p.Header.Get("Content-Type"))
	}

	// Behind https (a TLS proxy in front), HSTS is sent.
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"TETHER_PUBLIC_URL": "https://tether.example.com", "TETHER_DATA_DIR": t.TempDir()}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = a.Server()
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Fatalf("behind https: Strict-Transport-Security %q", got)
	}
}

// The CSRF token counts only in the X-CSRF-Token header or the form body,
// never in the query string (which logs and Referer carry).
func TestCSRFTokenNotTakenFromQuery(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{})
	c := env.Client()
	p := c.SignUpWithPassword("Pat", "pat@example.com", "long-enough-password")
	token := p.CSRF()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/logout?_csrf="+url.QueryEscape(token), nil)
	if got := c.Do(req); got.Status != http.StatusForbidden {
		t.Fatalf("POST /logout with the token in the query: %d, want 403", got.Status)
	}
	if c.Get("/account").URL.Path != "/account" {
		t.Fatal("the query token logged Pat out")
	}
	req, _ = http.NewRequest(http.MethodPost, env.URL+"/logout", strings.NewReader(url.Values{"_csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := c.Do(req); got.URL.Path != "/" {
		t.Fatalf("POST /logout with the token in the body: %d %s", got.Status, got.URL)
	}
}

// Every token the test makes — sessions, CSRF, invitation links, OAuth
// access and refresh tokens, hook secrets — stays out of the logs (at
// DEBUG), out of the database file as written on disk, and out of every
// page but the one meant to show it.
func TestTokensNeverLeak(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	link := tm.invite(t)
	invitation := link[strings.LastIndex(link, "/")+1:]
	bob := tm.bob
	bob.Get(link)
	revoked := tm.invite(t) // never used, its page never opened
	revokedToken := revoked[strings.LastIndex(revoked, "/")+1:]
	joined := tm.join(t, link)
	if joined.URL.Path != "/projects" {
		t.Fatalf("accepting landed on %s", joined.URL)
	}
	// Someone who has the link but not the account tries it too.
	stranger := tm.env.Client()
	stranger.Get(link)
	stranger.Get("/invitations/" + revokedToken + "/accept")

	u, _ := url.Parse(tm.env.URL)
	tokens := map[string]string{"invitation": invitation, "unused invitation": revokedToken}
	for name, c := range map[string]*apptest.Client{"alice": tm.alice, "bob": bob, "stranger": stranger} {
		for _, ck := range c.HTTP.Jar.Cookies(u) {
			if ck.Value != "" {
				tokens[name+" cookie "+ck.Name] = ck.Value
			}
		}
	}
	for _, h := range tm.env.Emulator.Hooks("acme/api") {
		tokens["hook secret"] = h.Secret
	}
	for id := int64(1); id <= 3; id++ {
		if ident, err := tm.env.App.Store.IdentityByUser(t.Context(), id); err == nil {
			tokens[fmt.Sprintf("access token %d", id)] = ident.AccessToken
			tokens[fmt.Sprintf("refresh token %d", id)] = ident.RefreshToken
		}
	}
	project := tm.alice.Get(tm.id)
	pages := map[string]string{
		"bob's projects": joined.Body, "bob's team": bob.Get("/team").Body, "alice's team": tm.alice.Get("/team").Body,
		"project": project.Body, "activity": tm.alice.HTMX(http.MethodGet, tm.id+"/activity", project, nil).Body,
		"account": tm.alice.Get("/account").Body, "audit log": tm.alice.Get("/team/audit").Body,
	}
	tm.env.StopTether() // the database file is complete on disk now
	var disk []byte
	for _, name := range []string{"tether.db", "tether.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(tm.env.DataDir, name))
		disk = append(disk, b...)
	}
	logs := tm.env.Logs.String()
	if !strings.Contains(logs, "route=/invitations/:token") {
		t.Fatal("the request log does not name routes by their pattern")
	}
	if len(tokens) < 10 {
		t.Fatalf("only %d tokens collected: %v", len(tokens), tokens)
	}
	for name, token := range tokens {
		if len(token) < 16 {
			t.Fatalf("%s is too short to look for: %q", name, token)
		}
		if strings.Contains(logs, token) {
			t.Errorf("the %s is in the log", name)
		}
		if strings.Contains(string(disk), token) {
			t.Errorf("the %s is in the database file", name)
		}
		if strings.HasSuffix(name, "tether_csrf") {
			continue // each page carries its reader's own CSRF token, by design
		}
		for page, body := range pages {
			if strings.Contains(body, token) {
				t.Errorf("the %s is on %s", name, page)
			}
		}
	}
}
