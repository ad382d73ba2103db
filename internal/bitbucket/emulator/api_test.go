package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func slugs(rs []repoJSONT) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.FullName)
	}
	return out
}

func TestPaginationFollowsNext(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	var first repoPage
	v.getJSON(tok.AccessToken, "/repositories/acme?role=member", http.StatusOK, &first)
	if first.Pagelen != 10 || first.Page != 1 || first.Size != 28 || len(first.Values) != 10 {
		t.Errorf("first page: pagelen %d page %d size %d values %d", first.Pagelen, first.Page, first.Size, len(first.Values))
	}
	if !strings.HasPrefix(first.Next, v.srv.URL+"/2.0/repositories/acme?") || !strings.Contains(first.Next, "role=member") {
		t.Errorf("next = %q", first.Next)
	}
	all := v.allRepos(tok.AccessToken, "/repositories/acme?role=member")
	if len(all) != 28 {
		t.Fatalf("followed next through %d repositories, want 28", len(all))
	}
	seen := map[string]bool{}
	for _, r := range all {
		if seen[r.FullName] {
			t.Errorf("%s listed twice", r.FullName)
		}
		seen[r.FullName] = true
	}
	var big repoPage
	v.getJSON(tok.AccessToken, "/repositories/acme?pagelen=500", http.StatusOK, &big)
	if big.Pagelen != 100 || len(big.Values) != 28 || big.Next != "" {
		t.Errorf("pagelen=500: pagelen %d values %d next %q", big.Pagelen, len(big.Values), big.Next)
	}
	v.wantError(tok.AccessToken, "/repositories/acme?page=9", http.StatusBadRequest, "Invalid page")
}

func TestRoleFilters(t *testing.T) {
	v := newEnv(t)
	alice, bob, carol := v.login("alice").AccessToken, v.login("bob").AccessToken, v.login("carol").AccessToken
	cases := []struct {
		token, path string
		want        int
		has, hasNot string
	}{
		{alice, "/repositories/acme?role=admin", 28, "acme/infra", ""},
		{bob, "/repositories/acme?role=member", 27, "acme/api", "acme/infra"},
		{bob, "/repositories/acme?role=contributor", 0, "", ""},
		{bob, "/repositories/acme?role=admin", 0, "", ""},
		{bob, "/repositories/acme", 27, "acme/web", "acme/infra"},
		{carol, "/repositories/acme", 2, "acme/docs", "acme/api"},
		{carol, "/repositories/acme?role=member", 0, "", ""},
		{bob, "/repositories/alice", 1, "alice/dotfiles", ""},
		{alice, "/repositories/bob", 0, "", ""},
	}
	for _, c := range cases {
		got := slugs(v.allRepos(c.token, c.path))
		if len(got) != c.want || (c.has != "" && !slices.Contains(got, c.has)) || (c.hasNot != "" && slices.Contains(got, c.hasNot)) {
			t.Errorf("%s: %d %v", c.path, len(got), got)
		}
	}
	v.e.SetRepoPermission("bob", "acme/api", "write")
	if got := slugs(v.allRepos(bob, "/repositories/acme?role=contributor")); !slices.Equal(got, []string{"acme/api"}) {
		t.Errorf("bob contributor after write: %v", got)
	}
	v.e.SetRepoPermission("carol", "bob/sandbox", "read")
	if got := slugs(v.allRepos(carol, "/repositories/bob?role=member")); !slices.Equal(got, []string{"bob/sandbox"}) {
		t.Errorf("carol member of bob: %v", got)
	}
	var ws struct {
		Values []struct {
			Type          string `json:"type"`
			Administrator bool   `json:"administrator"`
			Workspace     struct {
				Type, Slug, UUID, Name string
			} `json:"workspace"`
		} `json:"values"`
	}
	v.getJSON(carol, "/user/workspaces", http.StatusOK, &ws)
	if len(ws.Values) != 1 || ws.Values[0].Workspace.Slug != "bob" || ws.Values[0].Administrator || ws.Values[0].Type != "workspace_access" || ws.Values[0].Workspace.Type != "workspace_base" {
		t.Errorf("carol's workspaces: %+v", ws)
	}
	v.getJSON(alice, "/user/workspaces", http.StatusOK, &ws)
	var got []string
	for _, w := range ws.Values {
		got = append(got, w.Workspace.Slug)
		if !w.Administrator || !strings.HasPrefix(w.Workspace.UUID, "{") || w.Workspace.Name == "" {
			t.Errorf("alice's workspace %+v", w)
		}
	}
	if !slices.Equal(got, []string{"acme", "alice"}) {
		t.Errorf("alice's workspaces %v", got)
	}
}

func TestQueryAndSort(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice").AccessToken
	got := slugs(v.allRepos(tok, "/repositories/acme?role=member&q="+url.QueryEscape(`name ~ "SERVICE-1"`)))
	if len(got) != 10 || got[0] != "acme/service-10" {
		t.Errorf("name ~ SERVICE-1: %v", got)
	}
	got = slugs(v.allRepos(tok, "/repositories/acme?q="+url.QueryEscape(`is_private = false AND (name ~ "web" OR name ~ "doc")`)))
	if !slices.Equal(got, []string{"acme/web", "acme/docs"}) {
		t.Errorf("public web or doc: %v", got)
	}
	got = slugs(v.allRepos(tok, "/repositories/acme?sort=-name&pagelen=3"))
	if got[0] != "acme/web" || got[1] != "acme/service-24" || len(got) != 28 {
		t.Errorf("sort=-name: %v", got)
	}
	v.wantError(tok, "/repositories/acme?q="+url.QueryEscape(`color = "red"`), http.StatusBadRequest, "Invalid field name: color")
	v.wantError(tok, "/repositories/nowhere", http.StatusNotFound, "No workspace with identifier 'nowhere'.")
}

// TestQueryAndOr checks BBQL's AND and OR on the repositories listing:
// each keeps or drops a repository by its operands, AND binds tighter than
// OR, parentheses group, and chains of either group from the left.
func TestQueryAndOr(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice").AccessToken
	var services []string
	for i := 10; i <= 19; i++ {
		services = append(services, fmt.Sprintf("acme/service-%02d", i))
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{`name = "web" OR name = "docs"`, []string{"acme/docs", "acme/web"}},
		{`name = "web" OR name = "nothing"`, []string{"acme/web"}},
		{`name = "web" AND name = "docs"`, nil},
		{`name = "web" AND is_private = false`, []string{"acme/web"}},
		{`name = "docs" OR name = "web" AND name = "api"`, []string{"acme/docs"}},
		{`(name = "docs" OR name = "web") AND name = "api"`, nil},
		{`(name = "docs" OR name = "web") AND name = "web"`, []string{"acme/web"}},
		{`name = "api" OR name = "web" OR name = "docs"`, []string{"acme/api", "acme/docs", "acme/web"}},
		{`is_private = true AND name ~ "service" AND name ~ "-1"`, services},
	} {
		got := slugs(v.allRepos(tok, "/repositories/acme?q="+url.QueryEscape(c.q)))
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("q=%s: %v, want %v", c.q, got, c.want)
		}
	}
}

func TestRepositoryByUUIDAndNotFound(t *testing.T) {
	v := newEnv(t)
	alice, bob := v.login("alice").AccessToken, v.login("bob").AccessToken
	var api repoJSONT
	var raw map[string]any
	v.getJSON(alice, "/repositories/acme/api", http.StatusOK, &raw)
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &api)
	sameShape(t, "repository", recorded(t, "api_repo.json"), raw)
	if api.FullName != "acme/api" || !api.IsPrivate || api.Workspace.Slug != "acme" || api.Mainbranch.Name != "main" || !strings.HasPrefix(api.UUID, "{") {
		t.Errorf("acme/api: %+v", api)
	}
	clone := map[string]string{}
	for _, c := range api.Links.Clone {
		clone[c.Name] = c.Href
	}
	host := strings.TrimPrefix(v.srv.URL, "http://")
	if clone["https"] != "http://alice@"+host+"/acme/api.git" {
		t.Errorf("https clone %q", clone["https"])
	}
	if clone["ssh"] != "git@127.0.0.1:acme/api.git" {
		t.Errorf("ssh clone %q", clone["ssh"])
	}

	var byUUID repoJSONT
	v.getJSON(alice, "/repositories/acme/"+url.PathEscape(api.UUID), http.StatusOK, &byUUID)
	if byUUID.FullName != "acme/api" {
		t.Errorf("by uuid: %+v", byUUID)
	}
	v.getJSON(alice, "/repositories/"+url.PathEscape(api.Workspace.UUID)+"/api", http.StatusOK, &byUUID)
	v.getJSON(alice, "/repositories/%7B%7D/"+url.PathEscape(api.UUID), http.StatusOK, &byUUID)
	v.wantError(alice, "/repositories/bob/"+url.PathEscape(api.UUID), http.StatusNotFound, "Repository bob/"+api.UUID+" not found")

	e := v.wantError(bob, "/repositories/acme/infra", http.StatusNotFound, "Repository acme/infra not found")
	var errRaw any
	b, _ = json.Marshal(e)
	_ = json.Unmarshal(b, &errRaw)
	sameShape(t, "error", recorded(t, "api_error.json"), errRaw)
	v.wantError(alice, "/repositories/acme/nope", http.StatusNotFound, "Repository acme/nope not found")
	v.wantError(alice, "/nothing/here", http.StatusNotFound, msgNoResource)

	var page map[string]any
	v.getJSON(alice, "/repositories/acme?pagelen=1", http.StatusOK, &page)
	sameShape(t, "page", recorded(t, "api_repos.json"), page)
}

func TestRemovedEndpoints(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice").AccessToken
	const want = `{"type":"error","error":{"message":"CHANGE-2770 - Functionality has been deprecated"}}`
	for _, p := range []string{"/repositories", "/repositories?role=member", "/repositories?role=admin", "/workspaces", "/user/permissions/workspaces"} {
		for _, token := range []string{tok, ""} {
			resp, body := v.get(token, p)
			if resp.StatusCode != http.StatusGone || strings.TrimSpace(body) != want {
				t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
			}
		}
	}
}

func TestFailureInjection(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")

	v.e.FailAPI(Failure{PathPrefix: "/user", Status: http.StatusTooManyRequests, RetryAfter: 30, Times: 2})
	for range 2 {
		resp, body := v.get(tok.AccessToken, "/user")
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" || !strings.Contains(body, `"type":"error"`) {
			t.Errorf("429: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	v.getJSON(tok.AccessToken, "/user", http.StatusOK, nil)
	// Only matching paths fail.
	v.e.FailAPI(Failure{PathPrefix: "/repositories", Status: http.StatusInternalServerError})
	v.getJSON(tok.AccessToken, "/user", http.StatusOK, nil)
	v.wantError(tok.AccessToken, "/repositories/acme", http.StatusInternalServerError, "Internal Server Error")
	v.e.ClearFailures()
	v.getJSON(tok.AccessToken, "/repositories/acme", http.StatusOK, nil)

	// A stall outlasts a short client timeout, and does not block others.
	v.e.FailAPI(Failure{PathPrefix: "/user/emails", Stall: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, v.srv.URL+"/2.0/user/emails", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	start := time.Now()
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled request: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the stall ignored the client's timeout")
	}
	v.getJSON(tok.AccessToken, "/user", http.StatusOK, nil)
	v.e.ClearFailures()

	// Stall then answer normally.
	v.e.FailAPI(Failure{Stall: 50 * time.Millisecond, Times: 1})
	start = time.Now()
	v.getJSON(tok.AccessToken, "/user", http.StatusOK, nil)
	if time.Since(start) < 50*time.Millisecond {
		t.Error("no stall")
	}

	// The token endpoint fails only when targeted.
	v.e.FailAPI(Failure{Status: http.StatusServiceUnavailable, Times: 1})
	if status, _ := v.refresh(tok.RefreshToken); status == http.StatusServiceUnavailable {
		t.Error(`"" prefix hit the token endpoint`)
	}
	v.e.ClearFailures()
	v.e.FailAPI(Failure{PathPrefix: tokenPath, Status: http.StatusServiceUnavailable, Times: 1})
	req, _ = http.NewRequest(http.MethodPost, v.srv.URL+tokenPath, strings.NewReader("grant_type=refresh_token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("token endpoint failure: %d", resp.StatusCode)
	}
}

func TestControlPage(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	resp, err := http.Get(v.srv.URL + "/_emulator/")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	for _, want := range []string{"Bitbucket emulator — controls", `id="form-add-user"`, `id="form-add-failure"`, "acme/service-24", "Tether CI", "1 live, 0 expired"} {
		if !strings.Contains(body, want) {
			t.Errorf("control page lacks %q", want)
		}
	}
	post := func(action string, f url.Values) string {
		t.Helper()
		resp, err := http.PostForm(v.srv.URL+"/_emulator/"+action, f)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || strings.Contains(body, `class="flash bad"`) {
			t.Fatalf("%s: %d %s", action, resp.StatusCode, body)
		}
		return body
	}
	post("add-user", url.Values{"username": {"dave"}, "display_name": {"Dave"}, "email": {"dave@example.com"}, "password": {"pw"}})
	post("add-workspace", url.Values{"slug": {"dave-co"}, "name": {"Dave Co"}})
	post("add-member", url.Values{"workspace": {"dave-co"}, "username": {"dave"}, "admin": {"1"}})
	post("add-repo", url.Values{"workspace": {"dave-co"}, "slug": {"tool"}, "private": {"1"}})
	post("set-permission", url.Values{"username": {"alice"}, "repo": {"dave-co/tool"}, "perm": {"read"}})
	if got := slugs(v.allRepos(tok.AccessToken, "/repositories/dave-co?role=member")); !slices.Equal(got, []string{"dave-co/tool"}) {
		t.Errorf("alice in dave-co: %v", got)
	}
	post("add-failure", url.Values{"path_prefix": {"/user"}, "status": {"429"}, "retry_after": {"7"}, "times": {"1"}})
	if resp, _ := v.get(tok.AccessToken, "/user"); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("failure from the control page: %d", resp.StatusCode)
	}
	post("drop-scope", url.Values{"username": {"alice"}, "consumer": {testKey}, "scope": {"email"}})
	v.wantError(tok.AccessToken, "/user/emails", http.StatusForbidden, msgScopes)
	post("expire-tokens", url.Values{"username": {"alice"}})
	v.wantError(tok.AccessToken, "/user", http.StatusUnauthorized, msgExpired)
	body = post("revoke", url.Values{"username": {"alice"}, "consumer": {testKey}})
	if !strings.Contains(body, "Nobody has authorized a consumer yet") {
		t.Error("grant still listed after revoke")
	}
	resp, err = http.PostForm(v.srv.URL+"/_emulator/add-failure", url.Values{"status": {"200"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `class="flash bad"`) {
		t.Error("a non-error status was accepted")
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	// The base URL is only known once the server listens, so the handler
	// reaches the emulator through a variable set afterwards.
	var e *Emulator
	srv := httptest.NewServer(http.StripPrefix("/bitbucket", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	e = New(Config{BaseURL: srv.URL + "/bitbucket/", Demo: true, Consumers: []Consumer{{Key: testKey, Secret: testSecret,
		Name: "Tether CI", CallbackURL: testCallback, Scopes: testScopes}}})
	if e.APIURL() != srv.URL+"/bitbucket/2.0" {
		t.Errorf("APIURL %s", e.APIURL())
	}
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar}
	resp, err := b.Get(srv.URL + "/bitbucket/site/oauth2/authorize?client_id=" + testKey + "&response_type=code")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.Request.URL.Path != "/bitbucket/account/signin/" || !strings.Contains(body, `action="/bitbucket/account/signin/"`) {
		t.Fatalf("sign-in under prefix: %s %s", resp.Request.URL, body)
	}
	next := regexp.MustCompile(`name="next" value="([^"]+)"`).FindStringSubmatch(body)[1]
	resp, err = b.PostForm(srv.URL+"/bitbucket/account/signin/", url.Values{"username": {"alice"}, "password": {"demo"}, "next": {htmlUnescape(next)}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.Request.URL.Path != "/bitbucket/site/oauth2/authorize" || !strings.Contains(body, `action="/bitbucket/site/oauth2/authorize"`) {
		t.Errorf("consent under prefix: %s %s", resp.Request.URL, body)
	}
	u, _ := url.Parse(srv.URL)
	for _, c := range jar.Cookies(&url.URL{Scheme: "http", Host: u.Host, Path: "/bitbucket/"}) {
		if c.Name == sessionCookie {
			return
		}
	}
	t.Error("no emulator session cookie under /bitbucket/")
}
