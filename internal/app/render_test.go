package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
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
		{"/account/bitbucket", "/account"},
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
// a bare fragment. (Regenerate asks first: the post here is the confirmed
// one, TestDestructiveFormsAskFirstWithoutJavaScript the question.)
func TestActionsWithoutHTMXEndOnThePage(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	before := env.Emulator.DeployKeys("alice/api")[0].ID
	req, _ := http.NewRequest(http.MethodPost, env.URL+project.URL.Path+"/deploy-key/regenerate",
		strings.NewReader(url.Values{"_csrf": {project.CSRF()}, "confirmed": {"yes"}}.Encode()))
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

// Every form that htmx posts also works as a plain form: it says where it
// posts and carries the CSRF token, so without JavaScript (htmx not loaded
// yet, or blocked) it is posted, not sent as a GET that puts what was
// typed — a webhook URL, a signing secret — in the address bar. The
// pages are read with an invitation link and a signing secret on them, so
// what shows only once is checked too.
func TestEveryHTMXFormIsAlsoAPlainForm(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t)) // Bob's row has Make Admin and Remove
	pages := map[string]*apptest.Page{}
	for _, path := range []string{tm.id, "/team", "/account", "/projects/new", "/troubleshooting", "/troubleshooting?run=1", "/team/audit"} {
		pages[path] = tm.alice.Get(path)
	}
	pages["Invite's answer"] = tm.alice.HTMX(http.MethodPost, "/team/invitations", pages["/team"], nil)
	pages["Add webhook's answer"] = tm.alice.HTMX(http.MethodPost, "/team/notifications/webhooks", pages["/team"],
		url.Values{"url": {"https://chat.example.com/hooks/T0/B0/x"}})
	tm.env.Emulator.AddRepository("acme", "web", true)
	pages["Change's question"] = tm.alice.HTMX(http.MethodPost, tm.id+"/repository", pages[tm.id],
		url.Values{"url": {tm.env.BBURL + "/acme/web"}})
	if !pages["Invite's answer"].Has(`[data-testid="invite-link"]`) || !pages["Add webhook's answer"].Has(`[data-testid="new-secret"]`) ||
		!pages["Change's question"].Has(`[data-testid="cancel-change"]`) {
		t.Fatal("no invitation link, signing secret or Change's question to check")
	}
	// An htmx answer is swapped into a page, whose indicators it may use.
	hosts := map[string]string{"Invite's answer": "/team", "Add webhook's answer": "/team", "Change's question": tm.id}
	for path, p := range pages {
		if p.Status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.Status)
		}
		// No inline handlers either: the Content-Security-Policy runs
		// only Tether's own script files (static/app.js).
		p.Doc.Find("*").Each(func(_ int, e *goquery.Selection) {
			for _, a := range e.Nodes[0].Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("%s: an inline handler %s=%q on <%s>", path, a.Key, a.Val, goquery.NodeName(e))
				}
			}
		})
		token := p.CSRF()
		if token == "" { // an htmx answer: the token of the page it is swapped into
			token = pages["/team"].CSRF()
		}
		// A button htmx posts is a form's submit button, never a bare
		// hx-post: without JavaScript a bare one does nothing at all.
		p.Doc.Find("[hx-post]").Not("form").Each(func(_ int, e *goquery.Selection) {
			html, _ := goquery.OuterHtml(e)
			t.Errorf("%s: <%s> htmx posts is not a form that also posts without JavaScript: %.200s", path, goquery.NodeName(e), html)
		})
		// What htmx gets on a press (not a poll or a load) is a link, a
		// GET form or its submit button: the browser follows it without
		// JavaScript too.
		p.Doc.Find("[hx-get]").Not("a[href], form[method=get][action], form[method=get][action] [type=submit]").Each(func(_ int, e *goquery.Selection) {
			trigger := e.AttrOr("hx-trigger", "")
			if strings.HasPrefix(trigger, "every ") || strings.HasPrefix(trigger, "load") {
				return
			}
			html, _ := goquery.OuterHtml(e)
			t.Errorf("%s: <%s> htmx gets on a press is not a link or a GET form that works without JavaScript: %.200s", path, goquery.NodeName(e), html)
		})
		// A form htmx posts can be sent once at a time: its button is
		// disabled while the post is in flight (hx-disable, or an hx-sync
		// that drops repeats), so a double click does not act twice, and
		// a working indicator on the page shows meanwhile.
		p.Doc.Find("form[hx-post]").Each(func(_ int, f *goquery.Selection) {
			head, _, _ := strings.Cut(func() string { h, _ := goquery.OuterHtml(f); return h }(), ">")
			if f.AttrOr("hx-disable", "") == "" && !strings.HasSuffix(f.AttrOr("hx-sync", ""), ":drop") {
				t.Errorf("%s: a form htmx posts leaves its button pressable while in flight: %s>", path, head)
			}
			if indicatorOf(f, p, pages[hosts[path]]).Length() == 0 {
				t.Errorf("%s: a form htmx posts has no working indicator (hx-indicator naming an .htmx-indicator): %s>", path, head)
			}
		})
		p.Doc.Find("form").Each(func(_ int, f *goquery.Selection) {
			method, _ := f.Attr("method")
			action, _ := f.Attr("action")
			html, _ := goquery.OuterHtml(f)
			if head, _, _ := strings.Cut(html, ">"); f.AttrOr("hx-post", "") != "" || method == "post" {
				if method != "post" || action == "" || f.Find(`input[name="_csrf"]`).AttrOr("value", "") != token {
					t.Errorf("%s: a form htmx posts is not a plain post with the CSRF token: %s>", path, head)
				}
				if hx := f.AttrOr("hx-post", action); hx != action {
					t.Errorf("%s: htmx posts to %s, the browser to %s: %s>", path, hx, action, head)
				}
			} else if method != "get" || action == "" {
				t.Errorf("%s: a form without method and action: %s>", path, head)
			}
		})
	}
}

// indicatorOf is the working indicator form f names (hx-indicator: a CSS
// selector, or "closest …" or "find …"), looked up in the answer p and
// the page it is swapped into (host, nil for a whole page); only elements
// that are .htmx-indicator count, as only those are hidden until a
// request is in flight (static/app.css).
func indicatorOf(f *goquery.Selection, p, host *apptest.Page) *goquery.Selection {
	sel := f.AttrOr("hx-indicator", "")
	switch {
	case sel == "":
		return f.Filter(".htmx-indicator") // htmx's default: the form itself
	case strings.HasPrefix(sel, "closest "):
		return f.Closest(strings.TrimPrefix(sel, "closest ")).Filter(".htmx-indicator")
	case strings.HasPrefix(sel, "find "):
		return f.Find(strings.TrimPrefix(sel, "find ")).First().Filter(".htmx-indicator")
	}
	found := p.Doc.Find(sel).Filter(".htmx-indicator")
	if found.Length() == 0 && host != nil {
		found = host.Doc.Find(sel).Filter(".htmx-indicator")
	}
	return found
}

// Someone signed in who belongs to no organization yet can stay on their
// Account page: its Bitbucket row polls without sending them to setup.
func TestAccountPageBeforeAnyOrganization(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	c := env.Client()
	signup := c.Get("/signup")
	if p := c.Submit(signup, `form[action="/signup"]`, map[string]string{"name": "Dave", "email": "dave@example.com", "password": "correct horse battery"}, ""); p.URL.Path != "/setup" {
		t.Fatalf("sign-up ended at %s", p.URL)
	}
	account := c.Get("/account")
	if account.URL.Path != "/account" {
		t.Fatalf("the account page sent them to %s", account.URL)
	}
	poll := c.HTMX(http.MethodGet, "/account/bitbucket", account, nil)
	if poll.Status != http.StatusOK || poll.Header.Get("HX-Redirect") != "" || !poll.Has(`[data-testid="bitbucket-status"]`) {
		t.Fatalf("the Bitbucket row's poll: %d, HX-Redirect %q\n%s", poll.Status, poll.Header.Get("HX-Redirect"), poll.Body)
	}
	if p := c.Get("/projects"); p.URL.Path != "/setup" {
		t.Errorf("Projects with no organization ended at %s, not the setup step", p.URL)
	}
}

// A part that asks Bitbucket, opened directly, is sent to its page before
// asking: nothing of anyone's budget is spent on an answer thrown away.
func TestPartsOpenedDirectlySpendNoBitbucketCalls(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	create(t, c, "alice/api")
	noFollow := &http.Client{Jar: c.HTTP.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	before := env.Emulator.APICallsOf("alice").Total
	for _, part := range []string{"/troubleshooting/checks", "/projects/new/repositories?fresh=1"} {
		resp, err := noFollow.Get(env.URL + part)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET %s: %d", part, resp.StatusCode)
		}
	}
	if after := env.Emulator.APICallsOf("alice").Total; after != before {
		t.Errorf("opening the parts directly cost %d Bitbucket calls", after-before)
	}
}

// Without htmx, Change naming another repository asks on the page that
// answers (Use it, or Cancel) and changes nothing until Use, and adding an alert webhook shows the signing
// secret Tether made, once, on the Team page.
func TestPlainPostsSayWhatHTMXWouldShow(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	project := create(t, c, "alice/api")
	post := func(path string, form url.Values) *apptest.Page {
		form.Set("_csrf", project.CSRF())
		req, _ := http.NewRequest(http.MethodPost, env.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return c.Do(req)
	}
	p := post(project.URL.Path+"/repository", url.Values{"url": {env.BBURL + "/alice/site"}})
	confirm := p.Doc.Find(`main [data-testid="confirm-switch"]`)
	if p.Status != http.StatusOK || !strings.Contains(confirm.Text(), "alice/site is a different repository") ||
		confirm.Find(`[data-testid="confirm-change"]`).Length() != 1 ||
		confirm.Find(`a[data-testid="cancel-change"]`).AttrOr("href", "") != project.URL.Path {
		t.Errorf("Change to another repository without htmx: %d at %s, asking %q", p.Status, p.URL, confirm.Text())
	}
	if p.Text(`[data-testid="repository-name"]`) != "alice/api" {
		t.Error("Change to another repository changed the project before it was confirmed")
	}
	use := confirm.Find(`[data-testid="confirm-change"]`).Closest("form")
	form := url.Values{}
	use.Find("input[type=hidden]").Each(func(_ int, in *goquery.Selection) { form.Set(in.AttrOr("name", ""), in.AttrOr("value", "")) })
	p = post(use.AttrOr("action", ""), form)
	if got := p.Text(`main > [data-testid="flash"]`); p.URL.Path != project.URL.Path || !strings.Contains(got, "now uses alice/site") {
		t.Errorf("Use alice/site without htmx ended at %s saying %q", p.URL, got)
	}
	p = post(project.URL.Path+"/deploy-key/check", url.Values{})
	if got := p.Text(`main > [data-testid="flash"]`); p.URL.Path != project.URL.Path || got != "✓ Deploy Key checked with Bitbucket just now: Valid." {
		t.Errorf("Check now without htmx ended at %s saying %q", p.URL, got)
	}
	p = post("/team/notifications/webhooks", url.Values{"url": {"https://chat.example.com/hooks/T0/B0/x"}})
	if p.Status != http.StatusOK || !p.Has("html body main") || !p.Has(`[data-testid="new-secret"]`) {
		t.Errorf("adding a webhook without htmx: %d, whole page %v, secret shown %v", p.Status, p.Has("html body main"), p.Has(`[data-testid="new-secret"]`))
	}
}

// A post refused before its handler (a stale CSRF token) answers with an
// error page that still shows the person signed in: their Log out, not
// "Log in" and "Sign up".
func TestRefusedPostStillShowsWhoIsSignedIn(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	req, _ := http.NewRequest(http.MethodPost, tm.env.URL+"/team/invitations", strings.NewReader(url.Values{"_csrf": {"stale-token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := tm.alice.Do(req)
	if p.Status != http.StatusForbidden || !p.Has(`header form[action="/logout"]`) || p.Has(`header a[href="/login"]`) {
		t.Fatalf("a refused post: %d, Log out shown %v, Log in shown %v", p.Status, p.Has(`header form[action="/logout"]`), p.Has(`header a[href="/login"]`))
	}
}

// Without JavaScript the Troubleshooting page runs its checklist when
// asked: opening it asks Bitbucket nothing; Check, a GET form, answers
// with the whole page and the checklist on it, and so does Check again;
// the fixes beside a failed step (Update URL, and Regenerate after its
// question) land back on the page with their outcome said once.
func TestTroubleshootingWithoutJavaScript(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	env, c := h.env, h.c
	env.App.Connections.Coalesce, env.App.Projects.ListFresh = 0, 0
	calls := func() int { return env.Emulator.APICallsOf("alice").Total }
	before := calls()
	page := c.Get("/troubleshooting")
	if spent := calls() - before; spent != 0 || page.Has(`[data-testid="checklist"]`) {
		t.Fatalf("opening Troubleshooting cost %d Bitbucket calls (checklist shown %v)", spent, page.Has(`[data-testid="checklist"]`))
	}
	run := `form:has([data-testid="run-checks"])`
	if f := page.Doc.Find(run); f.AttrOr("method", "") != "get" || f.AttrOr("action", "") != "/troubleshooting" {
		t.Fatalf("no Check the browser follows on its own:\n%s", page.Body)
	}
	ranAt := func(p *apptest.Page, what string) {
		t.Helper()
		if p.Status != http.StatusOK || p.URL.Path != "/troubleshooting" || !p.Has(`main [data-testid="checklist"]`) ||
			p.Attr(`[data-testid="step-connection"]`, "data-status") != "ok" {
			t.Fatalf("%s without scripts: %d at %s, checklist %v\n%s", what, p.Status, p.URL, p.Has(`[data-testid="checklist"]`), p.Body)
		}
	}
	before = calls()
	p := c.Submit(page, run, nil, "")
	ranAt(p, "Check")
	if calls() == before {
		t.Error("Check answered without asking Bitbucket")
	}
	p = c.Submit(p, `form:has([data-testid="check-again"])`, nil, "")
	ranAt(p, "Check again")

	env.Emulator.RenameRepository("alice/api", "api-v2")
	p = c.Submit(p, `form:has([data-testid="check-again"])`, nil, "")
	ranAt(p, "Check again after a rename")
	p = c.Submit(p, `form:has([data-testid="update-url"])`, nil, "")
	if got := p.Text(`main > [data-testid="flash"]`); p.URL.Path != "/troubleshooting" || !strings.Contains(got, "now uses alice/api-v2") {
		t.Fatalf("Update URL without scripts ended at %s saying %q", p.URL, got)
	}

	env.Emulator.DeleteDeployKey("alice/api-v2", env.Emulator.DeployKeys("alice/api-v2")[0].ID)
	p = c.Submit(p, run, nil, "")
	ranAt(p, "Check after the key was removed")
	p = c.Submit(p, `[data-testid="project-alice/api-v2"] [data-testid="step-deploy-key"] form:has([data-testid="regenerate"])`, nil, "")
	if !p.Has(`[data-testid="confirm-form"]`) || p.Attr(`[data-testid="cancel"]`, "href") != "/troubleshooting" {
		t.Fatalf("Regenerate without scripts does not ask first, with Cancel back to the checklist:\n%s", p.Body)
	}
	p = c.Submit(p, `[data-testid="confirm-form"]`, nil, "")
	if got := p.Text(`main > [data-testid="flash"]`); p.URL.Path != "/troubleshooting" || !strings.Contains(got, "A new deploy key is in force") {
		t.Fatalf("the confirmed Regenerate without scripts ended at %s saying %q", p.URL, got)
	}
	p = c.Submit(p, run, nil, "")
	ranAt(p, "Check after Regenerate")
	if got := p.Attr(`[data-testid="project-alice/api-v2"] [data-testid="step-deploy-key"]`, "data-status"); got != "ok" {
		t.Errorf("the deploy key step after Regenerate: %q", got)
	}
	if p.Has(`[data-testid="flash"]`) {
		t.Errorf("an outcome is said again: %q", p.Text(`[data-testid="flash"]`))
	}
}

// Check now on the Account page, posted without JavaScript, lands on the
// Account page (303, so a reload does not post it again) saying once what
// the check found, in the row's words.
func TestAccountCheckWithoutJavaScript(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	env.App.Connections.Coalesce = 0 // each press checks
	for _, tc := range []struct {
		name, says string
		breakIt    func()
	}{
		{"connected", "✓ Bitbucket connection checked just now: Connected.", func() {}},
		{"Bitbucket failing", "Bitbucket connection could not be checked just now: Bitbucket answered 502, will retry.", func() {
			env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/user", Status: 502})
		}},
		{"revoked", "Bitbucket connection checked just now: Not Connected: access was revoked on Bitbucket", func() {
			env.Emulator.ClearFailures()
			env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
		}},
	} {
		tc.breakIt()
		account := c.Get("/account")
		if !account.Has(`form[action="/account/bitbucket/check"]`) {
			t.Fatalf("%s: no Check now on the account page", tc.name)
		}
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/account/bitbucket/check",
			strings.NewReader(url.Values{"_csrf": {account.CSRF()}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		p := c.Do(req)
		if got := p.Text(`main > [data-testid="flash"]`); p.Status != http.StatusOK || p.URL.Path != "/account" || !strings.Contains(got, tc.says) {
			t.Errorf("%s: Check now without htmx: %d at %s saying %q; want %q", tc.name, p.Status, p.URL, got, tc.says)
		}
		if again := c.Get("/account"); again.Has(`[data-testid="flash"]`) {
			t.Errorf("%s: the outcome is said again: %q", tc.name, again.Text(`[data-testid="flash"]`))
		}
	}
}

// A GET of an action's address — a reload, or Enter in the address bar,
// after a plain post answered there (an invitation link, a question, a
// refusal) — is sent (303) to the page the action belongs to, never
// "nothing at this address", and acts on nothing: Invite posted without
// htmx shows its link once, and the reload lands on the Team page with
// no second invitation.
func TestActionAddressesLeadToTheirPages(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	project := strings.TrimPrefix(tm.id, "/projects/")
	values := strings.NewReplacer(":id", project, ":user", "2", ":invitation", "1", ":channel", "1", ":token", "x")
	noFollow := &http.Client{Jar: tm.alice.HTTP.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	seen := 0
	for _, r := range tm.env.App.Routes {
		if r.Method != http.MethodPost || strings.Contains(r.Path, "*") || strings.HasPrefix(r.Path, "/hooks/") {
			continue
		}
		seen++
		address := values.Replace(r.Path)
		resp, err := noFollow.Get(tm.env.URL + address)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		to := resp.Header.Get("Location")
		if resp.StatusCode == http.StatusSeeOther && to != address && strings.HasPrefix(address, strings.TrimSuffix(to, "/")+"/") {
			if p := tm.alice.Get(address); p.URL.Path == address || !p.Has("html body main") {
				t.Errorf("GET %s ends at %s with %d", address, p.URL, p.Status)
			}
			continue
		}
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("GET %s (an action's address): %d", address, resp.StatusCode)
		}
	}
	if seen < 20 {
		t.Fatalf("only %d actions among the routes", seen)
	}
	for address, page := range map[string]string{
		"/team/invitations":              "/team",
		"/team/members/2/remove":         "/team",
		"/account/bitbucket/check":       "/account",
		tm.id + "/delete":                tm.id,
		tm.id + "/deploy-key/regenerate": tm.id,
	} {
		if p := tm.alice.Get(address); p.Status != http.StatusOK || p.URL.Path != page {
			t.Errorf("GET %s ends at %s with %d; want %s", address, p.URL, p.Status, page)
		}
	}

	count := func() (n int) {
		rawDB(t, tm.env).QueryRow(`SELECT COUNT(*) FROM invitations WHERE accepted_at IS NULL AND revoked_at IS NULL`).Scan(&n)
		return n
	}
	team := tm.alice.Get("/team")
	invited := tm.alice.Submit(team, `form:has([data-testid="invite"])`, nil, "")
	if invited.URL.Path != "/team/invitations" || !invited.Has(`[data-testid="invite-link"]`) || count() != 1 {
		t.Fatalf("Invite without htmx: at %s, link shown %v, %d pending", invited.URL, invited.Has(`[data-testid="invite-link"]`), count())
	}
	reload := tm.alice.Get(invited.URL.Path)
	if reload.URL.Path != "/team" || reload.Has(`[data-testid="invite-link"]`) || count() != 1 {
		t.Errorf("reloading Invite's answer: at %s, link shown %v, %d pending", reload.URL, reload.Has(`[data-testid="invite-link"]`), count())
	}
}
