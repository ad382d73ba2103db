package emulator

import (
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"
)

// Pull requests and the repository events besides repo:push, delivered in
// the shapes of Bitbucket Cloud's "Event payloads" page (the pull request
// object as recorded/webhook_pr_*.json has it): every pullrequest:* event
// carries the whole pull request, the actor and the destination
// repository, and goes to the destination repository's hooks that
// subscribe to it. Pushing to a pull request's source branch also sends
// pullrequest:updated with the new source commit; editing its title or
// description sends pullrequest:updated with the same one.

// PullRequest is a pull request as tests see it.
type PullRequest struct {
	ID                      int
	Title, Description      string
	Source, Destination     string // "workspace/slug:branch"
	State                   string // OPEN, MERGED or DECLINED
	SourceCommit, MergeHash string
}

// pullRequest lives on its destination repository.
type pullRequest struct {
	id                 int
	title, description string
	src                *repo
	srcBranch          string
	dst                *repo
	dstBranch          string
	state              string
	author             *user
	closedBy           *user
	created, updated   time.Time
	mergeCommit        string
	comments           int
}

// EventResult is what an action on the emulated Bitbucket delivered.
type EventResult struct {
	ID         int // the pull request's id, for pull request actions
	Deliveries []Delivery
}

// delivery is an event built under the lock, to deliver after it.
type delivery struct {
	fullName, event string
	body            map[string]any
	hooks           []Hook
}

// hooksFor are r's active hooks subscribing to event. Callers hold e.mu.
func hooksFor(r *repo, event string) []Hook {
	var out []Hook
	for _, h := range r.hooks {
		if h.Active && slices.Contains(h.Events, event) {
			out = append(out, *h)
		}
	}
	return out
}

// event prepares event on r's hooks. Callers hold e.mu.
func (e *Emulator) event(r *repo, event string, body map[string]any) delivery {
	return delivery{fullName: r.fullName(), event: event, body: body, hooks: hooksFor(r, event)}
}

// send delivers prepared events in order, without the lock.
func (e *Emulator) send(ds ...delivery) ([]Delivery, error) {
	var out []Delivery
	for _, d := range ds {
		if len(d.hooks) == 0 {
			continue
		}
		b, err := json.Marshal(d.body)
		if err != nil {
			return out, err
		}
		out = append(out, e.deliver(d.fullName, d.event, b, d.hooks)...)
	}
	return out, nil
}

// payloadRepo is the repository object of a payload, as repo:push has it.
func (e *Emulator) payloadRepo(s site, r *repo) map[string]any {
	o := repoRef(s, r)
	o["scm"] = "git"
	o["website"] = ""
	o["is_private"] = r.private
	o["owner"] = e.ownerJSON(s, r.ws)
	o["workspace"] = workspaceRef(s, r.ws, "workspace")
	o["project"] = projectJSON(s, r.ws)
	return o
}

// shortHash is how pull request ends name commits: 12 hex digits.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (e *Emulator) prEnd(s site, r *repo, branch string) map[string]any {
	hash := shortHash(r.refs[branchRef(branch)])
	return map[string]any{
		"commit": map[string]any{"hash": hash, "type": "commit",
			"links": map[string]any{"self": href(s.api() + "/repositories/" + repoPath(r) + "/commit/" + hash),
				"html": href(s.base + "/" + repoPath(r) + "/commits/" + hash)}},
		"branch":     map[string]any{"name": branch},
		"repository": repoRef(s, r),
	}
}

// prJSON is the pull request object of every pullrequest:* payload.
func (e *Emulator) prJSON(s site, pr *pullRequest) map[string]any {
	api := s.api() + "/repositories/" + repoPath(pr.dst) + fmt.Sprintf("/pullrequests/%d", pr.id)
	links := map[string]any{"self": href(api), "html": href(s.base + "/" + repoPath(pr.dst) + fmt.Sprintf("/pull-requests/%d", pr.id))}
	for _, l := range []string{"commits", "approve", "diff", "comments", "activity", "merge", "decline", "statuses"} {
		links[l] = href(api + "/" + l)
	}
	var merge, closedBy any
	if pr.mergeCommit != "" {
		merge = map[string]any{"hash": shortHash(pr.mergeCommit), "type": "commit"}
	}
	if pr.closedBy != nil {
		closedBy = userRef(s, pr.closedBy)
	}
	return map[string]any{
		"type":                "pullrequest",
		"id":                  pr.id,
		"title":               pr.title,
		"description":         pr.description,
		"summary":             map[string]any{"type": "rendered", "raw": pr.description, "markup": "markdown", "html": "<p>" + html.EscapeString(pr.description) + "</p>"},
		"state":               pr.state,
		"author":              userRef(s, pr.author),
		"source":              e.prEnd(s, pr.src, pr.srcBranch),
		"destination":         e.prEnd(s, pr.dst, pr.dstBranch),
		"merge_commit":        merge,
		"closed_by":           closedBy,
		"close_source_branch": false,
		"reason":              "",
		"comment_count":       pr.comments,
		"task_count":          0,
		"reviewers":           []any{},
		"participants":        []any{},
		"created_on":          fmtTime(pr.created),
		"updated_on":          fmtTime(pr.updated),
		"links":               links,
	}
}

// prEvent prepares a pullrequest:* event; extra adds the event's own
// object (approval, comment, changes_request). Callers hold e.mu.
func (e *Emulator) prEvent(pr *pullRequest, action string, actor *user, extra map[string]any) delivery {
	s := e.currentSite()
	body := map[string]any{"pullrequest": e.prJSON(s, pr), "actor": userRef(s, actor), "repository": e.payloadRepo(s, pr.dst)}
	for k, v := range extra {
		body[k] = v
	}
	return e.event(pr.dst, "pullrequest:"+action, body)
}

func (pr *pullRequest) public() PullRequest {
	return PullRequest{ID: pr.id, Title: pr.title, Description: pr.description,
		Source: pr.src.fullName() + ":" + pr.srcBranch, Destination: pr.dst.fullName() + ":" + pr.dstBranch,
		State: pr.state, SourceCommit: pr.src.refs[branchRef(pr.srcBranch)], MergeHash: pr.mergeCommit}
}

// OpenPullRequest opens a pull request from source's branch (a
// "workspace/slug" that may be a fork of fullName) into fullName's
// destination branch, by author, and delivers pullrequest:created.
func (e *Emulator) OpenPullRequest(fullName, source, sourceBranch, destBranch, title, author string) (EventResult, error) {
	e.mu.Lock()
	dst, src, a := e.repoByFullName(fullName), e.repoByFullName(source), e.userByName(author)
	switch {
	case dst == nil || src == nil:
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no repository %s or %s", fullName, source)
	case a == nil:
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no user %s", author)
	case src.refs[branchRef(sourceBranch)] == "":
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("%s has no branch %s", src.fullName(), sourceBranch)
	case dst.refs[branchRef(destBranch)] == "":
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("%s has no branch %s", dst.fullName(), destBranch)
	}
	now := time.Now()
	dst.nextPR++
	pr := &pullRequest{id: dst.nextPR, title: title, src: src, srcBranch: sourceBranch, dst: dst, dstBranch: destBranch,
		state: "OPEN", author: a, created: now, updated: now}
	dst.pulls = append(dst.pulls, pr)
	d := e.prEvent(pr, "created", a, nil)
	e.mu.Unlock()
	out, err := e.send(d)
	return EventResult{ID: pr.id, Deliveries: out}, err
}

// PullRequests lists fullName's pull requests.
func (e *Emulator) PullRequests(fullName string) []PullRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return nil
	}
	out := make([]PullRequest, 0, len(r.pulls))
	for _, pr := range r.pulls {
		out = append(out, pr.public())
	}
	return out
}

// prAction finds pull request id on fullName and actor, and runs act on it
// under the lock; act returns the events to deliver.
func (e *Emulator) prAction(fullName string, id int, actor string, act func(pr *pullRequest, a *user) ([]delivery, error)) (EventResult, error) {
	e.mu.Lock()
	r, a := e.repoByFullName(fullName), e.userByName(actor)
	if r == nil || a == nil {
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no repository %s or user %s", fullName, actor)
	}
	i := slices.IndexFunc(r.pulls, func(pr *pullRequest) bool { return pr.id == id })
	if i < 0 {
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("%s has no pull request #%d", fullName, id)
	}
	ds, err := act(r.pulls[i], a)
	e.mu.Unlock()
	if err != nil {
		return EventResult{}, err
	}
	out, err := e.send(ds...)
	return EventResult{ID: id, Deliveries: out}, err
}

func stillOpen(pr *pullRequest) error {
	if pr.state != "OPEN" {
		return fmt.Errorf("pull request #%d is %s", pr.id, strings.ToLower(pr.state))
	}
	return nil
}

// EditPullRequest changes a pull request's title and description: Bitbucket
// sends pullrequest:updated with the same source commit as before.
func (e *Emulator) EditPullRequest(fullName string, id int, title, description, actor string) (EventResult, error) {
	return e.prAction(fullName, id, actor, func(pr *pullRequest, a *user) ([]delivery, error) {
		pr.title, pr.description, pr.updated = title, description, time.Now()
		return []delivery{e.prEvent(pr, "updated", a, nil)}, nil
	})
}

// ReviewPullRequest approves ("approved"), withdraws the approval
// ("unapproved"), requests changes ("changes_request_created") or takes
// the request back ("changes_request_removed"), and delivers that event.
func (e *Emulator) ReviewPullRequest(fullName string, id int, action, actor string) (EventResult, error) {
	key := map[string]string{"approved": "approval", "unapproved": "approval",
		"changes_request_created": "changes_request", "changes_request_removed": "changes_request"}[action]
	if key == "" {
		return EventResult{}, fmt.Errorf("unknown review %q", action)
	}
	return e.prAction(fullName, id, actor, func(pr *pullRequest, a *user) ([]delivery, error) {
		if err := stillOpen(pr); err != nil {
			return nil, err
		}
		s := e.currentSite()
		return []delivery{e.prEvent(pr, action, a, map[string]any{key: map[string]any{"date": fmtTime(time.Now()), "user": userRef(s, a)}})}, nil
	})
}

// CommentPullRequest comments on a pull request: pullrequest:comment_created.
func (e *Emulator) CommentPullRequest(fullName string, id int, text, actor string) (EventResult, error) {
	return e.prAction(fullName, id, actor, func(pr *pullRequest, a *user) ([]delivery, error) {
		s := e.currentSite()
		pr.comments++
		now := fmtTime(time.Now())
		api := s.api() + "/repositories/" + repoPath(pr.dst) + fmt.Sprintf("/pullrequests/%d/comments/%d", pr.id, pr.comments)
		comment := map[string]any{
			"type": "pullrequest_comment", "id": pr.comments, "created_on": now, "updated_on": now, "deleted": false,
			"content": map[string]any{"type": "rendered", "raw": text, "markup": "markdown", "html": "<p>" + html.EscapeString(text) + "</p>"},
			"user":    userRef(s, a),
			"links":   map[string]any{"self": href(api), "html": href(s.base + "/" + repoPath(pr.dst) + fmt.Sprintf("/pull-requests/%d#comment-%d", pr.id, pr.comments))},
		}
		return []delivery{e.prEvent(pr, "comment_created", a, map[string]any{"comment": comment})}, nil
	})
}

// DeclinePullRequest declines a pull request: pullrequest:rejected.
func (e *Emulator) DeclinePullRequest(fullName string, id int, actor string) (EventResult, error) {
	return e.prAction(fullName, id, actor, func(pr *pullRequest, a *user) ([]delivery, error) {
		if err := stillOpen(pr); err != nil {
			return nil, err
		}
		pr.state, pr.closedBy, pr.updated = "DECLINED", a, time.Now()
		return []delivery{e.prEvent(pr, "rejected", a, nil)}, nil
	})
}

// MergePullRequest merges a pull request: a merge commit on the
// destination branch, pullrequest:fulfilled, then the destination's
// repo:push for that commit.
func (e *Emulator) MergePullRequest(fullName string, id int, actor string) (EventResult, error) {
	return e.prAction(fullName, id, actor, func(pr *pullRequest, a *user) ([]delivery, error) {
		if err := stillOpen(pr); err != nil {
			return nil, err
		}
		ref := branchRef(pr.dstBranch)
		old := pr.dst.refs[ref]
		srcHead := pr.src.refs[branchRef(pr.srcBranch)]
		if c := pr.src.commits[srcHead]; c != nil && pr.dst.commits[srcHead] == nil {
			pr.dst.commits[srcHead] = c // the fork's commits come along
		}
		c := pr.dst.newCommit(fmt.Sprintf("Merged in %s (pull request #%d)\n\n%s", pr.srcBranch, pr.id, pr.title), a, a.gitAuthor(), []string{old, srcHead})
		pr.dst.refs[ref] = c.hash
		pr.dst.updated = time.Now()
		pr.state, pr.closedBy, pr.mergeCommit, pr.updated = "MERGED", a, c.hash, time.Now()
		push := e.pushPayload(e.currentSite(), pr.dst, a, ref, old, c.hash)
		return []delivery{e.prEvent(pr, "fulfilled", a, nil), e.event(pr.dst, "repo:push", push)}, nil
	})
}

// sourceUpdates prepares pullrequest:updated for every open pull request
// whose source is r's branch, after a push moved it to a new commit.
// Callers hold e.mu.
func (e *Emulator) sourceUpdates(r *repo, branch string, actor *user) []delivery {
	var out []delivery
	for _, dst := range e.repos {
		for _, pr := range dst.pulls {
			if pr.src == r && pr.srcBranch == branch && pr.state == "OPEN" {
				pr.updated = time.Now()
				out = append(out, e.prEvent(pr, "updated", actor, nil))
			}
		}
	}
	return out
}

// ForkRepository forks fullName to workspace/slug for actor (an admin of
// the fork), copying its branches, and delivers repo:fork to the original's
// hooks.
func (e *Emulator) ForkRepository(fullName, workspace, slug, actor string) (EventResult, error) {
	e.mu.Lock()
	r, a := e.repoByFullName(fullName), e.userByName(actor)
	switch {
	case r == nil || a == nil:
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no repository %s or user %s", fullName, actor)
	case !validSlug(workspace) || !validSlug(slug):
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("invalid fork %s/%s", workspace, slug)
	}
	if w := e.workspaceBySlug(workspace); w != nil && e.repoByName(w, slug) != nil {
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("%s/%s already exists", workspace, slug)
	}
	f := e.addRepo(workspace, slug, r.private)
	f.perms[actor] = "admin"
	for k, v := range r.refs {
		f.refs[k] = v
	}
	for k, v := range r.commits {
		f.commits[k] = v
	}
	s := e.currentSite()
	d := e.event(r, "repo:fork", map[string]any{"actor": userRef(s, a), "repository": e.payloadRepo(s, r), "fork": e.payloadRepo(s, f)})
	e.mu.Unlock()
	out, err := e.send(d)
	return EventResult{Deliveries: out}, err
}

// DescribeRepository changes fullName's description and delivers
// repo:updated with what changed.
func (e *Emulator) DescribeRepository(fullName, description, actor string) (EventResult, error) {
	e.mu.Lock()
	r, a := e.repoByFullName(fullName), e.userByName(actor)
	if r == nil || a == nil {
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no repository %s or user %s", fullName, actor)
	}
	old := r.description
	r.description, r.updated = description, time.Now()
	s := e.currentSite()
	d := e.event(r, "repo:updated", map[string]any{"actor": userRef(s, a), "repository": e.payloadRepo(s, r),
		"changes": map[string]any{"description": map[string]any{"new": description, "old": old}}})
	e.mu.Unlock()
	out, err := e.send(d)
	return EventResult{Deliveries: out}, err
}

// SetCommitStatus reports a build status (state "INPROGRESS",
// "SUCCESSFUL", "FAILED" or "STOPPED") for key on fullName's branch head,
// as a CI system does: repo:commit_status_created the first time for a
// key, repo:commit_status_updated after.
func (e *Emulator) SetCommitStatus(fullName, branch, key, state, actor string) (EventResult, error) {
	e.mu.Lock()
	r, a := e.repoByFullName(fullName), e.userByName(actor)
	if r == nil || a == nil || r.refs[branchRef(branch)] == "" {
		e.mu.Unlock()
		return EventResult{}, fmt.Errorf("no branch %s on %s, or no user %s", branch, fullName, actor)
	}
	hash := r.refs[branchRef(branch)]
	if r.statuses == nil {
		r.statuses = map[string]bool{}
	}
	event := "repo:commit_status_created"
	if r.statuses[hash+" "+key] {
		event = "repo:commit_status_updated"
	}
	r.statuses[hash+" "+key] = true
	s := e.currentSite()
	now := fmtTime(time.Now())
	api := s.api() + "/repositories/" + repoPath(r) + "/commit/" + hash
	d := e.event(r, event, map[string]any{"actor": userRef(s, a), "repository": e.payloadRepo(s, r),
		"commit_status": map[string]any{"type": "build", "key": key, "name": key, "state": state, "description": "",
			"url": s.base + "/" + repoPath(r), "refname": branch, "created_on": now, "updated_on": now,
			"links": map[string]any{"self": href(api + "/statuses/build/" + seg(key)), "commit": href(api)}}})
	e.mu.Unlock()
	out, err := e.send(d)
	return EventResult{Deliveries: out}, err
}
