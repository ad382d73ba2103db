package app_test

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/apptest"
)

// TestMeasureDemoBinary measures a running demo Tether from outside, as
// docs/BENCHMARKS.md describes: TETHER_MEASURE_URL is its base URL (the
// built binary with no BITBUCKET_CLIENT_ID), TETHER_MEASURE_MINUTES how
// long a project page stays open in Chromium. It signs in as the demo's
// alice, creates a project from acme/api, presses Check now 40 times in 3
// s, then leaves the project page open, and reads the emulator's control
// page (calls per user) and Tether's Team page meter.
func TestMeasureDemoBinary(t *testing.T) {
	base := os.Getenv("TETHER_MEASURE_URL")
	minutes, _ := strconv.Atoi(os.Getenv("TETHER_MEASURE_MINUTES"))
	if base == "" || minutes == 0 {
		t.Skip("set TETHER_MEASURE_URL and TETHER_MEASURE_MINUTES to measure a running demo")
	}
	c := (&apptest.Env{T: t, URL: base}).Client()
	p := c.Submit(c.Get("/login"), `form[action="/auth/bitbucket"]`, nil, "")
	if p.Has("#signin-form") {
		p = c.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "demo"}, "")
	}
	if p.Has("#grant-access") {
		p = c.Submit(p, "form:has(#grant-access)", nil, "#grant-access")
	}
	c.FinishSetup(p)
	picker := c.Get("/projects/new")
	created := c.HTMX(http.MethodPost, "/projects", picker, map[string][]string{"repository": {"acme/api"}})
	if created.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	project := c.Get(created.Header.Get("HX-Redirect"))

	calls := func() int {
		page := c.Get(base + "/bitbucket/_emulator/")
		n, _ := strconv.Atoi(strings.TrimSpace(page.Doc.Find(`#calls-table tr[data-username="alice"] [data-testid="calls-total"]`).Text()))
		return n
	}
	time.Sleep(11 * time.Second) // the check Create made is old now
	before := calls()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 75 * time.Millisecond)
			c.HTMX(http.MethodPost, project.URL.Path+"/deploy-key/check", project, nil)
		})
	}
	wg.Wait()
	t.Logf("40 Check now presses in 3 s: %d API calls", calls()-before)

	b := apptest.NewBrowserFor(t, time.Duration(minutes+3)*time.Minute)
	b.Navigate(base + "/")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.WaitVisible(`#signin-form`)
	b.Type(`#signin-form input[name="username"]`, "alice")
	b.Type(`#signin-form input[name="password"]`, "demo")
	b.Submit(`#signin-form`)
	b.WaitFor(`!!document.querySelector("#grant-access") || location.pathname === "/account" || location.pathname === "/projects"`, 10*time.Second)
	if b.Eval(`document.querySelector("#grant-access") ? "consent" : "in"`) == "consent" {
		b.Click(`#grant-access`)
	}
	b.WaitFor(`location.pathname === "/account" || location.pathname === "/projects"`, 10*time.Second)
	b.Navigate(project.URL.String())
	b.WaitVisible(`[data-testid="project-name"]`)
	start := calls()
	for m := 1; m <= minutes; m++ {
		time.Sleep(time.Minute)
		t.Logf("project page open %d min: %d API calls", m, calls()-start)
	}
	n := calls() - start
	b.Screenshot("measure-project-page")
	t.Logf("project page open %d min: %d API calls, %.0f per hour", minutes, n, float64(n)*60/float64(minutes))

	b.Navigate(base + "/team")
	b.WaitVisible(`[data-testid="budget-meter"]`)
	b.Screenshot("measure-team-meter")
	team := c.Get("/team")
	emu := c.Get(base + "/bitbucket/_emulator/")
	t.Logf("Team page meter for alice: %s calls in the last hour; emulator: %s in the last hour",
		strings.TrimSpace(team.Doc.Find(`[data-testid="meter-row"] [data-testid="meter-spent"]`).First().Text()),
		strings.TrimSpace(emu.Doc.Find(`#calls-table tr[data-username="alice"] [data-testid="calls-last-hour"]`).Text()))
	if token := os.Getenv("TETHER_MEASURE_METRICS_TOKEN"); token != "" {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := os.WriteFile(os.Getenv("TETHER_MEASURE_METRICS_OUT"), body, 0o644); err != nil {
			t.Log(err)
		}
	}
}
