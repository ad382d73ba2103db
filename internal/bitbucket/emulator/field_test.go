package emulator

// The emulator answers as Bitbucket does in the field, read here by
// Tether's own Bitbucket client over HTTP (and SSH).

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"tether/internal/bitbucket"
	"tether/internal/deploykeys"
)

func (v *env) client(secret string) *bitbucket.Client {
	return bitbucket.New(bitbucket.Config{WebURL: v.srv.URL, APIURL: v.srv.URL + "/2.0", ClientID: testKey, ClientSecret: secret})
}

// Workspace IDs and slugs are looked up whatever their case, and answered
// in Bitbucket's canonical lower case, next links included.
func TestMixedCaseLookups(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	c := v.client(testSecret)
	ctx := context.Background()
	repo, err := c.Repository(ctx, tok.AccessToken, "ACME", "Api")
	if err != nil || repo.FullName != "acme/api" || repo.Slug != "api" || repo.Workspace.Slug != "acme" {
		t.Fatalf("ACME/Api = %+v, %v", repo, err)
	}
	repos, err := c.WorkspaceRepositories(ctx, tok.AccessToken, "Acme", "member", "")
	if err != nil || len(repos) < 20 {
		t.Fatalf("Acme's repositories: %d, %v", len(repos), err)
	}
	_, body := v.api(http.MethodGet, tok.AccessToken, "/repositories/ACME?pagelen=5", nil)
	var page struct{ Next string }
	json.Unmarshal([]byte(body), &page)
	if !strings.Contains(page.Next, "/2.0/repositories/acme?") {
		t.Errorf("next link %q is not canonical", page.Next)
	}
}

// Each refusal of a refresh comes in Bitbucket's shape, and Tether's client
// reads its verdict: a refused grant, Tether's own credentials refused, or
// rate limiting with when it ends.
func TestRefreshRefusals(t *testing.T) {
	v := newEnv(t)
	c := v.client(testSecret)
	for name, r := range RefreshRefusals {
		tok := v.login("alice")
		if err := v.e.RefuseRefresh("alice", name); err != nil {
			t.Fatal(err)
		}
		_, err := c.Refresh(context.Background(), tok.RefreshToken)
		var be *bitbucket.Error
		if !errors.As(err, &be) || be.Status != r.Status || be.OAuthError != r.Error || !strings.Contains(be.Message, r.Description) {
			t.Errorf("%s: %#v", name, err)
			continue
		}
		switch {
		case r.Status == http.StatusTooManyRequests:
			if !bitbucket.IsTransient(err) || be.RetryAfter != time.Duration(r.RetryAfter)*time.Second {
				t.Errorf("%s: transient %v, Retry-After %v", name, bitbucket.IsTransient(err), be.RetryAfter)
			}
		case name == "invalid_client":
			if !errors.Is(err, bitbucket.ErrInvalidClient) || errors.Is(err, bitbucket.ErrGrantRefused) {
				t.Errorf("%s: not a client verdict: %v", name, err)
			}
		default:
			if !errors.Is(err, bitbucket.ErrGrantRefused) || bitbucket.IsTransient(err) {
				t.Errorf("%s: not a refused grant: %v", name, err)
			}
		}
		v.e.RefuseRefresh("alice", "")
	}

	// A consumer secret changed on Bitbucket: its own answer.
	tok := v.login("alice")
	v.e.SetConsumerSecret(testKey, "rotated")
	_, err := c.Refresh(context.Background(), tok.RefreshToken)
	var be *bitbucket.Error
	if !errors.Is(err, bitbucket.ErrInvalidClient) || !errors.As(err, &be) || be.Status != 400 || be.Message != "unauthorized_client: Invalid OAuth client credentials" {
		t.Errorf("a changed consumer secret: %#v", err)
	}
	v.e.SetConsumerSecret(testKey, testSecret)
	if _, err := c.Refresh(context.Background(), tok.RefreshToken); err != nil {
		t.Errorf("the refresh token survives a client refusal: %v", err)
	}
}

// A workspace refusing leaves the others readable; the listing says which
// it could not read and Bitbucket's words.
func TestOneWorkspaceRefusing(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	c := v.client(testSecret)
	msg := "To access this repository, an admin must whitelist your IP."
	v.e.RefuseWorkspace("acme", http.StatusForbidden, msg)
	repos, err := c.Repositories(context.Background(), tok.AccessToken, "member")
	var partial *bitbucket.PartialError
	if !errors.As(err, &partial) || len(partial.Unread) != 1 || partial.Unread[0].Workspace.Slug != "acme" {
		t.Fatalf("err = %v", err)
	}
	var be *bitbucket.Error
	if !errors.As(partial.Unread[0].Err, &be) || be.Status != 403 || be.Reason() != msg {
		t.Errorf("acme's answer: %v", partial.Unread[0].Err)
	}
	if len(repos) == 0 || repos[0].Workspace.Slug != "alice" {
		t.Errorf("alice's own repositories are not listed: %+v", repos)
	}
	// Every workspace answering 401: the token, not the workspaces.
	v.e.RefuseWorkspace("alice", http.StatusUnauthorized, "")
	v.e.RefuseWorkspace("acme", http.StatusUnauthorized, "")
	if _, err := c.Repositories(context.Background(), tok.AccessToken, "member"); !bitbucket.IsUnauthorized(err) || errors.As(err, &partial) {
		t.Errorf("every workspace 401: %v", err)
	}
}

// Error bodies with fields and scopes, as Bitbucket sends them, are read
// in its words.
func TestErrorBodiesWithFieldsAndScopes(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	c := v.client(testSecret)
	v.e.FailAPI(Failure{PathPrefix: "/repositories/alice/dotfiles/hooks", Status: 400, Times: 1, Message: "Bad request",
		Fields: map[string][]string{"url": {"Enter a valid URL."}}})
	_, err := c.CreateHook(context.Background(), tok.AccessToken, "alice", "dotfiles", bitbucket.HookInput{URL: "https://x.example/h", Events: []string{"repo:push"}, Active: true})
	var be *bitbucket.Error
	if !errors.As(err, &be) || be.FieldReason("url") != "Enter a valid URL." || be.Reason() != "url: Enter a valid URL." {
		t.Errorf("field error: %#v", err)
	}
	v.e.DropScope("alice", testKey, "webhook")
	_, err = c.Hooks(context.Background(), tok.AccessToken, "alice", "dotfiles")
	if got := bitbucket.MissingScopes(err); len(got) != 1 || got[0] != "webhook" {
		t.Errorf("missing scope: %v (%v)", got, err)
	}
}

// Git over SSH refused with each of Bitbucket's reasons is a verdict that
// carries the reason; a refused key is still Permission denied.
func TestSSHRefusalsCarryTheReason(t *testing.T) {
	v := newEnv(t)
	hostKey := startSSH(t, v)
	key, err := deploykeys.Generate("alice/dotfiles")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.AddDeployKey("alice/dotfiles", key.Public, "tether"); err != nil {
		t.Fatal(err)
	}
	signer, err := deploykeys.Signer(key.Private)
	if err != nil {
		t.Fatal(err)
	}
	for name, reason := range SSHRefusals {
		v.e.RefuseSSH("alice/dotfiles", reason)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bitbucket.ProbeSSH(ctx, v.e.SSHAddr(), []ssh.PublicKey{hostKey}, signer, "ALICE", "Dotfiles")
		cancel()
		var r *bitbucket.SSHRefusal
		if !errors.As(err, &r) || r.Reason != reason || bitbucket.IsTransient(err) {
			t.Errorf("%s: %v", name, err)
		}
		if denied := errors.Is(err, bitbucket.ErrSSHPermissionDenied); denied != (name == "not-this-repo") {
			t.Errorf("%s: permission denied = %v", name, denied)
		}
	}
	v.e.RefuseSSH("alice/dotfiles", "")
	if err := bitbucket.ProbeSSH(context.Background(), v.e.SSHAddr(), []ssh.PublicKey{hostKey}, signer, "alice", "dotfiles"); err != nil {
		t.Errorf("served again: %v", err)
	}
}

// Pull requests and the other events arrive in the shapes Tether's parser
// reads: the source commit a title edit names is the one built before, a
// push to the source branch names the new one, a fork is a fork.
func TestPullRequestEventsDelivered(t *testing.T) {
	v := newEnv(t)
	var mu sync.Mutex
	got := map[string][][]byte{}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.Header.Get("X-Event-Key")] = append(got[r.Header.Get("X-Event-Key")], b)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sink.Close)
	events := []string{"repo:push", "repo:fork", "repo:updated", "repo:commit_status_created", "repo:commit_status_updated",
		"pullrequest:created", "pullrequest:updated", "pullrequest:approved", "pullrequest:comment_created", "pullrequest:fulfilled", "pullrequest:rejected"}
	if _, err := v.e.AddHook("alice/dotfiles", Hook{URL: sink.URL, Active: true, Events: events, Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(v.e.Push("alice/dotfiles", "feature", "Start", "alice"))
	must(v.e.OpenPullRequest("alice/dotfiles", "alice/dotfiles", "feature", "main", "Feature", "alice"))
	must(v.e.EditPullRequest("alice/dotfiles", 1, "Feature, renamed", "", "alice"))
	must(v.e.Push("alice/dotfiles", "feature", "More", "alice"))
	must(v.e.ReviewPullRequest("alice/dotfiles", 1, "approved", "alice"))
	must(v.e.CommentPullRequest("alice/dotfiles", 1, "Nice", "alice"))
	must(v.e.SetCommitStatus("alice/dotfiles", "feature", "ci", "INPROGRESS", "alice"))
	must(v.e.SetCommitStatus("alice/dotfiles", "feature", "ci", "SUCCESSFUL", "alice"))
	must(v.e.ForkRepository("alice/dotfiles", "bob", "dotfiles", "bob"))
	must(v.e.Push("bob/dotfiles", "fix", "Fix", "bob"))
	must(v.e.OpenPullRequest("alice/dotfiles", "bob/dotfiles", "fix", "main", "Fix", "bob"))
	must(v.e.DeclinePullRequest("alice/dotfiles", 2, "alice"))
	must(v.e.MergePullRequest("alice/dotfiles", 1, "alice"))
	must(v.e.DescribeRepository("alice/dotfiles", "Dots", "alice"))

	pr := func(event string, i int) bitbucket.PullRequest {
		t.Helper()
		if len(got[event]) <= i {
			t.Fatalf("%d %s deliveries", len(got[event]), event)
		}
		p, err := bitbucket.ParsePullRequest(got[event][i])
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	created, edited, pushed := pr("pullrequest:created", 0), pr("pullrequest:updated", 0), pr("pullrequest:updated", 1)
	if created.Source.Commit == "" || edited.Source.Commit != created.Source.Commit || edited.Title != "Feature, renamed" {
		t.Errorf("a title edit: created %+v, edited %+v", created.Source, edited.Source)
	}
	if pushed.Source.Commit == created.Source.Commit || len(pushed.Source.Commit) != 12 {
		t.Errorf("a push to the source branch: %+v", pushed.Source)
	}
	if fork := pr("pullrequest:created", 1); !fork.FromFork() || fork.Source.Repository.FullName != "bob/dotfiles" || fork.Destination.Repository.FullName != "alice/dotfiles" {
		t.Errorf("from the fork: %+v → %+v", fork.Source, fork.Destination)
	}
	if m := pr("pullrequest:fulfilled", 0); m.State != "MERGED" {
		t.Errorf("merged: %q", m.State)
	}
	if d := pr("pullrequest:rejected", 0); d.State != "DECLINED" {
		t.Errorf("declined: %q", d.State)
	}
	for _, e := range []string{"pullrequest:approved", "pullrequest:comment_created"} {
		if p := pr(e, 0); p.ID != 1 || p.Repository.FullName != "alice/dotfiles" {
			t.Errorf("%s: %+v", e, p)
		}
	}
	if n := len(got["repo:push"]); n != 3 { // feature twice, the merge commit
		t.Errorf("%d repo:push deliveries", n)
	}
	env, err := bitbucket.ParseEnvelope(got["repo:fork"][0])
	if err != nil || env.Fork.FullName != "bob/dotfiles" || env.Repository.FullName != "alice/dotfiles" {
		t.Errorf("repo:fork: %+v %v", env, err)
	}
	env, _ = bitbucket.ParseEnvelope(got["repo:updated"][0])
	if len(env.Changed) != 1 || env.Changed[0] != "description" {
		t.Errorf("repo:updated: %+v", env.Changed)
	}
	if len(got["repo:commit_status_created"]) != 1 || len(got["repo:commit_status_updated"]) != 1 {
		t.Errorf("build statuses: %d created, %d updated", len(got["repo:commit_status_created"]), len(got["repo:commit_status_updated"]))
	}
	env, _ = bitbucket.ParseEnvelope(got["repo:commit_status_updated"][0])
	if env.Status.Key != "ci" || env.Status.State != "SUCCESSFUL" {
		t.Errorf("build status: %+v", env.Status)
	}
}
