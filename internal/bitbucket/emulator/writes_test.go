package emulator

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// noFollow sends one request and never follows a redirect, so a test sees
// exactly what the emulator answered.
func (v *env) noFollow(method, token, path, body string) *http.Response {
	v.t.Helper()
	req, err := http.NewRequest(method, v.srv.URL+"/2.0"+path, strings.NewReader(body))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	readBody(v.t, resp)
	return resp
}

const hookBody = `{"description":"Tether","url":"https://ci.example/h","active":true,"events":["repo:push"],"secret":"s"}`

// A write to the path a repository had before a rename or move is answered
// 301 to the same resource at its new place, and writes nothing; a read of
// the old path still answers 404.
func TestWritesToAFormerPathAreRedirected(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	alice := v.login("alice").AccessToken
	_, line := newKey(t, "tether")
	k, err := v.e.AddDeployKey("acme/api", line, "Tether")
	if err != nil {
		t.Fatal(err)
	}
	var repo repoJSONT
	v.getJSON(alice, "/repositories/acme/api", http.StatusOK, &repo)
	uuid := url.PathEscape(repo.UUID)
	keyPath := "/deploy-keys/" + strconv.Itoa(k.ID)

	redirected := func(method, from, to string) {
		t.Helper()
		resp := v.noFollow(method, alice, from, hookBody)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != v.srv.URL+"/2.0"+to {
			t.Errorf("%s %s: %d to %q, want 301 to %s", method, from, resp.StatusCode, resp.Header.Get("Location"), to)
		}
	}
	v.e.RenameRepository("acme/api", "api-v2")
	redirected(http.MethodPost, "/repositories/acme/api/hooks", "/repositories/acme/api-v2/hooks")
	redirected(http.MethodDelete, "/repositories/acme/api"+keyPath, "/repositories/acme/api-v2"+keyPath)
	if len(v.e.Hooks("acme/api-v2")) != 0 || len(v.e.DeployKeys("acme/api-v2")) != 1 {
		t.Fatal("a redirected write changed the repository")
	}
	v.wantError(alice, "/repositories/acme/api/hooks", http.StatusNotFound, "Repository acme/api not found")
	// By UUID under the same workspace, a rename changes nothing.
	if resp := v.noFollow(http.MethodPost, alice, "/repositories/acme/"+uuid+"/hooks", hookBody); resp.StatusCode != http.StatusCreated {
		t.Errorf("POST by uuid after a rename: %d", resp.StatusCode)
	}

	v.e.MoveRepository("acme/api-v2", "alice")
	redirected(http.MethodPost, "/repositories/acme/api-v2/hooks", "/repositories/alice/api-v2/hooks")
	redirected(http.MethodPost, "/repositories/acme/api/deploy-keys", "/repositories/alice/api-v2/deploy-keys")
	redirected(http.MethodPost, "/repositories/acme/"+uuid+"/hooks", "/repositories/alice/"+uuid+"/hooks")
	v.e.RenameWorkspace("alice", "alice-ltd")
	redirected(http.MethodDelete, "/repositories/alice/api-v2"+keyPath, "/repositories/alice-ltd/api-v2"+keyPath)
	if len(v.e.Hooks("alice-ltd/api-v2")) != 1 || len(v.e.DeployKeys("alice-ltd/api-v2")) != 1 {
		t.Fatal("redirected writes changed the repository")
	}

	// Someone who cannot see the repository learns nothing of the move.
	bob := v.login("bob").AccessToken
	if resp := v.noFollow(http.MethodPost, bob, "/repositories/acme/api/hooks", hookBody); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a stranger's write to the old path: %d", resp.StatusCode)
	}
	// A new repository under the old name takes its path back.
	v.e.AddRepository("acme", "api", true)
	if resp := v.noFollow(http.MethodPost, alice, "/repositories/acme/api/hooks", hookBody); resp.StatusCode != http.StatusCreated {
		t.Errorf("write to a new repository with the old name: %d", resp.StatusCode)
	}
}

// Commit carries a write out after its client gave up, and may answer it
// as failed; a failure named by full name also matches a request by uuid.
func TestCommitAfterTheClientGaveUp(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	alice := v.login("alice").AccessToken
	var repo repoJSONT
	v.getJSON(alice, "/repositories/acme/api", http.StatusOK, &repo)
	byUUID := "/repositories/acme/" + url.PathEscape(repo.UUID) + "/hooks"

	v.e.FailAPI(Failure{PathPrefix: "/repositories/acme/api/hooks", Method: http.MethodPost, Stall: 300 * time.Millisecond, Commit: true, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, v.srv.URL+"/2.0"+byUUID, strings.NewReader(hookBody))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled create: %v", err)
	}
	if n := len(v.e.Hooks("acme/api")); n != 0 {
		t.Fatalf("%d hooks before the stall ended", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(v.e.Hooks("acme/api")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the create was never carried out")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Done, yet answered 500.
	v.e.FailAPI(Failure{PathPrefix: "/repositories/acme/api/hooks", Method: http.MethodPost, Status: 500, Commit: true, Times: 1})
	if resp := v.noFollow(http.MethodPost, alice, byUUID, hookBody); resp.StatusCode != 500 {
		t.Errorf("committed create answered %d, want 500", resp.StatusCode)
	}
	if n := len(v.e.Hooks("acme/api")); n != 2 {
		t.Errorf("%d hooks after a create answered 500 but carried out, want 2", n)
	}
	// A failing delete leaves the hook.
	uuid := v.e.Hooks("acme/api")[0].UUID
	v.e.FailAPI(Failure{PathPrefix: "/repositories/acme/api/hooks", Method: http.MethodDelete, Status: 500})
	if resp := v.noFollow(http.MethodDelete, alice, byUUID+"/"+url.PathEscape(uuid), ""); resp.StatusCode != 500 {
		t.Errorf("failing delete answered %d", resp.StatusCode)
	}
	if n := len(v.e.Hooks("acme/api")); n != 2 {
		t.Errorf("a failing delete removed the hook (%d left)", n)
	}
}

// The control page sets a failure's method and Commit.
func TestControlPageFailureMethodAndCommit(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	alice := v.login("alice").AccessToken
	resp, err := http.PostForm(v.srv.URL+"/_emulator/add-failure", url.Values{
		"method": {"POST"}, "path_prefix": {"/repositories/acme/api/hooks"}, "status": {"500"}, "commit": {"1"}, "times": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); strings.Contains(body, `class="flash bad"`) || !strings.Contains(body, "<td>POST</td>") {
		t.Fatalf("add-failure: %s", body)
	}
	v.getJSON(alice, "/repositories/acme/api/hooks", http.StatusOK, nil) // GET is not the failure's
	if resp := v.noFollow(http.MethodPost, alice, "/repositories/acme/api/hooks", hookBody); resp.StatusCode != 500 || len(v.e.Hooks("acme/api")) != 1 {
		t.Errorf("POST answered %d with %d hooks, want 500 and 1", resp.StatusCode, len(v.e.Hooks("acme/api")))
	}
	resp, err = http.PostForm(v.srv.URL+"/_emulator/add-failure", url.Values{"method": {"PATCH"}, "status": {"500"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, "invalid method") {
		t.Error("an unknown method was accepted")
	}
}
