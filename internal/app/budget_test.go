package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
)

// userID is the Tether user behind a Bitbucket username.
func userID(t *testing.T, env *apptest.Env, username string) int64 {
	t.Helper()
	var id int64
	if err := rawDB(t, env).QueryRow(`SELECT user_id FROM bitbucket_identities WHERE username = ?`, username).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// tick advances the fake clock by a second and lets the background
// schedule do what is due, to the end.
func tick(env *apptest.Env, clock *clockwork.FakeClock) {
	clock.Advance(time.Second)
	env.App.Health.Step(context.Background())
	env.App.Health.Wait()
}

// A project page left open for an hour — both health rows and the moved
// banner polling every 10 s, the activity every 5 s — costs at most 30
// Bitbucket API calls, counted by the emulator; and the Team page's meter
// shows the emulator's count. The hour is simulated with a fake clock
// shared by Tether and the emulator; SSH probes and HTTP are real.
func TestWatchedProjectPageCostsAtMost30CallsAnHour(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	env := apptest.Start(t, apptest.Options{Clock: clock})
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	project := create(t, c, "alice/api")
	alice := userID(t, env, "alice")
	env.Emulator.ResetAPICalls()

	base := project.URL.Path
	for sec := 1; sec <= 3600; sec++ {
		tick(env, clock)
		if sec%10 == 0 {
			for _, path := range []string{"/deploy-key", "/webhook", "/moved"} {
				p := c.HTMX(http.MethodGet, base+path, project, nil)
				apptest.MustStatus(t, p, http.StatusOK)
			}
		}
		if sec%5 == 0 {
			apptest.MustStatus(t, c.HTMX(http.MethodGet, base+"/activity", project, nil), http.StatusOK)
		}
	}
	calls := env.Emulator.APICallsOf("alice")
	t.Logf("project page open for a simulated hour: %d API calls", calls.Total)
	if calls.Total > 30 {
		t.Fatalf("a watched project page cost %d API calls in an hour, want at most 30", calls.Total)
	}
	p := c.HTMX(http.MethodGet, base+"/deploy-key", project, nil)
	if s, _ := keyStatus(p); s != "valid" {
		t.Fatalf("after an hour the key badge is %q", s)
	}
	if checked := p.Text(`[data-testid="health-detail"]`); !strings.Contains(checked, "over SSH") {
		t.Fatalf("the key was not probed: %q", checked)
	}

	// The meter agrees with the emulator: the calls of the rolling hour.
	if u := env.App.Budget.Usage(alice); u.Spent != calls.LastHour {
		t.Fatalf("budget meter %d calls, emulator %d", u.Spent, calls.LastHour)
	}
	team := c.Get("/team")
	row := team.Doc.Find(`[data-testid="meter-row"][data-user="` + strconv.FormatInt(alice, 10) + `"]`)
	if got := strings.TrimSpace(row.Find(`[data-testid="meter-spent"]`).Text()); got != strconv.Itoa(calls.LastHour) {
		t.Fatalf("Team page meter says %q calls, the emulator counted %d\n%s", got, calls.LastHour, team.Body)
	}
	if got := strings.TrimSpace(row.Find(`[data-testid="meter-budget"]`).Text()); got != "800" {
		t.Fatalf("budget shown %q", got)
	}
}

// The account badge polls every 15 s; for an hour that costs at most one
// GET /user every five minutes, and the connection is still verified.
func TestAccountBadgeCostsOneUserCallEveryFewMinutes(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	env := apptest.Start(t, apptest.Options{Clock: clock})
	c, page := connected(t, env)
	alice := userID(t, env, "alice")
	env.Emulator.ResetAPICalls()
	for sec := 15; sec <= 3600; sec += 15 {
		clock.Advance(15 * time.Second)
		p := c.HTMX(http.MethodGet, "/account/bitbucket", page, nil)
		if status(p) != "connected" {
			t.Fatalf("status %q", status(p))
		}
		for env.App.Connections.Checking(alice) {
			time.Sleep(time.Millisecond)
		}
	}
	n := env.Emulator.APICallsOf("alice").Total
	t.Logf("account badge watched for a simulated hour: %d GET /user", n)
	if n > 13 || n < 6 {
		t.Fatalf("%d GET /user in an hour, want one about every five minutes", n)
	}
}

// Forty "Check now" presses in three seconds, by a plain Member on both
// rows, cost the backer's budget one check: a check in flight or just
// finished answers every press. The presses run concurrently in real time
// while the fake clock walks the three seconds.
func TestCheckNowPressesCoalesce(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	tm := newTeamWith(t, apptest.Options{Clock: clock})
	tm.env.App.Health.Coalesce = 10 * time.Second
	tm.join(t, tm.invite(t))
	page := tm.bob.Get(tm.id)
	apptest.MustStatus(t, page, http.StatusOK)
	clock.Advance(time.Minute) // the check Create made is old now
	before := tm.env.Emulator.APICallsOf("alice").Total
	var wg sync.WaitGroup
	statuses := make([]int, 40)
	for i := range 40 {
		clock.Advance(75 * time.Millisecond)
		wg.Go(func() {
			row := "/deploy-key/check"
			if i%2 == 1 {
				row = "/webhook/check"
			}
			statuses[i] = tm.bob.HTMX(http.MethodPost, tm.id+row, page, nil).Status
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("press %d: %d", i, s)
		}
	}
	calls := tm.env.Emulator.APICallsOf("alice").Total - before
	t.Logf("40 Check now presses in 3 s: %d API calls", calls)
	if calls > 12 {
		t.Fatalf("40 presses cost %d API calls, want at most 12", calls)
	}
	if calls == 0 {
		t.Fatal("no press reached Bitbucket")
	}
}

// With the connection's budget spent, background work waits and the badge
// says when it looks next; a person's Check now still goes through.
func TestSpentBudgetShedsBackgroundFirst(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClockAt(time.Now())
	env := apptest.Start(t, apptest.Options{Clock: clock, Env: map[string]string{"TETHER_BITBUCKET_BUDGET": "400"}})
	env.App.Health.Coalesce = 0
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	project := create(t, c, "alice/api")
	alice := userID(t, env, "alice")
	// Other background work on Alice's connection keeps spending what
	// the bucket refills.
	spend := func() {
		for env.App.Budget.Wait(context.Background(), alice, bitbucket.Background) == nil {
		}
	}
	env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
	before := env.Emulator.APICallsOf("alice").Total
	for range 70 {
		c.HTMX(http.MethodGet, project.URL.Path+"/deploy-key", project, nil)
		clock.Advance(time.Second)
		spend() // takes what the second refilled
		env.App.Health.Step(context.Background())
		env.App.Health.Wait()
	}
	row := c.HTMX(http.MethodGet, project.URL.Path+"/deploy-key", project, nil)
	if got := env.Emulator.APICallsOf("alice").Total; got != before {
		t.Fatalf("background work spent %d calls of a spent budget", got-before)
	}
	// SSH (the Git budget) still judged the key; the API that would say
	// why waits, and the badge says so.
	if s, r := keyStatus(row); s != "invalid" || r != "SSH Permission denied (publickey)" {
		t.Fatalf("badge %s/%q", s, r)
	}
	if next := row.Text(`[data-testid="next-check"]`); !strings.Contains(next, "budget is spent for now; next check in") {
		t.Fatalf("the badge does not say when it checks next: %q\n%s", next, row.Body)
	}
	// A person goes first.
	p := checkKey(t, c, project)
	if s, r := keyStatus(p); s != "invalid" || r != "removed from the repository" {
		t.Fatalf("Check now: %s/%q", s, r)
	}
}

// The meter counts every call Bitbucket counted for the person, the
// sign-in's too (made before the account was known, claimed by the
// connection that uses the same token), so it agrees with the emulator at
// any moment, not only an hour later.
func TestMeterAgreesWithEmulatorFromSignIn(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	checkKey(t, c, create(t, c, "alice/api"))
	alice := userID(t, env, "alice")
	emu := env.Emulator.APICallsOf("alice")
	if u := env.App.Budget.Usage(alice); u.Spent != emu.LastHour || u.Spent == 0 {
		t.Fatalf("meter %d calls, emulator %d", u.Spent, emu.LastHour)
	}
	team := c.Get("/team")
	if got := team.Text(`[data-testid="meter-row"] [data-testid="meter-spent"]`); got != strconv.Itoa(emu.LastHour) {
		t.Fatalf("Team page says %q, emulator %d", got, emu.LastHour)
	}
}

// A restart does not forget the hour of API calls: the calls made before
// it still count on the meter, and a 429's pause still holds — the first
// Check now after the restart sends Bitbucket nothing — so Tether does
// not spend a person's hour twice. (Deploys restart Tether; before this,
// each one handed every connection a fresh budget.)
func TestAPIBudgetSurvivesARestart(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	c, _ := connected(t, env)
	env.Emulator.AddRepository("alice", "api", true)
	project := create(t, c, "alice/api")
	alice := userID(t, env, "alice")
	env.App.Health.Coalesce = 0 // each Check now asks Bitbucket

	// Bitbucket's own limit is reached: the next call is answered 429.
	env.Emulator.SetRateLimit(emulator.RateLimit{PerHour: env.Emulator.APICallsOf("alice").LastHour})
	apptest.MustStatus(t, c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil), http.StatusOK)
	before := env.App.Budget.Usage(alice)
	if before.Spent == 0 || before.PausedUntil.IsZero() {
		t.Fatalf("before the restart: meter %+v, want calls and a pause", before)
	}

	env.Restart()
	env.App.Health.Coalesce = 0
	after := env.App.Budget.Usage(alice)
	if after.Spent != before.Spent || !after.PausedUntil.Equal(before.PausedUntil) || !after.Last429.Equal(before.Last429) {
		t.Fatalf("after the restart the meter is %+v, before it %+v", after, before)
	}
	team := c.Get("/team")
	row := team.Doc.Find(`[data-testid="meter-row"][data-user="` + strconv.FormatInt(alice, 10) + `"]`)
	if got := strings.TrimSpace(row.Find(`[data-testid="meter-spent"]`).Text()); got != strconv.Itoa(before.Spent) {
		t.Fatalf("after the restart the Team page meter says %q calls, %d were made in the hour", got, before.Spent)
	}
	calls := env.Emulator.APICallsOf("alice").Total
	project = c.Get(project.URL.Path)
	apptest.MustStatus(t, c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil), http.StatusOK)
	if n := env.Emulator.APICallsOf("alice").Total; n != calls {
		t.Fatalf("Check now during the pause, after a restart, sent Bitbucket %d calls", n-calls)
	}
}

// However Bitbucket's 429 reaches a person — a health row's Check now,
// the Account page's Check, Regenerate, the repository picker, the
// troubleshooting checklist, the Team page's meter — they are told until
// when Tether waits, and it is the end of the pause the budget
// took from that 429 (not "a few minutes" for an hour's Retry-After).
func TestA429SaysUntilWhenWhereverItShows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		act  func(c *apptest.Client, project *apptest.Page) *apptest.Page
	}{
		{"Check now on a health row", func(c *apptest.Client, project *apptest.Page) *apptest.Page {
			return c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil)
		}},
		{"Check on the Account page", func(c *apptest.Client, _ *apptest.Page) *apptest.Page {
			account := c.Get("/account")
			return c.HTMX(http.MethodPost, "/account/bitbucket/check", account, nil)
		}},
		{"Regenerate", func(c *apptest.Client, project *apptest.Page) *apptest.Page {
			return c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/regenerate", project, nil)
		}},
		{"the repository picker", func(c *apptest.Client, _ *apptest.Page) *apptest.Page {
			return c.Get("/projects/new")
		}},
		{"the troubleshooting checklist", func(c *apptest.Client, _ *apptest.Page) *apptest.Page {
			page := c.Get("/troubleshooting")
			return c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
		}},
		{"Create project without JavaScript", func(c *apptest.Client, project *apptest.Page) *apptest.Page {
			picker := c.Get("/projects/new")
			form := url.Values{"repository": {"alice/web"}, "_csrf": {picker.CSRF()}}
			req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(picker.URL.String(), picker.URL.RequestURI())+"/projects", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			p := c.Do(req)
			if p.URL.Path != "/projects/new" || !p.Has(`main > [data-testid="flash"]`) {
				t.Errorf("Create without JavaScript during a 429 ended at %s (%d), not on the picker with a notice", p.URL, p.Status)
			}
			return p
		}},
		{"the Team page's meter", func(c *apptest.Client, project *apptest.Page) *apptest.Page {
			c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil)
			return c.Get("/team")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := apptest.Start(t, apptest.Options{NoSchedule: true})
			env.App.Connections.Stale = 0 // the Account page's Check asks Bitbucket
			c, _ := connected(t, env)
			env.Emulator.AddRepository("alice", "api", true)
			env.Emulator.AddRepository("alice", "web", true)
			project := create(t, c, "alice/api")
			env.App.Health.Coalesce = 0
			alice := userID(t, env, "alice")
			env.Emulator.SetRateLimit(emulator.RateLimit{PerHour: env.Emulator.APICallsOf("alice").LastHour})
			p := tc.act(c, project)
			paused := env.App.Budget.Usage(alice).PausedUntil
			if paused.IsZero() || env.Emulator.APICallsOf("alice").Limited == 0 {
				t.Fatalf("Bitbucket did not answer 429 (%d limited), or no pause was taken", env.Emulator.APICallsOf("alice").Limited)
			}
			// Expected and told to the person: an operator's WARN, not an ERROR.
			for _, line := range strings.Split(env.Logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") {
					t.Errorf("a 429 logged as an error: %s", line)
				}
			}
			text := strings.Join(strings.Fields(p.Doc.Text()), " ")
			if !strings.Contains(text, bitbucket.WaitEnd(paused)) || strings.Contains(text, "few minutes") || strings.Contains(text, "in a minute") ||
				strings.Contains(text, "1h0m0s") || strings.Contains(text, "paused in") {
				t.Fatalf("the pause ends at %s; the page says:\n%s", bitbucket.WaitEnd(paused), text)
			}
		})
	}
}

// Logging in with Bitbucket while Bitbucket rate limits the person's
// account says so, and until when (its Retry-After), instead of "could
// not be reached"; nothing is signed in, and the account's meter is as
// it was.
func TestLogInDuringARateLimitSaysSo(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.AddUser("alice")
	c := env.Client()
	c.SignUpWithBitbucket("alice")
	c.Submit(c.Get("/account"), `form[action="/logout"]`, nil, "")
	env.Emulator.SetRateLimit(emulator.RateLimit{PerHour: env.Emulator.APICallsOf("alice").LastHour})
	p := c.Consent(c.StartBitbucket("alice"), true)
	text := strings.Join(strings.Fields(p.Doc.Find("main").Text()), " ")
	if p.Status != http.StatusBadGateway || !strings.Contains(text, "rate limiting your account") || !strings.Contains(text, "try again after ") ||
		strings.Contains(text, "could not be reached") {
		t.Fatalf("log in during a rate limit: %d\n%s", p.Status, text)
	}
	if env.Emulator.APICallsOf("alice").Limited != 1 {
		t.Fatalf("%d calls answered 429: the sign-in went on asking", env.Emulator.APICallsOf("alice").Limited)
	}
	if c.Get("/projects").URL.Path != "/login" {
		t.Fatal("signed in although Bitbucket did not say who this is")
	}
}
