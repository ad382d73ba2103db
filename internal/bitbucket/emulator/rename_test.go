package emulator

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestRenamesAndMoves(t *testing.T) {
	v := newEnv(t)
	hostKey := startSSH(t, v)
	alice, bob := v.login("alice").AccessToken, v.login("bob").AccessToken
	signer, line := newKey(t, "tether")
	k, err := v.e.AddDeployKey("acme/api", line, "Tether")
	if err != nil {
		t.Fatal(err)
	}
	h, err := v.e.AddHook("acme/api", Hook{URL: "https://ci.example/h", Events: []string{"repo:push"}, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	var before repoJSONT
	v.getJSON(alice, "/repositories/acme/api", http.StatusOK, &before)

	v.e.RenameRepository("acme/api", "api-v2")
	v.wantError(alice, "/repositories/acme/api", http.StatusNotFound, "Repository acme/api not found")
	var after repoJSONT
	v.getJSON(alice, "/repositories/acme/api-v2", http.StatusOK, &after)
	if after.UUID != before.UUID || after.FullName != "acme/api-v2" || after.Name != "api-v2" {
		t.Errorf("renamed %+v", after)
	}
	v.getJSON(alice, "/repositories/acme/"+url.PathEscape(before.UUID), http.StatusOK, &after)
	if after.FullName != "acme/api-v2" {
		t.Errorf("by uuid after rename %+v", after)
	}
	if keys := v.e.DeployKeys("acme/api-v2"); len(keys) != 1 || keys[0].ID != k.ID {
		t.Errorf("keys after rename %+v", keys)
	}
	if hooks := v.e.Hooks("acme/api-v2"); len(hooks) != 1 || hooks[0].UUID != h.UUID {
		t.Errorf("hooks after rename %+v", hooks)
	}
	c, err := dialSSH(v, hostKey, "git", signer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, errOut, status := runGit(t, c, "git-upload-pack 'acme/api.git'"); status != 1 || errOut != sshNoRepo {
		t.Errorf("old path over SSH: %d %q", status, errOut)
	}
	if _, _, status := runGit(t, c, "git-upload-pack 'acme/api-v2.git'"); status != 0 {
		t.Errorf("new path over SSH: %d", status)
	}

	// Moving to alice's workspace: bob, an acme member, loses sight of it.
	v.getJSON(bob, "/repositories/acme/api-v2", http.StatusOK, nil)
	v.e.MoveRepository("acme/api-v2", "alice")
	v.wantError(alice, "/repositories/acme/api-v2", http.StatusNotFound, "Repository acme/api-v2 not found")
	v.getJSON(alice, "/repositories/alice/api-v2", http.StatusOK, &after)
	if after.UUID != before.UUID || after.Workspace.Slug != "alice" {
		t.Errorf("moved %+v", after)
	}
	v.wantError(bob, "/repositories/alice/api-v2", http.StatusNotFound, "Repository alice/api-v2 not found")
	v.getJSON(alice, "/repositories/%7B%7D/"+url.PathEscape(before.UUID), http.StatusOK, &after)
	if len(v.e.Hooks("alice/api-v2")) != 1 || len(v.e.DeployKeys("alice/api-v2")) != 1 {
		t.Error("keys or hooks did not move")
	}

	// Renaming a workspace moves every repository's path.
	var web repoJSONT
	v.getJSON(alice, "/repositories/acme/web", http.StatusOK, &web)
	v.e.RenameWorkspace("acme", "acme-corp")
	v.wantError(alice, "/repositories/acme/web", http.StatusNotFound, "Repository acme/web not found")
	v.wantError(alice, "/repositories/acme", http.StatusNotFound, "No workspace with identifier 'acme'.")
	v.getJSON(alice, "/repositories/acme-corp/web", http.StatusOK, &after)
	if after.UUID != web.UUID || !strings.HasPrefix(after.Links.HTML.Href, v.srv.URL+"/acme-corp/web") {
		t.Errorf("after workspace rename %+v", after)
	}
	v.getJSON(alice, "/repositories/"+url.PathEscape(web.Workspace.UUID)+"/"+url.PathEscape(web.UUID), http.StatusOK, &after)
	if got := len(v.allRepos(alice, "/repositories/acme-corp?role=member")); got != 27 {
		t.Errorf("acme-corp lists %d repositories", got)
	}
}

func TestPhase2ControlForms(t *testing.T) {
	v := newEnv(t)
	rc := newReceiver(t)
	h, _ := v.e.AddHook("acme/docs", Hook{URL: rc.srv.URL, Events: []string{"repo:push"}, Active: true, Secret: "x"})
	_, line := newKey(t, "form")
	post := func(action string, f url.Values) string {
		t.Helper()
		resp, err := http.PostForm(v.srv.URL+"/_emulator/"+action, f)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if strings.Contains(body, `class="flash bad"`) {
			t.Fatalf("%s: %s", action, body)
		}
		return body
	}
	body := post("push", url.Values{"repo": {"acme/docs"}, "ref": {"main"}, "message": {"From the form"}, "author": {"bob"}})
	if !strings.Contains(body, "HTTP 200 after 1 attempt") || len(rc.deliveries()) != 1 {
		t.Errorf("push form: %s", body)
	}
	post("edit-hook", url.Values{"repo": {"acme/docs"}, "uuid": {h.UUID}, "url": {"https://moved.example/"}, "clear_secret": {"1"}})
	post("set-hook-active", url.Values{"repo": {"acme/docs"}, "uuid": {h.UUID}})
	if got := v.e.Hooks("acme/docs")[0]; got.URL != "https://moved.example/" || got.Secret != "" || got.Active {
		t.Errorf("hook after forms %+v", got)
	}
	post("add-key", url.Values{"repo": {"acme/docs"}, "key": {line}, "label": {"form"}})
	id := v.e.DeployKeys("acme/docs")[0].ID
	_, other := newKey(t, "other")
	post("replace-key", url.Values{"repo": {"acme/docs"}, "id": {strconv.Itoa(id)}, "key": {other}})
	if got := v.e.DeployKeys("acme/docs")[0]; got.Comment != "other" {
		t.Errorf("key after replace %+v", got)
	}
	post("delete-key", url.Values{"repo": {"acme/docs"}, "id": {strconv.Itoa(id)}})
	post("delete-hook", url.Values{"repo": {"acme/docs"}, "uuid": {h.UUID}})
	post("rename-repo", url.Values{"repo": {"acme/docs"}, "new_slug": {"handbook"}})
	post("move-repo", url.Values{"repo": {"acme/handbook"}, "workspace": {"bob"}})
	body = post("rename-workspace", url.Values{"workspace": {"bob"}, "new_slug": {"builder"}})
	if !strings.Contains(body, "builder/handbook") || len(v.e.DeployKeys("builder/handbook")) != 0 || len(v.e.Hooks("builder/handbook")) != 0 {
		t.Errorf("after renames: %s", body)
	}
	resp, err := http.PostForm(v.srv.URL+"/_emulator/rename-repo", url.Values{"repo": {"acme/web"}, "new_slug": {"api"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, "already exists") {
		t.Error("renaming onto an existing repository was accepted")
	}
}
