package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tether/internal/apptest"
)

// Every part of a page that htmx asks for on its own (a badge, a section,
// the picker's list, the checklist) answers htmx with the fragment, and
// anyone else — the part's URL opened in a tab, a bookmark — with a 303
// to the whole page it belongs to; both vary on HX-Request, so no cache
// hands one the other's answer.
func TestPartsOfPagesAnswerHTMXAndSendBrowsersToThePage(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	id := strings.TrimPrefix(project.URL.Path, "/projects/")
	page := "/projects/" + id
	cases := []struct{ part, page string }{
		{page + "/deploy-key", page},
		{page + "/webhook", page},
		{page + "/activity", page},
		{page + "/repository", page},
		{page + "/moved", page},
		{page + "/missed", page},
		{"/projects/new/repositories?q=api", "/projects/new?q=api"},
		{"/team/notifications/channels", "/team"},
		{"/troubleshooting/checks", "/troubleshooting"},
	}
	noFollow := &http.Client{Jar: c.HTTP.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodGet, env.URL+tc.part, nil)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.page ||
			!strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "HX-Request") {
			t.Errorf("GET %s opened directly: %d to %q, Vary %q; want 303 to %s, Vary HX-Request",
				tc.part, resp.StatusCode, resp.Header.Get("Location"), resp.Header.Values("Vary"), tc.page)
		}
		if whole := c.Get(tc.part); whole.Status != http.StatusOK || !whole.Has("html body main") {
			t.Errorf("GET %s opened directly ends at %s with %d, not a whole page", tc.part, whole.URL, whole.Status)
		}
		frag := c.HTMX(http.MethodGet, tc.part, project, nil)
		if frag.Status != http.StatusOK || frag.Has("main") ||
			!strings.Contains(strings.Join(frag.Header.Values("Vary"), ","), "HX-Request") {
			t.Errorf("htmx GET %s: %d, whole page %v, Vary %q", tc.part, frag.Status, frag.Has("main"), frag.Header.Values("Vary"))
		}
	}
}

// An action posted without htmx (a plain form post: no JavaScript, a
// script) ends on the whole page with its outcome said there, once, not on
// a bare fragment.
func TestActionsWithoutHTMXEndOnThePage(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	before := env.Emulator.DeployKeys("alice/api")[0].ID
	req, _ := http.NewRequest(http.MethodPost, env.URL+project.URL.Path+"/deploy-key/regenerate",
		strings.NewReader(url.Values{"_csrf": {project.CSRF()}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := c.Do(req)
	if p.Status != http.StatusOK || p.URL.Path != project.URL.Path || !p.Has("html body main") {
		t.Fatalf("Regenerate without htmx ended at %s with %d", p.URL, p.Status)
	}
	if got := p.Text(`main > [data-testid="flash"]`); !strings.Contains(got, "key") {
		t.Errorf("the outcome is not said on the page: %q", got)
	}
	if keys := env.Emulator.DeployKeys("alice/api"); len(keys) != 1 || keys[0].ID == before {
		t.Errorf("keys on Bitbucket %v; want one new key (was %d)", keys, before)
	}
	if again := c.Get(project.URL.Path); again.Has(`[data-testid="flash"]`) {
		t.Errorf("the outcome is said again: %q", again.Text(`[data-testid="flash"]`))
	}
}
