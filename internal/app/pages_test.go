package app_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/apptest"
)

// badgeStatus is the data-status of the first health badge in sel.
func badgeStatus(s *goquery.Selection) string {
	v, _ := s.Find(`[data-testid="health-badge"]`).First().Attr("data-status")
	return v
}

// The Projects page shows each project with the badges of its own deploy
// key and webhook, as recorded: one project's broken key and another's
// broken hook each show on their own row and column.
func TestProjectsPageShowsBothBadgesOfEachProject(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	api := create(t, c, "alice/api")
	site := create(t, c, "alice/site")
	env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
	apptest.MustStatus(t, c.HTMX(http.MethodPost, api.URL.Path+"/deploy-key/check", api, nil), http.StatusOK)
	env.Emulator.DeleteHook("alice/site", env.Emulator.Hooks("alice/site")[0].UUID)
	apptest.MustStatus(t, c.HTMX(http.MethodPost, site.URL.Path+"/webhook/check", site, nil), http.StatusOK)

	want := map[string][2]string{ // project path → deploy key, webhook
		api.URL.Path:  {"invalid", "valid"},
		site.URL.Path: {"valid", "invalid"},
	}
	page := c.Get("/projects")
	apptest.MustStatus(t, page, http.StatusOK)
	rows := page.Doc.Find(`[data-testid="project-row"]`)
	if rows.Length() != len(want) {
		t.Fatalf("%d project rows, want %d\n%s", rows.Length(), len(want), page.Body)
	}
	rows.Each(func(_ int, row *goquery.Selection) {
		path, _ := row.Find("td.name a").Attr("href")
		cells := row.Find("td")
		got := [2]string{badgeStatus(cells.Eq(2)), badgeStatus(cells.Eq(3))}
		if got != want[path] {
			t.Errorf("%s: deploy key and webhook badges %v, want %v", path, got, want[path])
		}
	})
}

// The Team page shows an admin each connected member's own meter — the
// calls that connection spent, as the budget counts them — and the alert
// channels; a member sees neither.
func TestTeamPageShowsEachMembersMeterToAdmins(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	env := tm.env
	alice, bob := userID(t, env, "alice"), userID(t, env, "bob")
	// Alice's connection spent calls creating the project, Bob's fewer:
	// each row must show its own.
	spent := map[int64]int{alice: env.App.Budget.Usage(alice).Spent, bob: env.App.Budget.Usage(bob).Spent}
	if spent[alice] == 0 || spent[alice] == spent[bob] {
		t.Fatalf("want two different meters to tell apart: %v", spent)
	}

	team := tm.alice.Get("/team")
	apptest.MustStatus(t, team, http.StatusOK)
	rows := team.Doc.Find(`[data-testid="meter-row"]`)
	if rows.Length() != 2 {
		t.Fatalf("%d meter rows, want alice's and bob's\n%s", rows.Length(), team.Body)
	}
	for id, n := range spent {
		row := team.Doc.Find(`[data-testid="meter-row"][data-user="` + strconv.FormatInt(id, 10) + `"]`)
		if got := strings.TrimSpace(row.Find(`[data-testid="meter-spent"]`).Text()); got != strconv.Itoa(n) {
			t.Errorf("user %d: meter says %q calls, the budget counted %d", id, got, n)
		}
	}
	// Alice backs the project: the schedule looks at it next; Bob backs none.
	if got := team.Text(`[data-testid="meter-row"][data-user="` + strconv.FormatInt(bob, 10) + `"] [data-testid="meter-next"]`); !strings.Contains(got, "backs no project") {
		t.Errorf("bob's next check: %q", got)
	}
	if got := team.Text(`[data-testid="meter-row"][data-user="` + strconv.FormatInt(alice, 10) + `"] [data-testid="meter-next"]`); strings.Contains(got, "backs no project") {
		t.Errorf("alice's next check: %q", got)
	}
	if !team.Has(`[data-testid="notifications"]`) || !team.Has(`[data-testid="member"][data-user="`+strconv.FormatInt(alice, 10)+`"] [data-testid="only-admin"]`) {
		t.Errorf("the admin's Team page lacks the alert channels or the only-admin note\n%s", team.Body)
	}

	member := tm.bob.Get("/team")
	apptest.MustStatus(t, member, http.StatusOK)
	if member.Has(`[data-testid="budget-meter"]`) || member.Has(`[data-testid="notifications"]`) {
		t.Fatalf("a member sees the meter or the alert channels\n%s", member.Body)
	}
	if member.Doc.Find(`[data-testid="member"]`).Length() != 2 {
		t.Fatalf("a member does not see both members\n%s", member.Body)
	}
}

// Check now and Regenerate answer with the row they changed, as stored
// after the action: the same badge and facts a poll of the row reads
// next, and what Bitbucket holds now.
func TestProjectActionsAnswerWithTheRowTheyChanged(t *testing.T) {
	t.Parallel()
	facts := func(row *goquery.Selection) string {
		var out []string
		row.Find(`[data-testid="fingerprint"], [data-testid="hook-uuid"]`).Each(func(_ int, s *goquery.Selection) {
			out = append(out, strings.TrimSpace(s.Text()))
		})
		return strings.Join(out, " ")
	}
	cases := []struct {
		name, slug, action string
		breakIt            func(env *apptest.Env)
		status             string
		onBitbucket        func(env *apptest.Env) string // the fact Bitbucket holds now
	}{
		{"Check now finds the key removed", "deploy-key", "check", func(env *apptest.Env) {
			env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
		}, "invalid", nil},
		{"Check now finds the hook removed", "webhook", "check", func(env *apptest.Env) {
			env.Emulator.DeleteHook("alice/api", env.Emulator.Hooks("alice/api")[0].UUID)
		}, "invalid", nil},
		{"Regenerate replaces a removed key", "deploy-key", "regenerate", func(env *apptest.Env) {
			env.Emulator.DeleteDeployKey("alice/api", env.Emulator.DeployKeys("alice/api")[0].ID)
		}, "valid", nil},
		{"Regenerate replaces a removed hook", "webhook", "regenerate", func(env *apptest.Env) {
			env.Emulator.DeleteHook("alice/api", env.Emulator.Hooks("alice/api")[0].UUID)
		}, "valid", func(env *apptest.Env) string { return env.Emulator.Hooks("alice/api")[0].UUID }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env, c := withRepo(t, apptest.Options{})
			project := create(t, c, "alice/api")
			row := `#` + tc.slug
			before := facts(project.Doc.Find(row))
			tc.breakIt(env)

			answer := c.HTMX(http.MethodPost, project.URL.Path+"/"+tc.slug+"/"+tc.action, project, nil)
			apptest.MustStatus(t, answer, http.StatusOK)
			got := answer.Doc.Find(row)
			if s := badgeStatus(got); s != tc.status {
				t.Fatalf("the answer's badge is %q, want %q\n%s", s, tc.status, answer.Body)
			}
			poll := c.HTMX(http.MethodGet, project.URL.Path+"/"+tc.slug, project, nil)
			if badgeStatus(poll.Doc.Find(row)) != tc.status || facts(poll.Doc.Find(row)) != facts(got) {
				t.Fatalf("the answer %q %q differs from the row as stored %q %q",
					badgeStatus(got), facts(got), badgeStatus(poll.Doc.Find(row)), facts(poll.Doc.Find(row)))
			}
			if tc.action == "regenerate" && facts(got) == before {
				t.Fatalf("Regenerate answered with the old row: %q", before)
			}
			if tc.onBitbucket != nil && !strings.Contains(facts(got), tc.onBitbucket(env)) {
				t.Fatalf("the answer shows %q, Bitbucket holds %q", facts(got), tc.onBitbucket(env))
			}
		})
	}
}
