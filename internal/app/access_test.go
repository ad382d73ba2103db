package app_test

import (
	"net/http"
	"net/url"
	"testing"
)

// The store caches sessions, organizations, roles and projects for the
// requests that poll (db/cache.go). A change of who may do what — a role
// changed, a member removed, a session ended — holds from the very next
// request, however warm the cache was.
func TestAccessChangesTakeEffectOnTheNextRequest(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	badge := tm.id + "/deploy-key"
	regenerate := `[data-testid="deploy-key-regenerate"]`
	// Bob is a member: polls warm every cache on the way.
	for range 3 {
		p := tm.bob.HTMX(http.MethodGet, badge, nil, nil)
		if p.Status != http.StatusOK || p.Has(regenerate) {
			t.Fatalf("a member's poll: %d, Regenerate shown %v", p.Status, p.Has(regenerate))
		}
	}
	team := tm.alice.Get("/team")
	bob, _ := team.Doc.Find(`[data-testid="member"][data-role="member"]`).Attr("data-user")

	// Made admin: the next poll offers Regenerate.
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", team, url.Values{"role": {"admin"}}); p.Status != http.StatusOK {
		t.Fatalf("make Bob admin: %d", p.Status)
	}
	if p := tm.bob.HTMX(http.MethodGet, badge, nil, nil); !p.Has(regenerate) {
		t.Fatalf("made admin, Bob's next poll offers no Regenerate:\n%s", p.Body)
	}

	// A member again: the next poll offers nothing, and an admin's action
	// is refused.
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/role", team, url.Values{"role": {"member"}}); p.Status != http.StatusOK {
		t.Fatalf("make Bob a member: %d", p.Status)
	}
	bobsPage := tm.bob.Get(tm.id)
	if p := tm.bob.HTMX(http.MethodGet, badge, nil, nil); p.Has(regenerate) {
		t.Fatal("a member again, Bob's next poll still offers Regenerate")
	}
	if p := tm.bob.HTMX(http.MethodPost, tm.id+"/missed/start", bobsPage, nil); p.Status != http.StatusForbidden {
		t.Fatalf("a member again, Bob starts missed workflows: %d, want 403", p.Status)
	}

	// Removed: the project is no longer his to see.
	if p := tm.alice.HTMX(http.MethodPost, "/team/members/"+bob+"/remove", team, nil); p.Status != http.StatusOK {
		t.Fatalf("remove Bob: %d\n%s", p.Status, p.Body)
	}
	if p := tm.bob.HTMX(http.MethodGet, badge, nil, nil); p.Status != http.StatusNotFound {
		t.Fatalf("removed, Bob's next poll: %d, want 404", p.Status)
	}

	// Logged out: the session's cookie, sent again, signs no one in.
	cookie := sessionCookie(t, tm.alice, tm.env)
	if p := tm.alice.HTMX(http.MethodGet, badge, nil, nil); p.Status != http.StatusOK {
		t.Fatalf("Alice's poll: %d", p.Status)
	}
	tm.alice.Submit(tm.alice.Get("/projects"), `form[action="/logout"]`, nil, "")
	req, _ := http.NewRequest(http.MethodGet, tm.env.URL+badge, nil)
	req.Header.Set("HX-Request", "true")
	req.AddCookie(&http.Cookie{Name: "tether_session", Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") == "" {
		t.Fatalf("the logged-out session's cookie polled: %d %v, want 401 with HX-Redirect to log in", resp.StatusCode, resp.Header)
	}
}
