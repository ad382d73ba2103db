package app_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/apptest"
)

// confirmScene is Alice's organization set up so that every destructive
// action is on offer: Bob is a second admin with admin rights on
// acme/api (Alice's Team page offers Remove and Leave, Bob's project page
// Re-home to me), a webhook alert channel can be removed, and the deploy
// key is gone from Bitbucket, so the troubleshooting checklist offers
// Regenerate.
func confirmScene(t *testing.T) *team {
	t.Helper()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	page := tm.alice.Get("/team")
	bob, _ := page.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", page, url.Values{"role": {"admin"}}); p.Status != http.StatusOK {
		t.Fatalf("making Bob admin: %d", p.Status)
	}
	tm.env.Emulator.SetRepoPermission("bob", "acme/api", "admin")
	if p := tm.alice.HTMX(http.MethodPost, "/team/notifications/webhooks", page,
		url.Values{"url": {"https://chat.example.com/hooks/T0/B0/x"}}); p.Status != http.StatusOK {
		t.Fatalf("adding an alert webhook: %d", p.Status)
	}
	tm.env.Emulator.DeleteDeployKey("acme/api", tm.env.Emulator.DeployKeys("acme/api")[0].ID)
	return tm
}

// confirming is a form that asks before it acts (hx-confirm), as found on
// a page: who sees it, the page it belongs to, and what it posts.
type confirming struct {
	who      string
	c        *apptest.Client
	home     string // the page it belongs to, where Cancel goes back
	action   string
	fields   url.Values // its inputs, the CSRF token included
	question string     // its hx-confirm
	button   string     // the word on its button
}

// key names the form by what it posts, the same in every scene.
func (f confirming) key() string {
	v := url.Values{}
	for k, vs := range f.fields {
		if k != "_csrf" {
			v[k] = vs
		}
	}
	if len(v) == 0 {
		return f.action
	}
	return f.action + "?" + v.Encode()
}

// confirmingForms collects every form with hx-confirm from the pages of
// the scene — Alice's project page, Team page, Account page,
// troubleshooting checklist and her other pages, Bob's project page and
// the Team page his Remove on Alice (who backs the project) answers with
// — once each by what it posts.
func confirmingForms(t *testing.T, tm *team) []confirming {
	t.Helper()
	bobTeam := tm.bob.Get("/team")
	alice, _ := bobTeam.Doc.Find(`[data-testid="member"]:has(.name:contains("Alice"))`).Attr("data-user")
	type source struct {
		who  string
		c    *apptest.Client
		home string
		page *apptest.Page
	}
	sources := []source{
		{"Alice", tm.alice, tm.id, tm.alice.Get(tm.id)},
		{"Alice", tm.alice, "/team", tm.alice.Get("/team")},
		{"Alice", tm.alice, "/account", tm.alice.Get("/account")},
		{"Alice", tm.alice, "/troubleshooting", tm.alice.HTMX(http.MethodGet, "/troubleshooting/checks", tm.alice.Get("/troubleshooting"), nil)},
		{"Bob", tm.bob, tm.id, tm.bob.Get(tm.id)},
		{"Bob", tm.bob, "/team", tm.bob.HTMX(http.MethodPost, "/team/members/"+alice+"/remove", bobTeam, nil)},
	}
	for _, path := range []string{"/projects", "/projects/new", "/team/audit", "/team/outbox"} {
		sources = append(sources, source{"Alice", tm.alice, path, tm.alice.Get(path)})
	}
	var out []confirming
	seen := map[string]bool{}
	for _, s := range sources {
		apptest.MustStatus(t, s.page, http.StatusOK)
		// Only a form's question is asked without JavaScript too.
		s.page.Doc.Find("[hx-confirm]").Not("form").Each(func(_ int, e *goquery.Selection) {
			t.Errorf("%s: <%s> asks %q only when scripts run: put hx-confirm on a form whose route asks first",
				s.home, goquery.NodeName(e), e.AttrOr("hx-confirm", ""))
		})
		s.page.Doc.Find("form[hx-confirm]").Each(func(_ int, f *goquery.Selection) {
			cf := confirming{who: s.who, c: s.c, home: s.home, fields: url.Values{},
				action: f.AttrOr("action", ""), question: f.AttrOr("hx-confirm", ""),
				button: strings.TrimSpace(f.Find(`button[type="submit"]`).Text())}
			f.Find("input[name]").Each(func(_ int, in *goquery.Selection) {
				cf.fields.Add(in.AttrOr("name", ""), in.AttrOr("value", ""))
			})
			if !seen[cf.key()] {
				seen[cf.key()] = true
				out = append(out, cf)
			}
		})
	}
	return out
}

// storedState is what Tether and Bitbucket hold that a destructive action
// changes: projects and who backs them, deploy keys and webhooks (in the
// database and on Bitbucket), memberships, alert channels and Bitbucket
// connections.
func storedState(t *testing.T, env *apptest.Env) string {
	t.Helper()
	var s string
	if err := rawDB(t, env).QueryRow(`SELECT
		ifnull((SELECT group_concat(id || ':' || owner_id || ':' || full_name) FROM projects), '') || '|' ||
		ifnull((SELECT group_concat(bitbucket_key_id || state) FROM deploy_keys), '') || '|' ||
		ifnull((SELECT group_concat(hook_uuid || state) FROM webhooks), '') || '|' ||
		ifnull((SELECT group_concat(org_id || ':' || user_id || role) FROM memberships), '') || '|' ||
		ifnull((SELECT group_concat(id) FROM alert_channels), '') || '|' ||
		ifnull((SELECT group_concat(user_id || status || (access_token IS NULL)) FROM bitbucket_identities), '')`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s + "|" + bitbucketState(env)
}

// plainPost posts fields to action as a browser without JavaScript does:
// a form body, no HX-Request, redirects followed.
func plainPost(c *apptest.Client, env *apptest.Env, action string, fields url.Values) *apptest.Page {
	req, _ := http.NewRequest(http.MethodPost, env.URL+action, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// Every form that asks before it acts (hx-confirm) asks without
// JavaScript too. Posted as a browser without scripts posts it, it changes
// nothing and answers with a whole page that asks the same question and
// offers the same action, confirmed, beside Cancel; posted without its
// CSRF token it is refused before anything asks. Pressing the action on
// that page does it.
func TestDestructiveFormsAskFirstWithoutJavaScript(t *testing.T) {
	t.Parallel()
	tm := confirmScene(t)
	forms := confirmingForms(t, tm)
	var found []string
	for _, f := range forms {
		found = append(found, strings.TrimPrefix(f.action, tm.id))
	}
	for _, want := range []string{"/deploy-key/regenerate", "/webhook/regenerate", "/delete", "/rehome",
		"/account/bitbucket/disconnect"} {
		if !slices.Contains(found, want) {
			t.Fatalf("no form posting %s among those that ask first (%v): the collection misses pages", want, found)
		}
	}
	kinds := map[string]int{}
	for _, f := range forms {
		switch {
		case strings.HasPrefix(f.action, "/team/members/") && f.fields.Get("force") != "":
			kinds["Remove anyway"]++
		case strings.HasPrefix(f.action, "/team/members/"):
			kinds[f.button]++
		case strings.HasPrefix(f.action, "/team/notifications/"):
			kinds["Remove channel"]++
		case f.fields.Get("from") == "checklist":
			kinds["Regenerate on the checklist"]++
		}
	}
	for _, want := range []string{"Remove", "Leave", "Remove anyway", "Remove channel", "Regenerate on the checklist"} {
		if kinds[want] == 0 {
			t.Fatalf("no %s form among those that ask first (%v)", want, kinds)
		}
	}

	for _, f := range forms {
		t.Run(f.who+" "+f.key(), func(t *testing.T) {
			token := f.fields.Get("_csrf")
			if token == "" {
				t.Fatalf("the form carries no CSRF token")
			}
			before := storedState(t, tm.env)

			// Without its token, confirmed or not: refused before
			// anything asks or acts.
			for _, confirmed := range []string{"", "yes"} {
				untokened := url.Values{}
				for k, vs := range f.fields {
					if k != "_csrf" {
						untokened[k] = vs
					}
				}
				if confirmed != "" {
					untokened.Set("confirmed", confirmed)
				}
				if p := plainPost(f.c, tm.env, f.action, untokened); p.Status != http.StatusForbidden || p.Has(`[data-testid="confirm-form"]`) {
					t.Errorf("posted without its CSRF token (confirmed=%q): %d, asks %v; want 403", confirmed, p.Status, p.Has(`[data-testid="confirm-form"]`))
				}
			}

			p := plainPost(f.c, tm.env, f.action, f.fields)
			if p.Status != http.StatusOK || p.URL.Path != f.action || !p.Has("html body main") ||
				!p.Has(`head link[href="/static/vendor/pico.min.css"]`) {
				t.Fatalf("posted without JavaScript: %d at %s, a whole page %v; want 200 with a page that asks\n%.800s",
					p.Status, p.URL, p.Has("html body main"), p.Body)
			}
			if after := storedState(t, tm.env); after != before {
				t.Fatalf("posted without JavaScript, it acted before asking:\nbefore %s\nafter  %s", before, after)
			}
			asked := p.Text(`main [data-testid="question"]`)
			if more := p.Text(`main [data-testid="question-explained"]`); more != "" {
				asked += " " + more
			}
			if asked != f.question {
				t.Errorf("the page asks %q; htmx asks %q", asked, f.question)
			}
			form := p.Doc.Find(`main form[data-testid="confirm-form"]`)
			if form.Length() != 1 || form.AttrOr("method", "") != "post" || form.AttrOr("action", "") != f.action {
				t.Fatalf("no form posting to %s on the page:\n%.1500s", f.action, p.Body)
			}
			if form.AttrOr("hx-post", "") != "" {
				t.Errorf("the confirmed form is posted by htmx: it would not leave the page")
			}
			got := url.Values{}
			form.Find("input").Each(func(_ int, in *goquery.Selection) {
				if in.AttrOr("type", "") != "hidden" {
					t.Errorf("a visible input on the page: %s", in.AttrOr("name", ""))
				}
				got.Add(in.AttrOr("name", ""), in.AttrOr("value", ""))
			})
			if got.Get("_csrf") != token {
				t.Errorf("the confirmed form carries no CSRF token, or another one")
			}
			got.Del("_csrf")
			want := url.Values{}
			for k, vs := range f.fields {
				want[k] = vs
			}
			want.Del("_csrf")
			want.Set("confirmed", "yes")
			if got.Encode() != want.Encode() {
				t.Errorf("the confirmed form posts %s and the token; want %s", got.Encode(), want.Encode())
			}
			if b := strings.TrimSpace(form.Find(`button[type="submit"]`).Text()); b != f.button {
				t.Errorf("the page's button says %q; the button pressed said %q", b, f.button)
			}
			if cancel := form.Find(`a[data-testid="cancel"]`); cancel.AttrOr("href", "") != f.home || strings.TrimSpace(cancel.Text()) != "Cancel" {
				t.Errorf("Cancel goes to %q (%q); want %s", cancel.AttrOr("href", ""), cancel.Text(), f.home)
			}
		})
	}

	// Pressing the action on that page does it, in a scene of its own
	// for each form (one action would take away what the next acts on).
	for _, f := range forms {
		t.Run(f.who+" confirms "+f.key(), func(t *testing.T) {
			t.Parallel()
			tm := confirmScene(t)
			var g *confirming
			for _, o := range confirmingForms(t, tm) {
				if o.who == f.who && o.key() == f.key() {
					g = &o
				}
			}
			if g == nil {
				t.Fatal("the form is not there in a scene of its own")
			}
			asking := plainPost(g.c, tm.env, g.action, g.fields)
			if !asking.Has(`form[data-testid="confirm-form"]`) {
				t.Fatalf("posted without JavaScript: %d at %s, no confirmation", asking.Status, asking.URL)
			}
			before := storedState(t, tm.env)
			p := g.c.Submit(asking, `form[data-testid="confirm-form"]`, nil, "")
			if p.Status >= 400 || p.Has(`[data-testid="confirm-form"]`) {
				t.Fatalf("confirmed: %d at %s, asking again %v\n%.800s", p.Status, p.URL, p.Has(`[data-testid="confirm-form"]`), p.Body)
			}
			if p.Has(`[data-testid="removing"]`) && g.fields.Get("force") == "" {
				// Removing someone who backs projects lists them first
				// and asks Remove anyway: that is the action's answer.
				if !p.Has(`form[hx-confirm] [data-testid="remove-anyway"]`) {
					t.Fatalf("the projects are listed without Remove anyway:\n%s", p.Body)
				}
				return
			}
			if after := storedState(t, tm.env); after == before {
				t.Fatalf("confirmed, nothing changed (%d at %s):\n%.800s", p.Status, p.URL, p.Body)
			}
		})
	}
}
