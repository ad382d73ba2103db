package app_test

// Bitbucket as it behaves in the field (issue 13): events that are not
// code changes, the token endpoint's verdicts, canonical names, Bitbucket's
// own words, and answers that decide one thing only — each through the
// emulator over HTTP and the running Tether.

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
	"tether/internal/webhooks"
)

// eventPayload returns a payload of testdata/events (see its README),
// rewritten to the project's repository as recorded() does.
func (h *hooked) eventPayload(t *testing.T, name string) []byte {
	t.Helper()
	return h.payload(t, "events", name)
}

// fastBudget is for tests that make many API calls in a few seconds: a
// budget that does not pace them (pacing has tests of its own).
var fastBudget = apptest.Options{Env: map[string]string{"TETHER_BITBUCKET_BUDGET": "10000"}}

// latestReason is the reason stored with the project's latest delivery.
func (h *hooked) latestReason(t *testing.T) string {
	t.Helper()
	var reason string
	rawDB(t, h.env).QueryRow(`SELECT reason FROM deliveries ORDER BY id DESC LIMIT 1`).Scan(&reason)
	return reason
}

// Every event Bitbucket documents is answered 2xx, and only code changes
// start workflows: a title edit names the commit already built, a fork's
// commits are not in the repository, approvals, comments, merges,
// declines, forks, settings, build statuses and issues are no code at
// all, and a push naming no ref is not a deletion. Each says why in the
// project's delivery list.
func TestEventsThatAreNotCodeChangesStartNothing(t *testing.T) {
	h := withHook(t)
	cases := []struct {
		file, event string
		recorded    bool // Bitbucket's own bytes (recorded/), else events/
		workflows   int
		reason      string // in the answer and the delivery list; "" for none
	}{
		{"webhook_pr_created.json", "pullrequest:created", true, 1, ""},
		{"webhook_pr_updated.json", "pullrequest:updated", true, 1, ""},
		{"pr_title_edited.json", "pullrequest:updated", false, 0, "no new commit: pull request source develop at 0704fc5 was already built"},
		{"pr_from_fork.json", "pullrequest:created", false, 0, "pull request #2 comes from the fork octocat/foo"},
		{"pr_approved.json", "pullrequest:approved", false, 0, "pull request #1 approved: an approval is not a code change"},
		{"pr_unapproved.json", "pullrequest:unapproved", false, 0, "approval removed"},
		{"pr_changes_request_created.json", "pullrequest:changes_request_created", false, 0, "a change request is not a code change"},
		{"pr_comment_created.json", "pullrequest:comment_created", false, 0, "a comment on pull request #1"},
		{"pr_fulfilled.json", "pullrequest:fulfilled", false, 0, "pull request #1 merged: the merge commit arrives as a repo:push"},
		{"pr_rejected.json", "pullrequest:rejected", false, 0, "pull request #1 declined"},
		{"repo_fork.json", "repo:fork", false, 0, "forked to octocat/foo"},
		{"repo_updated.json", "repo:updated", false, 0, "settings changed (description, website)"},
		{"repo_transfer.json", "repo:transfer", false, 0, "transferred"},
		{"repo_commit_status_created.json", "repo:commit_status_created", false, 0, "a build status (tether: inprogress) is not a code change"},
		{"repo_commit_status_updated.json", "repo:commit_status_updated", false, 0, "a build status (tether: successful)"},
		{"repo_commit_comment_created.json", "repo:commit_comment_created", false, 0, "a commit comment"},
		{"issue_created.json", "issue:created", false, 0, "an issue event"},
		{"push_empty_changes.json", "repo:push", false, 0, "the push lists no branch or tag changes"},
		{"push_change_both_null.json", "repo:push", false, 0, "new and old are both null"},
		{"webhook_push_branch_delete.json", "repo:push", true, 0, " deleted"},
		{"webhook_push.json", "repo:frobnicated", true, 0, "repo:frobnicated is not an event Tether builds from"},
	}
	total := 0
	for _, tc := range cases {
		var body []byte
		if tc.recorded {
			body = h.recorded(t, tc.file)
		} else {
			body = h.eventPayload(t, tc.file)
		}
		status, answer := h.send(t, tc.event, body, nil)
		if status != http.StatusAccepted || !strings.Contains(answer, tc.reason) {
			t.Errorf("%s as %s: %d %q, want 202 naming %q", tc.file, tc.event, status, answer, tc.reason)
		}
		total += tc.workflows
		if _, _, n := h.counts(t); n != total {
			t.Fatalf("%s: %d workflows in all, want %d", tc.file, n, total)
		}
		reason := h.latestReason(t)
		if !strings.Contains(reason, tc.reason) || tc.reason == "" && reason != "" {
			t.Errorf("%s: stored reason %q, want %q", tc.file, reason, tc.reason)
		}
		if tc.file != "webhook_push_branch_delete.json" && strings.Contains(reason, "delet") {
			t.Errorf("%s: %q calls it a deletion", tc.file, reason)
		}
	}

	// The project's delivery list says why each started nothing.
	activity := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/activity", h.project, nil)
	shown := activity.Doc.Find(`[data-testid="delivery-reason"]`).Text()
	for _, want := range []string{"no new commit", "comes from the fork octocat/foo", "not a code change", "merged"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the delivery list does not show %q: %s", want, shown)
		}
	}

	// A pull request into another repository is refused, wherever it
	// comes from: the destination is where the hook lives.
	other := bytes.ReplaceAll(h.eventPayload(t, "pr_approved.json"), []byte(h.repoUUID), []byte("{00000000-0000-4000-8000-000000000000}"))
	if status, answer := h.send(t, "pullrequest:approved", other, nil); status != http.StatusBadRequest || !strings.Contains(answer, webhooks.ReasonOtherRepo) {
		t.Errorf("a pull request into another repository: %d %s", status, answer)
	}

	// The database keys a workflow by its build: a second row for the
	// same project, trigger, ref and commit cannot be written.
	db := writableDB(t, h.env)
	_, err := db.Exec(`INSERT INTO workflows (project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at)
		SELECT project_id, delivery_id, trigger, ref_type, ref_name, commit_hash, created_at FROM workflows LIMIT 1`)
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("a duplicate build was stored: %v", err)
	}
}

// The emulator delivers pull requests as Bitbucket does, and Tether starts
// a workflow for each new commit only.
func TestPullRequestsFromTheEmulator(t *testing.T) {
	h := withHook(t)
	em := h.env.Emulator
	em.AddUser(emulator.User{Username: "carol", DisplayName: "Carol", Email: "carol@example.com", Password: "secret-password"})
	// Someone subscribed the hook to every event on Bitbucket.
	em.EditHook("alice/api", h.hook.UUID, "", []string{"repo:push", "repo:fork", "repo:updated", "repo:commit_status_created",
		"repo:commit_status_updated", "pullrequest:created", "pullrequest:updated", "pullrequest:approved", "pullrequest:unapproved",
		"pullrequest:changes_request_created", "pullrequest:comment_created", "pullrequest:fulfilled", "pullrequest:rejected"}, false)
	steps := []struct {
		name      string
		do        func() ([]emulator.Delivery, error)
		workflows int    // started by the step
		reason    string // in the latest delivery's reason
	}{
		{"push feature", func() ([]emulator.Delivery, error) {
			r, err := em.Push("alice/api", "feature", "Start a feature", "alice")
			return r.Deliveries, err
		}, 1, ""},
		{"open a pull request", func() ([]emulator.Delivery, error) {
			r, err := em.OpenPullRequest("alice/api", "alice/api", "feature", "main", "Add a feature", "alice")
			return r.Deliveries, err
		}, 1, ""},
		{"edit its title", func() ([]emulator.Delivery, error) {
			r, err := em.EditPullRequest("alice/api", 1, "Add a feature (v2)", "Now with words", "alice")
			return r.Deliveries, err
		}, 0, "no new commit"},
		{"push to its source branch", func() ([]emulator.Delivery, error) {
			r, err := em.Push("alice/api", "feature", "More of it", "alice")
			return r.Deliveries, err
		}, 2, ""}, // repo:push and pullrequest:updated with the new commit
		{"approve it", func() ([]emulator.Delivery, error) {
			r, err := em.ReviewPullRequest("alice/api", 1, "approved", "alice")
			return r.Deliveries, err
		}, 0, "approved"},
		{"comment on it", func() ([]emulator.Delivery, error) {
			r, err := em.CommentPullRequest("alice/api", 1, "Nice", "alice")
			return r.Deliveries, err
		}, 0, "a comment on pull request #1"},
		{"report a build status", func() ([]emulator.Delivery, error) {
			r, err := em.SetCommitStatus("alice/api", "feature", "tether", "SUCCESSFUL", "alice")
			return r.Deliveries, err
		}, 0, "build status"},
		{"fork the repository", func() ([]emulator.Delivery, error) {
			r, err := em.ForkRepository("alice/api", "carol", "api", "carol")
			return r.Deliveries, err
		}, 0, "forked to carol/api"},
		{"push to the fork", func() ([]emulator.Delivery, error) {
			r, err := em.Push("carol/api", "fix", "A fix", "carol")
			return r.Deliveries, err // no hook on the fork
		}, 0, "forked to carol/api"},
		{"open a pull request from the fork", func() ([]emulator.Delivery, error) {
			r, err := em.OpenPullRequest("alice/api", "carol/api", "fix", "main", "A fix", "carol")
			return r.Deliveries, err
		}, 0, "pull request #2 comes from the fork carol/api"},
		{"decline it", func() ([]emulator.Delivery, error) {
			r, err := em.DeclinePullRequest("alice/api", 2, "alice")
			return r.Deliveries, err
		}, 0, "pull request #2 declined"},
		{"merge the first", func() ([]emulator.Delivery, error) {
			r, err := em.MergePullRequest("alice/api", 1, "alice")
			return r.Deliveries, err
		}, 1, ""}, // fulfilled starts nothing, the merge commit's repo:push does
		{"change the description", func() ([]emulator.Delivery, error) {
			r, err := em.DescribeRepository("alice/api", "The API", "alice")
			return r.Deliveries, err
		}, 0, "settings changed (description)"},
	}
	total := 0
	for _, s := range steps {
		ds, err := s.do()
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for _, d := range ds {
			if d.Status != http.StatusAccepted {
				t.Errorf("%s: a delivery answered %d %s", s.name, d.Status, d.Error)
			}
		}
		total += s.workflows
		if _, _, n := h.counts(t); n != total {
			t.Fatalf("%s: %d workflows in all, want %d", s.name, n, total)
		}
		if got := h.latestReason(t); !strings.Contains(got, s.reason) {
			t.Errorf("%s: latest reason %q, want %q", s.name, got, s.reason)
		}
	}
	var merged int
	rawDB(t, h.env).QueryRow(`SELECT count(*) FROM deliveries WHERE event_key = 'pullrequest:fulfilled' AND reason LIKE '%merged%'`).Scan(&merged)
	if merged != 1 {
		t.Errorf("%d merges noted", merged)
	}
}

// Every refusal of a refresh by the token endpoint, whatever its OAuth
// error, is a verdict: Not Connected with Bitbucket's reason and Grant
// access, and the dead refresh token is never sent again.
func TestRefusedRefreshIsAVerdict(t *testing.T) {
	for _, name := range []string{"invalid_grant", "invalid_request", "unauthorized_client", "invalid_scope"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := apptest.Start(t, apptest.Options{NoSchedule: true})
			env.App.Connections.Coalesce = 0
			c, page := connected(t, env)
			env.Emulator.ExpireTokens("alice")
			if err := env.Emulator.RefuseRefresh("alice", name); err != nil {
				t.Fatal(err)
			}
			before := env.Emulator.RefreshRequests()
			p := check(t, c, page)
			refusal := emulator.RefreshRefusals[name]
			if status(p) != "not_connected" || !p.Has(`[data-testid="grant-access"]`) {
				t.Fatalf("after %s: %q\n%s", name, status(p), p.Body)
			}
			if got := p.Text(`[data-testid="bitbucket-reason"]`); !strings.Contains(got, refusal.Error+": "+refusal.Description) {
				t.Errorf("reason %q lacks Bitbucket's words", got)
			}
			if p.Has(`[data-testid="bitbucket-notice"]`) || strings.Contains(p.Body, "could not reach") {
				t.Error("a verdict shown as could not check")
			}
			if n := count(t, rawDB(t, env), `SELECT count(*) FROM bitbucket_identities WHERE refresh_token IS NULL AND status = 'not_connected'`); n != 1 {
				t.Fatal("the dead refresh token is still stored")
			}
			// Polls and checks do not send it again.
			for range 3 {
				c.HTMX(http.MethodGet, "/account/bitbucket", page, nil)
				c.HTMX(http.MethodPost, "/account/bitbucket/check", page, nil)
			}
			if sent := env.Emulator.RefreshRequests() - before; sent != 1 {
				t.Fatalf("the refresh token was sent %d times", sent)
			}
		})
	}
}

// Bitbucket refusing Tether's own client credentials — its real answer,
// 400 unauthorized_client "Invalid OAuth client credentials", or RFC
// 6749's 401 invalid_client — is a configuration error for admins, not
// anyone's revoked grant: the connection stays, the account page says
// so, admins see a banner, sign-in says so, and it clears when the
// credentials work again.
func TestClientCredentialsRefusedIsConfiguration(t *testing.T) {
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Connections.Coalesce = 0
	c, page := connected(t, env)
	for _, breakIt := range []struct {
		name string
		do   func()
		says string
	}{
		{"consumer secret changed on Bitbucket", func() { env.Emulator.SetConsumerSecret(apptest.ClientID, "rotated-secret") }, "unauthorized_client: Invalid OAuth client credentials"},
		{"401 invalid_client", func() { env.Emulator.RefuseRefresh("alice", "invalid_client") }, "invalid_client: Invalid OAuth client credentials"},
	} {
		env.Emulator.ExpireTokens("alice")
		breakIt.do()
		p := check(t, c, page)
		if status(p) != "connected" {
			t.Fatalf("%s: the connection became %q", breakIt.name, status(p))
		}
		if got := p.Text(`[data-testid="client-fault"]`); !strings.Contains(got, breakIt.says) || !strings.Contains(got, "not about your own grant") {
			t.Errorf("%s: account line %q", breakIt.name, got)
		}
		if n := count(t, rawDB(t, env), `SELECT count(*) FROM bitbucket_identities WHERE refresh_token IS NOT NULL AND status = 'connected'`); n != 1 {
			t.Fatalf("%s: the person's grant was dropped", breakIt.name)
		}
		projects := c.Get("/projects")
		if got := projects.Text(`[data-testid="client-fault-banner"]`); !strings.Contains(got, "BITBUCKET_CLIENT_SECRET") || !strings.Contains(got, breakIt.says) {
			t.Errorf("%s: admin banner %q", breakIt.name, got)
		}
		env.Emulator.SetConsumerSecret(apptest.ClientID, apptest.ClientSecret)
		env.Emulator.RefuseRefresh("alice", "")
	}

	// Signing in says it is Tether's configuration.
	env.Emulator.SetConsumerSecret(apptest.ClientID, "rotated-secret")
	env.AddUser("bob")
	bob := env.Client()
	p := bob.Consent(bob.StartBitbucket("bob"), true)
	if !strings.Contains(p.Text(`[data-testid="error"]`), "refuses Tether's OAuth consumer key or secret") {
		t.Errorf("sign-in with a wrong consumer secret: %d\n%s", p.Status, p.Text(`[data-testid="error"]`))
	}

	// Fixed: the next refresh works, and the banner and line go.
	env.Emulator.SetConsumerSecret(apptest.ClientID, apptest.ClientSecret)
	env.Emulator.ExpireTokens("alice")
	p = check(t, c, page)
	if status(p) != "connected" || p.Has(`[data-testid="client-fault"]`) || c.Get("/projects").Has(`[data-testid="client-fault-banner"]`) {
		t.Fatalf("after fixing the secret:\n%s", p.Body)
	}
}

// A 429 from the token endpoint is rate limiting, named with when it
// ends; the refresh is not sent again before then.
func TestTokenEndpointRateLimitNamed(t *testing.T) {
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	env.App.Connections.Coalesce = 0
	c, page := connected(t, env)
	env.Emulator.ExpireTokens("alice")
	env.Emulator.RefuseRefresh("alice", "rate_limited") // Retry-After: 120
	before := env.Emulator.RefreshRequests()
	p := check(t, c, page)
	got := p.Text(`[data-testid="bitbucket-notice"]`)
	if status(p) != "connected" || !strings.Contains(got, "rate limiting Tether until ") || strings.Contains(got, "could not reach") {
		t.Fatalf("after a 429: %q %q", status(p), got)
	}
	check(t, c, page)
	if sent := env.Emulator.RefreshRequests() - before; sent != 1 {
		t.Fatalf("%d refreshes sent during the pause", sent)
	}
}

// Names are compared and looked up as Bitbucket writes them: capitals,
// user info, ".git" and a trailing slash name the same repository.
func TestMixedCaseNamesAreTheSameRepository(t *testing.T) {
	h := withHookOpts(t, fastBudget)
	web, host := h.env.BBURL, strings.TrimPrefix(h.env.BBURL, "http://")
	before := storedProject(t, h.env)
	for _, typed := range []string{
		web + "/ALICE/API",
		"http://Alice@" + strings.ToUpper(host) + "/Alice/Api.git/",
		"ssh://git@" + h.env.App.Config.BitbucketSSHAddr + "/ALICE/api.git",
		web + "/alice/API/pull-requests/3",
	} {
		p := change(t, h, typed, "")
		if p.Status != http.StatusOK || !p.Has(`[data-testid="repository-notice"].ok`) || p.Has(`[data-testid="confirm-switch"]`) {
			t.Errorf("%q: %d %s", typed, p.Status, p.Text(`[data-testid="url-error"]`)+p.Text(`[data-testid="error"]`))
		}
	}
	if storedProject(t, h.env) != before {
		t.Fatalf("the project changed: %+v", storedProject(t, h.env))
	}
	// The picker's form takes a name in any case too.
	p := h.c.HTMX(http.MethodPost, "/projects", h.c.Get("/projects/new"), map[string][]string{"repository": {"ALICE/Site"}})
	if p.Status != http.StatusCreated {
		t.Fatalf("create ALICE/Site: %d %s", p.Status, p.Body)
	}
	if n := count(t, rawDB(t, h.env), `SELECT count(*) FROM projects WHERE full_name = 'alice/site' AND workspace = 'alice' AND repo_slug = 'site'`); n != 1 {
		t.Fatal("the project is not stored under Bitbucket's canonical name")
	}
	// And the same repository in other capitals is the same project.
	p = h.c.HTMX(http.MethodPost, "/projects", h.c.Get("/projects/new"), map[string][]string{"repository": {"Alice/API"}})
	if p.Status != http.StatusConflict {
		t.Fatalf("Alice/API again: %d %s", p.Status, p.Body)
	}
}

// Bitbucket's error bodies are shown in its words, beside what they
// concern: a field error on the webhook URL names the field; a 403 naming
// a scope names it and offers Grant access.
func TestBitbucketsOwnWordsShown(t *testing.T) {
	env, c := withRepo(t, apptest.Options{})
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: http.MethodPost, Status: 400, Times: 1,
		Message: "Bad request", Fields: map[string][]string{"url": {"Enter a valid URL."}}})
	p := c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), map[string][]string{"repository": {"alice/api"}})
	got := p.Text(`[data-testid="error"]`)
	if p.Status == http.StatusCreated || !strings.Contains(got, "url: Enter a valid URL.") || !strings.Contains(got, "webhook URL") || !strings.Contains(got, "TETHER_PUBLIC_URL") {
		t.Errorf("a field error on the webhook URL: %d %q", p.Status, got)
	}
	if strings.Contains(p.Body, "/hooks/bitbucket/") {
		t.Error("the webhook URL (its token) was shown")
	}
	if keys := env.Emulator.DeployKeys("alice/api"); len(keys) != 0 {
		t.Errorf("%d deploy keys left after the refused webhook", len(keys))
	}

	// A grant without the webhook scope: Bitbucket's 403 names it.
	env.Emulator.DropScope("alice", apptest.ClientID, "webhook")
	p = c.HTMX(http.MethodPost, "/projects", c.Get("/projects/new"), map[string][]string{"repository": {"alice/api"}})
	got = p.Text(`[data-testid="error"]`)
	if p.Status != http.StatusForbidden || !strings.Contains(got, "webhook permission") || !p.Has(`[data-testid="error"] [data-testid="grant-access"]`) {
		t.Errorf("a missing scope: %d %q\n%s", p.Status, got, p.Body)
	}

	// Without any repository scope each workspace's listing is refused
	// naming it: the picker says so beside Grant access.
	env.App.Projects.ListFresh = 0
	env.Emulator.DropScope("alice", apptest.ClientID, "repository:admin")
	env.Emulator.DropScope("alice", apptest.ClientID, "pullrequest")
	picker := c.HTMX(http.MethodGet, "/projects/new/repositories?fresh=1", c.Get("/projects/new"), nil)
	if got := picker.Text(`[data-testid="unread-workspace"][data-workspace="alice"]`); !strings.Contains(got, "the grant lacks the repository permission") ||
		!picker.Has(`[data-testid="unread-workspaces"] [data-testid="grant-access"]`) {
		t.Errorf("the picker without the repository scope: %q\n%s", got, picker.Body)
	}
}

// A health check reads Bitbucket's words too: a scope the grant lacks,
// and an SSH refusal with a reason, are definite answers with that reason.
func TestHealthSaysBitbucketsReason(t *testing.T) {
	h := withHookOpts(t, fastBudget)
	for _, tc := range []struct {
		name, reason string
		refuse       string
	}{
		{"IP allowlist", "refused over SSH", emulator.SSHRefusals["ip-allowlist"]},
		{"two-step verification", "refused over SSH", emulator.SSHRefusals["two-step"]},
		{"repository gone over SSH", "refused over SSH", emulator.SSHRefusals["not-found"]},
		{"key not on the repository", "SSH Permission denied (publickey)", emulator.SSHRefusals["not-this-repo"]},
	} {
		if err := h.env.Emulator.RefuseSSH("alice/api", tc.refuse); err != nil {
			t.Fatal(err)
		}
		p := checkKey(t, h.c, h.project)
		status, reason := keyStatus(p)
		detail := p.Text(`#deploy-key [data-testid="health-detail"]`)
		if status != "invalid" || reason != tc.reason || !strings.Contains(detail, tc.refuse) {
			t.Errorf("%s: %s %q %q", tc.name, status, reason, detail)
		}
	}
	h.env.Emulator.RefuseSSH("alice/api", "")
	if status, _ := keyStatus(checkKey(t, h.c, h.project)); status != "valid" {
		t.Fatalf("served again: %s", status)
	}

	h.env.Emulator.DropScope("alice", apptest.ClientID, "repository:admin")
	p := checkKey(t, h.c, h.project)
	if status, reason := keyStatus(p); status != "invalid" || reason != "the grant lacks a permission" ||
		!strings.Contains(p.Text(`#deploy-key [data-testid="health-detail"]`), "repository:admin") {
		t.Errorf("a missing scope: %s %q %q", status, reason, p.Text(`#deploy-key [data-testid="health-detail"]`))
	}
	if got := status(h.c.Get("/account")); got != "connected" {
		t.Fatalf("a missing scope made the connection %q", got)
	}
}

// One answer decides one thing: a workspace refusing leaves the others in
// the picker, which says what it could not read; a 401 about one resource
// never revokes the connection, a 401 for the account itself does.
func TestOneAnswerDecidesOneThing(t *testing.T) {
	h := withHookOpts(t, fastBudget)
	env, c := h.env, h.c
	env.App.Projects.ListFresh = 0
	env.Emulator.AddWorkspaceMember("acme", "alice", false)
	env.Emulator.AddRepository("acme", "billing", true)
	for _, tc := range []struct {
		status int
		msg    string
		says   string
	}{
		{403, "To access this repository, an admin must whitelist your IP.", "Bitbucket answered 403: To access this repository, an admin must whitelist your IP."},
		{500, "", "Bitbucket answered 500"},
	} {
		env.Emulator.RefuseWorkspace("acme", tc.status, tc.msg)
		picker := c.HTMX(http.MethodGet, "/projects/new/repositories?fresh=1", c.Get("/projects/new"), nil)
		var listed []string
		picker.Doc.Find(`[data-testid="repository"]`).Each(func(_ int, s *goquery.Selection) { listed = append(listed, s.AttrOr("data-repository", "")) })
		if !slices.Contains(listed, "alice/site") || slices.Contains(listed, "acme/billing") {
			t.Errorf("%d: the picker lists %v", tc.status, listed)
		}
		if got := picker.Text(`[data-testid="unread-workspace"][data-workspace="acme"]`); !strings.Contains(got, tc.says) {
			t.Errorf("%d: the picker says %q about acme", tc.status, got)
		}
	}
	env.Emulator.RefuseWorkspace("acme", 0, "")

	// A 401 about the webhook alone: the webhook's answer, not the account's.
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Status: 401})
	p := checkHook(t, c, h.project)
	if s, reason := hookStatus(p); s != "invalid" || reason != "owner no longer has access to the repository" {
		t.Errorf("webhook after a 401 about it: %s %q %s", s, reason, p.Text(`#webhook [data-testid="health-detail"]`))
	}
	if s, _ := keyStatus(checkKey(t, c, h.project)); s != "valid" {
		t.Errorf("the deploy key, which Bitbucket showed, is %s", s)
	}
	if got := status(c.Get("/account")); got != "connected" {
		t.Fatalf("a 401 about one webhook made the connection %q", got)
	}
	env.Emulator.ClearFailures()

	// A 401 for everything, GET /user with a fresh token too: the account.
	env.Emulator.FailAPI(emulator.Failure{PathPrefix: "", Status: 401})
	checkHook(t, c, h.project)
	env.Emulator.ClearFailures()
	acct := c.Get("/account")
	if status(acct) != "not_connected" || !strings.Contains(acct.Text(`[data-testid="bitbucket-reason"]`), "freshly issued access token") {
		t.Fatalf("after GET /user refused a fresh token: %q %q", status(acct), acct.Text(`[data-testid="bitbucket-reason"]`))
	}
}
