package bitbucket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recordedDir holds JSON that Bitbucket Cloud itself produced (see its
// README); tests read it byte for byte.
const recordedDir = "testdata/recorded"

func recorded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(recordedDir, name))
	if err != nil {
		t.Fatalf("recorded Bitbucket output: %v", err)
	}
	return b
}

const testToken = "tok-SECRET-access-1234"

// newTestClient starts h on 127.0.0.1 and returns a client whose API lives
// under /2.0 and whose OAuth endpoints are at the root, like Bitbucket.
func newTestClient(t *testing.T, h http.Handler) (*Client, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return New(Config{
		WebURL:       srv.URL,
		APIURL:       srv.URL + "/2.0/",
		ClientID:     "client-id",
		ClientSecret: "client-SECRET-5678",
		HTTPClient:   &http.Client{Transport: onlyHost{t, srv.Listener.Addr().String()}},
	}), srv
}

// onlyHost fails the test on any request to a host other than the test
// server's: the client must never carry a token elsewhere.
type onlyHost struct {
	t    *testing.T
	host string
}

func (o onlyHost) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != o.host {
		o.t.Errorf("request sent to foreign host %s", r.URL.Host)
		return nil, errors.New("foreign host")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// requireBearer fails the request (and the test) unless it carries testToken.
func requireBearer(t *testing.T, w http.ResponseWriter, r *http.Request) bool {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		t.Errorf("%s %s: Authorization = %q", r.Method, r.URL, got)
		w.WriteHeader(http.StatusUnauthorized)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// assertNoSecrets fails if err's text contains any credential.
func assertNoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range append([]string{testToken, "client-SECRET-5678"}, secrets...) {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the secret %q", err, s)
		}
	}
}

func TestRecordedAPIResponses(t *testing.T) {
	ctx := context.Background()
	hookUUID := "{d53603cc-3f67-45ea-b310-aaa5ef6ec061}"
	mux := http.NewServeMux()
	var sawEscapedUUID, sawEscapedHookUUID atomic.Bool
	mux.HandleFunc("GET /2.0/user", func(w http.ResponseWriter, r *http.Request) {
		if requireBearer(t, w, r) {
			w.Header().Set("X-OAuth-Scopes", "account, repository:admin,webhook , email")
			w.Write(recorded(t, "api_user.json"))
		}
	})
	mux.HandleFunc("GET /2.0/repositories/atlassian/{repo}", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		switch r.PathValue("repo") {
		case "{7dd600e6-0d9c-4801-b967-cb4cc17359ff}":
			sawEscapedUUID.Store(strings.HasSuffix(r.RequestURI, "/%7B7dd600e6-0d9c-4801-b967-cb4cc17359ff%7D"))
			fallthrough
		case "stash-example-plugin":
			w.Write(recorded(t, "api_repo.json"))
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /2.0/repositories/atlassian/stash-example-plugin/hooks", func(w http.ResponseWriter, r *http.Request) {
		if requireBearer(t, w, r) {
			w.Write(recorded(t, "api_hooks.json"))
		}
	})
	mux.HandleFunc("GET /2.0/repositories/atlassian/stash-example-plugin/hooks/{uuid}", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		if r.PathValue("uuid") != hookUUID {
			http.NotFound(w, r)
			return
		}
		sawEscapedHookUUID.Store(strings.HasSuffix(r.RequestURI, "/hooks/%7Bd53603cc-3f67-45ea-b310-aaa5ef6ec061%7D"))
		w.Write(recorded(t, "api_hook.json"))
	})
	mux.HandleFunc("GET /2.0/repositories/dev/null", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, string(recorded(t, "api_error.json")))
	})
	c, _ := newTestClient(t, mux)

	t.Run("user", func(t *testing.T) {
		u, scopes, err := c.CurrentUser(ctx, testToken)
		if err != nil {
			t.Fatal(err)
		}
		want := User{
			UUID:        "{87bb15eb-47c1-49b3-9f16-ca824a2979a4}",
			AccountID:   "557058:2a6349dc-4346-4805-bd84-3abdd0812d17",
			Username:    "brydzewski",
			DisplayName: "Brad Rydzewski",
			HTMLURL:     "https://bitbucket.org/brydzewski/",
		}
		if u != want {
			t.Errorf("user = %+v, want %+v", u, want)
		}
		if want := []string{"account", "repository:admin", "webhook", "email"}; !reflect.DeepEqual(scopes, want) {
			t.Errorf("scopes = %q, want %q", scopes, want)
		}
	})

	wantRepo := Repository{
		UUID:       "{7dd600e6-0d9c-4801-b967-cb4cc17359ff}",
		Name:       "stash-example-plugin",
		Slug:       "stash-example-plugin",
		FullName:   "atlassian/stash-example-plugin",
		Workspace:  Workspace{Slug: "atlassian"},
		IsPrivate:  true,
		CloneSSH:   "git@bitbucket.org:atlassian/stash-example-plugin.git",
		CloneHTTPS: "https://brydzewski@bitbucket.org/atlassian/stash-example-plugin.git",
		HTMLURL:    "https://bitbucket.org/atlassian/stash-example-plugin",
		UpdatedOn:  time.Date(2018, 4, 1, 16, 36, 35, 970175000, time.UTC),
	}
	t.Run("repository by slug and by uuid", func(t *testing.T) {
		for _, id := range []string{"stash-example-plugin", "{7dd600e6-0d9c-4801-b967-cb4cc17359ff}"} {
			r, err := c.Repository(ctx, testToken, "atlassian", id)
			if err != nil {
				t.Fatal(err)
			}
			if !r.UpdatedOn.Equal(wantRepo.UpdatedOn) {
				t.Errorf("UpdatedOn = %v, want %v", r.UpdatedOn, wantRepo.UpdatedOn)
			}
			r.UpdatedOn = wantRepo.UpdatedOn
			if r != wantRepo {
				t.Errorf("Repository(%s) = %+v\nwant %+v", id, r, wantRepo)
			}
		}
		if !sawEscapedUUID.Load() {
			t.Error("uuid was not sent as %7B…%7D")
		}
	})

	t.Run("hooks", func(t *testing.T) {
		hooks, err := c.Hooks(ctx, testToken, "atlassian", "stash-example-plugin")
		if err != nil {
			t.Fatal(err)
		}
		if len(hooks) != 1 {
			t.Fatalf("got %d hooks, want 1", len(hooks))
		}
		h := hooks[0]
		if h.UUID != hookUUID || h.URL != "http://example.com/webhook" || !h.Active || h.Description != "example.com" {
			t.Errorf("hook = %+v", h)
		}
		if want := []string{"pullrequest:created", "pullrequest:updated", "repo:push"}; !reflect.DeepEqual(h.Events, want) {
			t.Errorf("events = %q, want %q", h.Events, want)
		}
		if want := time.Date(2015, 10, 5, 1, 11, 48, 96116000, time.UTC); !h.CreatedAt.Equal(want) {
			t.Errorf("CreatedAt = %v, want %v", h.CreatedAt, want)
		}
		for _, id := range []string{hookUUID, strings.Trim(hookUUID, "{}")} {
			one, err := c.Hook(ctx, testToken, "atlassian", "stash-example-plugin", id)
			if err != nil {
				t.Fatal(err)
			}
			if one.UUID != hookUUID || one.Description != "beta.drone.io" || !one.Active || len(one.Events) != 3 || one.SecretSet {
				t.Errorf("Hook(%s) = %+v", id, one)
			}
		}
		if !sawEscapedHookUUID.Load() {
			t.Error("hook uuid was not sent as %7B…%7D")
		}
	})

	t.Run("error body", func(t *testing.T) {
		_, err := c.Repository(ctx, testToken, "dev", "null")
		var e *Error
		if !errors.As(err, &e) || e.Status != 404 || e.Message != "Repository dev/null not found" {
			t.Fatalf("err = %#v", err)
		}
		if !IsNotFound(err) || IsTransient(err) || IsUnauthorized(err) || IsForbidden(err) {
			t.Errorf("classification wrong for %v", err)
		}
		if want := "bitbucket: GET /repositories/dev/null: 404 Repository dev/null not found"; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
	})

	t.Run("repository page", func(t *testing.T) {
		page := recorded(t, "api_repos.json")
		m := http.NewServeMux()
		var c *Client
		m.HandleFunc("GET /2.0/repositories/{ws}", func(w http.ResponseWriter, r *http.Request) {
			if !requireBearer(t, w, r) {
				return
			}
			switch r.PathValue("ws") {
			case "atlassian":
				// Exactly as recorded: "next" points at api.bitbucket.org,
				// which is not the configured API.
				w.Write(page)
			case "local":
				// The same page with "next" rewritten to stay here.
				w.Write([]byte(strings.Replace(string(page),
					`"https:\/\/api.bitbucket.org\/2.0\/repositories?pagelen=1&after=PLACEHOLDER&role=member"`,
					`"`+c.apiURL+`/repositories/last?pagelen=1&after=x&role=member"`, 1)))
			case "last":
				writeJSON(w, 200, `{"pagelen":1,"values":[],"page":2}`)
			}
		})
		c, _ = newTestClient(t, m)
		_, err := c.WorkspaceRepositories(ctx, testToken, "atlassian", "member", "")
		if err == nil || !strings.Contains(err.Error(), "not followed") {
			t.Fatalf("err = %v, want the foreign next link refused", err)
		}
		repos, err := c.WorkspaceRepositories(ctx, testToken, "local", "member", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(repos) != 1 {
			t.Fatalf("got %d repositories, want 1", len(repos))
		}
		r := repos[0]
		r.UpdatedOn = wantRepo.UpdatedOn
		if r != wantRepo {
			t.Errorf("repository = %+v\nwant %+v", r, wantRepo)
		}
	})
}

func TestPaginationFollowsThreePages(t *testing.T) {
	var c *Client
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2.0/repositories/acme", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		calls.Add(1)
		q := r.URL.Query()
		if q.Get("role") != "member" || q.Get("q") != `name ~ "a\"b\\c"` {
			t.Errorf("query = %v", q)
		}
		page := q.Get("page")
		if page == "" {
			page = "1"
		}
		next := ""
		if page != "3" {
			n := map[string]string{"1": "2", "2": "3"}[page]
			nq := r.URL.Query()
			nq.Set("page", n)
			next = fmt.Sprintf(`,"next":%q`, c.apiURL+"/repositories/acme?"+nq.Encode())
		}
		writeJSON(w, 200, fmt.Sprintf(`{"pagelen":1,"page":%s,"values":[{"uuid":"{u%s}","slug":"r%s","full_name":"acme/r%s","workspace":{"slug":"acme","uuid":"{w}","name":"Acme"}}]%s}`,
			page, page, page, page, next))
	})
	c, _ = newTestClient(t, mux)
	repos, err := c.WorkspaceRepositories(context.Background(), testToken, "acme", "member", `a"b\c`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range repos {
		names = append(names, r.FullName)
		if r.Workspace != (Workspace{UUID: "{w}", Slug: "acme", Name: "Acme"}) {
			t.Errorf("workspace = %+v", r.Workspace)
		}
	}
	if want := []string{"acme/r1", "acme/r2", "acme/r3"}; !reflect.DeepEqual(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
}

func TestPaginationRefusesForeignNext(t *testing.T) {
	var foreignAuth atomic.Value
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignAuth.Store(r.Header.Get("Authorization"))
		writeJSON(w, 200, `{"values":[]}`)
	}))
	defer foreign.Close()
	for _, next := range []string{
		foreign.URL + "/2.0/user/workspaces?page=2",
		"//" + strings.TrimPrefix(foreign.URL, "http://") + "/2.0/user/workspaces?page=2",
	} {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, fmt.Sprintf(`{"values":[{"workspace":{"slug":"acme"}}],"next":%q}`, next))
		}))
		_, err := c.Workspaces(context.Background(), testToken)
		if err == nil {
			t.Errorf("next %s: no error", next)
		}
		assertNoSecrets(t, err)
	}
	if foreignAuth.Load() != nil {
		t.Errorf("foreign host was called (Authorization %q)", foreignAuth.Load())
	}
}

func TestPaginationStopsAfterMaxPages(t *testing.T) {
	var c *Client
	var calls atomic.Int32
	c, _ = newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		writeJSON(w, 200, fmt.Sprintf(`{"values":[{"id":1}],"next":%q}`, c.apiURL+"/repositories/a/b/deploy-keys?page=again"))
	}))
	keys, err := c.DeployKeys(context.Background(), testToken, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != maxPages || len(keys) != maxPages {
		t.Errorf("%d calls, %d keys; want %d", calls.Load(), len(keys), maxPages)
	}
}

func TestRepositoriesAcrossWorkspaces(t *testing.T) {
	mux := http.NewServeMux()
	for _, removed := range []string{"GET /2.0/repositories", "GET /2.0/workspaces", "GET /2.0/user/permissions/workspaces"} {
		mux.HandleFunc(removed, func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("removed endpoint called: %s", r.URL)
			writeJSON(w, 410, `{"type":"error","error":{"message":"CHANGE-2770 - Functionality has been deprecated"}}`)
		})
	}
	mux.HandleFunc("GET /2.0/user/workspaces", func(w http.ResponseWriter, r *http.Request) {
		if requireBearer(t, w, r) {
			writeJSON(w, 200, `{"pagelen":10,"page":1,"size":2,"values":[
				{"type":"workspace_access","administrator":false,"workspace":{"type":"workspace","slug":"zeta","uuid":"{z}","name":"Zeta"}},
				{"type":"workspace_access","administrator":true,"workspace":{"type":"workspace","slug":"acme","uuid":"{a}","name":"Acme"}}]}`)
		}
	})
	mux.HandleFunc("GET /2.0/repositories/{ws}", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		if r.URL.Query().Get("role") != "admin" {
			t.Errorf("role = %q", r.URL.Query().Get("role"))
		}
		switch r.PathValue("ws") {
		case "acme":
			writeJSON(w, 200, `{"values":[{"uuid":"{2}","full_name":"acme/web"},{"uuid":"{1}","full_name":"acme/API"},{"uuid":"{s}","full_name":"acme/shared"}]}`)
		case "zeta":
			// A repository shared into both workspaces lists twice.
			writeJSON(w, 200, `{"values":[{"uuid":"{s}","full_name":"acme/shared"},{"uuid":"{3}","full_name":"zeta/app"}]}`)
		}
	})
	c, _ := newTestClient(t, mux)
	repos, err := c.Repositories(context.Background(), testToken, "admin")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range repos {
		names = append(names, r.FullName+" "+r.Slug)
	}
	if want := []string{"acme/API API", "acme/shared shared", "acme/web web", "zeta/app app"}; !reflect.DeepEqual(names, want) {
		t.Errorf("got %q, want %q", names, want)
	}
}

// RepositoriesWithAdmin marks what the user administers with one more
// paged call per workspace (role=admin), and none for a workspace that
// lists no repository.
func TestRepositoriesWithAdmin(t *testing.T) {
	mux := http.NewServeMux()
	var calls []string
	mux.HandleFunc("GET /2.0/user/workspaces", func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.URL.Path)
		writeJSON(w, 200, `{"values":[{"workspace":{"slug":"acme"}},{"workspace":{"slug":"empty"}},{"workspace":{"slug":"zeta"}}]}`)
	})
	mux.HandleFunc("GET /2.0/repositories/{ws}", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		role := r.URL.Query().Get("role")
		calls = append(calls, r.PathValue("ws")+" "+role+" "+r.URL.Query().Get("page"))
		switch r.PathValue("ws") + " " + role {
		case "acme member":
			if r.URL.Query().Get("page") == "" {
				writeJSON(w, 200, `{"values":[{"uuid":"{1}","full_name":"acme/api"}],"next":"`+"http://"+r.Host+`/2.0/repositories/acme?role=member&page=2"}`)
				return
			}
			writeJSON(w, 200, `{"values":[{"uuid":"{2}","full_name":"acme/docs"},{"uuid":"{s}","full_name":"acme/shared"}]}`)
		case "acme admin":
			writeJSON(w, 200, `{"values":[{"uuid":"{1}","full_name":"acme/api"}]}`)
		case "zeta member":
			writeJSON(w, 200, `{"values":[{"uuid":"{s}","full_name":"acme/shared"},{"uuid":"{3}","full_name":"zeta/app"}]}`)
		case "zeta admin":
			// Administered through the other workspace's listing: still admin.
			writeJSON(w, 200, `{"values":[{"uuid":"{s}","full_name":"acme/shared"}]}`)
		default:
			writeJSON(w, 200, `{"values":[]}`)
		}
	})
	c, _ := newTestClient(t, mux)
	repos, err := c.RepositoriesWithAdmin(context.Background(), testToken)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range repos {
		got = append(got, fmt.Sprintf("%s %v", r.FullName, r.Admin))
	}
	if want := []string{"acme/api true", "acme/docs false", "acme/shared true", "zeta/app false"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	want := []string{"/2.0/user/workspaces", "acme member ", "acme member 2", "acme admin ", "empty member ", "zeta member ", "zeta admin "}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

func TestPrimaryEmail(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2.0/user/emails" || !requireBearer(t, w, r) {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, 200, `{"values":[
			{"is_primary":false,"is_confirmed":true,"email":"old@example.com"},
			{"is_primary":true,"is_confirmed":true,"email":"brad@example.com"}]}`)
	}))
	got, err := c.PrimaryEmail(context.Background(), testToken)
	if err != nil || got != "brad@example.com" {
		t.Errorf("PrimaryEmail = %q, %v", got, err)
	}

	c, _ = newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"values":[{"is_primary":true,"is_confirmed":false,"email":"unconfirmed@example.com"}]}`)
	}))
	if got, err := c.PrimaryEmail(context.Background(), testToken); err != nil || got != "" {
		t.Errorf("unconfirmed primary: PrimaryEmail = %q, %v", got, err)
	}
}

func TestCurrentUserWithoutScopesHeader(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"uuid":"{u}","nickname":"brad","display_name":"Brad"}`)
	}))
	u, scopes, err := c.CurrentUser(context.Background(), testToken)
	if err != nil || scopes != nil || u.Nickname != "brad" {
		t.Errorf("CurrentUser = %+v, %q, %v", u, scopes, err)
	}
}

func TestDeployKeys(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO"
	created := `{"id":7,"key":"` + key + `","label":"Tether","comment":"tether@ci","type":"deploy_key",
		"created_on":"2026-05-01T10:00:00.123456+00:00","last_used":null}`
	used := `{"id":8,"key":"` + key + `","label":"old","created_on":"2026-04-01T10:00:00+00:00","last_used":"2026-05-02T11:00:00+00:00"}`
	mux := http.NewServeMux()
	var deleted atomic.Bool
	mux.HandleFunc("POST /2.0/repositories/acme/api/deploy-keys", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		if want := map[string]any{"key": key + " tether@ci", "label": "Tether"}; !reflect.DeepEqual(body, want) {
			t.Errorf("body = %v, want %v", body, want)
		}
		writeJSON(w, 200, created)
	})
	mux.HandleFunc("GET /2.0/repositories/acme/api/deploy-keys", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"pagelen":10,"values":[`+created+`,`+used+`],"page":1,"size":2}`)
	})
	mux.HandleFunc("GET /2.0/repositories/acme/api/deploy-keys/8", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, used)
	})
	mux.HandleFunc("DELETE /2.0/repositories/acme/api/deploy-keys/7", func(w http.ResponseWriter, r *http.Request) {
		if requireBearer(t, w, r) {
			deleted.Store(true)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	c, _ := newTestClient(t, mux)
	ctx := context.Background()

	k, err := c.CreateDeployKey(ctx, testToken, "acme", "api", key+" tether@ci", "Tether")
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != 7 || k.Key != key || k.Label != "Tether" || k.Comment != "tether@ci" || k.LastUsed != nil ||
		!k.CreatedOn.Equal(time.Date(2026, 5, 1, 10, 0, 0, 123456000, time.UTC)) {
		t.Errorf("created = %+v", k)
	}
	keys, err := c.DeployKeys(ctx, testToken, "acme", "api")
	if err != nil || len(keys) != 2 {
		t.Fatalf("DeployKeys = %+v, %v", keys, err)
	}
	one, err := c.DeployKey(ctx, testToken, "acme", "api", 8)
	if err != nil {
		t.Fatal(err)
	}
	if one.LastUsed == nil || !one.LastUsed.Equal(time.Date(2026, 5, 2, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("LastUsed = %v", one.LastUsed)
	}
	if err := c.DeleteDeployKey(ctx, testToken, "acme", "api", 7); err != nil || !deleted.Load() {
		t.Errorf("DeleteDeployKey: %v (deleted %v)", err, deleted.Load())
	}
	if _, err := c.DeployKey(ctx, testToken, "acme", "api", 9); !IsNotFound(err) {
		t.Errorf("missing key: err = %v", err)
	}
}

func TestHookWrites(t *testing.T) {
	const secret = "hook-SECRET-9999"
	in := HookInput{Description: "Tether", URL: "https://ci.example.com/hooks/bitbucket/1", Active: true, Events: []string{"repo:push"}, Secret: secret}
	answer := `{"uuid":"{abc}","url":"https://ci.example.com/hooks/bitbucket/1","description":"Tether","active":true,"events":["repo:push"],"secret_set":true,"created_at":"2026-05-01T10:00:00Z"}`
	var gotBodies []map[string]any
	var gotURIs []string
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		gotURIs = append(gotURIs, r.Method+" "+r.RequestURI)
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		gotBodies = append(gotBodies, body)
		if r.Method == http.MethodPost && strings.Contains(r.RequestURI, "fail") {
			// A server that echoes what it got must not leak it.
			writeJSON(w, 400, `{"type":"error","error":{"message":"bad secret `+secret+` for token `+testToken+`"}}`)
			return
		}
		writeJSON(w, 200, answer)
	}))
	ctx := context.Background()

	h, err := c.CreateHook(ctx, testToken, "acme", "api", in)
	if err != nil {
		t.Fatal(err)
	}
	if h.UUID != "{abc}" || !h.SecretSet || !h.Active || h.URL != in.URL {
		t.Errorf("created = %+v", h)
	}
	in.Active = false
	in.Secret = ""
	if _, err := c.UpdateHook(ctx, testToken, "acme", "api", "abc", in); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteHook(ctx, testToken, "acme", "api", "{abc}"); err != nil {
		t.Fatal(err)
	}
	wantURIs := []string{
		"POST /2.0/repositories/acme/api/hooks",
		"PUT /2.0/repositories/acme/api/hooks/%7Babc%7D",
		"DELETE /2.0/repositories/acme/api/hooks/%7Babc%7D",
	}
	if !reflect.DeepEqual(gotURIs, wantURIs) {
		t.Errorf("requests = %q\nwant %q", gotURIs, wantURIs)
	}
	wantCreate := map[string]any{"description": "Tether", "url": in.URL, "active": true, "events": []any{"repo:push"}, "secret": secret}
	wantUpdate := map[string]any{"description": "Tether", "url": in.URL, "active": false, "events": []any{"repo:push"}}
	if len(gotBodies) != 2 || !reflect.DeepEqual(gotBodies[0], wantCreate) || !reflect.DeepEqual(gotBodies[1], wantUpdate) {
		t.Errorf("bodies = %v\nwant %v, %v", gotBodies, wantCreate, wantUpdate)
	}

	in.Secret = secret
	_, err = c.CreateHook(ctx, testToken, "acme", "fail", in)
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || !strings.Contains(e.Message, "[redacted]") {
		t.Fatalf("err = %v", err)
	}
	assertNoSecrets(t, err, secret)
}

func TestGETRetriesServerErrors(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			writeJSON(w, 500, `{"type":"error","error":{"message":"Something went wrong"}}`)
			return
		}
		writeJSON(w, 200, `{"uuid":"{r}","full_name":"acme/api"}`)
	}))
	r, err := c.Repository(context.Background(), testToken, "acme", "api")
	if err != nil || r.FullName != "acme/api" || calls.Load() != 2 {
		t.Errorf("Repository = %+v, %v after %d calls", r, err, calls.Load())
	}
}

func TestPersistentServerErrorIsTransient(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>bad gateway</html>")
	}))
	_, err := c.Repository(context.Background(), testToken, "acme", "api")
	if !IsTransient(err) || calls.Load() != 1+maxRetries {
		t.Errorf("err = %v after %d calls; want transient after %d", err, calls.Load(), 1+maxRetries)
	}
	if want := "bitbucket: GET /repositories/acme/api: 502 Bad Gateway"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestWritesAreNotRetried(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	_, err := c.CreateDeployKey(context.Background(), testToken, "acme", "api", "ssh-ed25519 AAAA", "x")
	if !IsTransient(err) || calls.Load() != 1 {
		t.Errorf("err = %v after %d calls, want one transient failure", err, calls.Load())
	}
}

func TestRateLimited(t *testing.T) {
	var calls atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "60")
		writeJSON(w, 429, `{"type":"error","error":{"message":"Rate limit for this resource has been exceeded"}}`)
	}))
	_, err := c.Hooks(context.Background(), testToken, "acme", "api")
	var e *Error
	if !errors.As(err, &e) || e.Status != 429 || e.RetryAfter != time.Minute {
		t.Fatalf("err = %#v", err)
	}
	if !IsTransient(err) || calls.Load() != 1 {
		t.Errorf("transient %v after %d calls; want true after 1", IsTransient(err), calls.Load())
	}

	// A short Retry-After is waited out once.
	calls.Store(0)
	c, _ = newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
		writeJSON(w, 200, `{"values":[]}`)
	}))
	if _, err := c.Hooks(context.Background(), testToken, "acme", "api"); err != nil || calls.Load() != 2 {
		t.Errorf("short Retry-After: err = %v after %d calls", err, calls.Load())
	}
}

func TestTimeoutsAreTransient(t *testing.T) {
	stall := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(stall)
	defer srv.Close()

	c := New(Config{APIURL: srv.URL + "/2.0", HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}})
	start := time.Now()
	_, _, err := c.CurrentUser(context.Background(), testToken)
	if !IsTransient(err) {
		t.Errorf("client timeout: err = %v, not transient", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("client timeout took %v", time.Since(start))
	}
	assertNoSecrets(t, err)

	c = New(Config{APIURL: srv.URL + "/2.0"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.Workspaces(ctx, testToken)
	if !IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ctx deadline: err = %v", err)
	}
}

func TestConnectionRefusedIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := New(Config{APIURL: url + "/2.0"})
	_, _, err := c.CurrentUser(context.Background(), testToken)
	if !IsTransient(err) {
		t.Errorf("err = %v, not transient", err)
	}
	assertNoSecrets(t, err)
}

func TestAPIErrorClassification(t *testing.T) {
	cases := []struct {
		status   int
		body     string
		check    func(error) bool
		required []string
	}{
		{401, `{"type":"error","error":{"message":"Access token expired: ` + testToken + `"}}`, IsUnauthorized, nil},
		{403, `{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["account"],"required":["webhook"]}}}`, IsForbidden, []string{"webhook"}},
		{403, `{"type":"error","error":{"message":"Forbidden","detail":"You may not have access to this repository."}}`, IsForbidden, nil},
		{410, `{"type":"error","error":{"message":"CHANGE-2770 - Functionality has been deprecated"}}`, func(err error) bool {
			var e *Error
			return errors.As(err, &e) && e.Status == 410
		}, nil},
	}
	for _, tc := range cases {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, tc.status, tc.body)
		}))
		_, err := c.Hooks(context.Background(), testToken, "acme", "api")
		if !tc.check(err) || IsTransient(err) {
			t.Errorf("%d: classification wrong for %v", tc.status, err)
		}
		var e *Error
		if errors.As(err, &e) && !reflect.DeepEqual(e.Required, tc.required) {
			t.Errorf("%d: Required = %q, want %q", tc.status, e.Required, tc.required)
		}
		assertNoSecrets(t, err)
	}
}

func TestResponseBodyIsCapped(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"values":["`))
		w.Write([]byte(strings.Repeat("x", maxBody)))
		w.Write([]byte(`"]}`))
	}))
	if _, err := c.Hooks(context.Background(), testToken, "acme", "api"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "120": 2 * time.Minute, " 3 ": 3 * time.Second, "-5": 0, "soon": 0} {
		if got := parseRetryAfter(in); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	if got := parseRetryAfter(date); got < 80*time.Second || got > 90*time.Second {
		t.Errorf("parseRetryAfter(%q) = %v, want about 90s", date, got)
	}
}

func TestClip(t *testing.T) {
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip = %q", got)
	}
	if got := clip(strings.Repeat("é", 10), 5); got != "éé…" {
		t.Errorf("clip = %q, want a cut on a rune boundary", got)
	}
}

// Every shape of Bitbucket's error body is read in its own words: fields
// as an object or a list, detail as text or with the required scopes, a
// plain-text body; an HTML page is no message.
func TestErrorBodiesInBitbucketsWords(t *testing.T) {
	cases := []struct {
		status         int
		body           string
		reason, urlErr string
		required       []string
	}{
		// Shippable/support#2144.
		{400, `{"error": {"fields": {"skip_cert_verification": ["This field may not be null."]}, "message": "Bad request"}}`,
			"skip_cert_verification: This field may not be null.", "", nil},
		{400, `{"type": "error", "error": {"message": "Bad request", "fields": {"url": ["Enter a valid URL."], "events": "This field is required."}}}`,
			"events: This field is required.; url: Enter a valid URL.", "Enter a valid URL.", nil},
		// NixOS/hydra#493: the message already says it.
		{400, `{"type": "error", "error": {"fields": {"key": ["Ensure this value has at most 40 characters (it has 80)."]}, "message": "key: Ensure this value has at most 40 characters (it has 80)."}}`,
			"key: Ensure this value has at most 40 characters (it has 80).", "", nil},
		// ovh/cds#6292: fields as a list of strings.
		{400, `{"type": "error", "error": {"message": "Bad request", "fields": ["Required field: \"url\" is not present."]}}`,
			`Required field: "url" is not present.`, "", nil},
		{403, `{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["account"],"required":["webhook"]}}}`,
			"Your credentials lack one or more required privilege scopes.; required scopes: webhook", "", []string{"webhook"}},
		{403, `{"type":"error","error":{"message":"Forbidden","detail":"You may not have access to this repository."}}`,
			"Forbidden; You may not have access to this repository.", "", nil},
		{502, "Bad Gateway\nfrom the load balancer", "Bad Gateway", "", nil},
		{401, `{"error": "invalid_token", "error_description": "The access token expired"}`, "invalid_token: The access token expired", "", nil},
		{503, "<!DOCTYPE html><html><body>Service Unavailable</body></html>", "", "", nil},
	}
	for _, tc := range cases {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		_, err := c.CreateHook(context.Background(), testToken, "acme", "api", HookInput{URL: "https://x.example", Events: []string{"repo:push"}})
		var e *Error
		if !errors.As(err, &e) || e.Reason() != tc.reason || e.FieldReason("url") != tc.urlErr || !reflect.DeepEqual(e.Required, tc.required) {
			t.Errorf("%d %s:\n got %q / %q / %q", tc.status, tc.body, e.Reason(), e.FieldReason("url"), e.Required)
		}
		if got := MissingScopes(err); !reflect.DeepEqual(got, tc.required) {
			t.Errorf("%d: MissingScopes = %q", tc.status, got)
		}
	}
}
