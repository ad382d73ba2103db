package emulator

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Webhook delivery as Bitbucket does it: one POST per subscribed hook, 10 s
// per attempt, retried on a 5xx or no answer, three attempts in all.
const (
	deliveryTimeout  = 10 * time.Second
	deliveryAttempts = 3
	keptDeliveries   = 50
)

type commit struct {
	hash    string
	message string
	author  *user  // nil when the author maps to no Bitbucket user
	raw     string // "Name <email>"
	date    time.Time
	parents []string
}

func branchRef(name string) string { return "refs/heads/" + name }
func tagRef(name string) string    { return "refs/tags/" + name }

// newCommit records a commit with a fresh hash; its content is imaginary,
// only its metadata travels in payloads and ref advertisements.
func (r *repo) newCommit(message string, author *user, raw string, parents []string) *commit {
	if !strings.HasSuffix(message, "\n") {
		message += "\n"
	}
	sum := sha1.Sum([]byte(r.uuid + message + raw + strings.Join(parents, ",") + randomToken(8)))
	c := &commit{hash: hex.EncodeToString(sum[:]), message: message, author: author, raw: raw,
		date: time.Now().UTC().Truncate(time.Second), parents: parents}
	r.commits[c.hash] = c
	return c
}

// PushResult reports what a push changed and how its webhook deliveries
// went.
type PushResult struct {
	Ref        string // "refs/heads/main" or "refs/tags/v1"
	Old, New   string // commit hashes, "" when the ref did not exist / was deleted
	Deliveries []Delivery
}

// Delivery is the outcome of delivering one event to one hook.
type Delivery struct {
	HookUUID    string
	URL         string
	RequestUUID string // the same on every attempt
	Attempts    int
	Status      int    // HTTP status of the last attempt, 0 if it got no answer
	Error       string // why the last attempt got no answer
}

// DeliveryLog is a delivery as the control page lists it.
type DeliveryLog struct {
	Delivery
	Repository, Event string
	At                time.Time
}

// Push moves (or creates) a branch to a new commit by author (a username)
// and delivers repo:push to the repository's active hooks that subscribe to
// it, waiting for the deliveries.
func (e *Emulator) Push(fullName, branch, message, author string) (PushResult, error) {
	return e.changeRef(fullName, branchRef(branch), author, func(r *repo, a *user, old string) (string, error) {
		parent := old
		if parent == "" {
			parent = r.refs[branchRef(r.mainbranch)]
		}
		var parents []string
		if parent != "" {
			parents = []string{parent}
		}
		return r.newCommit(message, a, a.gitAuthor(), parents).hash, nil
	})
}

// PushTag creates a tag on the main branch's head and delivers repo:push.
func (e *Emulator) PushTag(fullName, tag, author string) (PushResult, error) {
	return e.changeRef(fullName, tagRef(tag), author, func(r *repo, _ *user, old string) (string, error) {
		if old != "" {
			return "", fmt.Errorf("tag %s already exists", tag)
		}
		head := r.refs[branchRef(r.mainbranch)]
		if head == "" {
			return "", fmt.Errorf("%s has no %s branch to tag", r.fullName(), r.mainbranch)
		}
		return head, nil
	})
}

// DeleteBranch deletes a branch and delivers repo:push with "new": null.
func (e *Emulator) DeleteBranch(fullName, branch, author string) (PushResult, error) {
	return e.changeRef(fullName, branchRef(branch), author, deleteRef)
}

// DeleteTag deletes a tag and delivers repo:push with "new": null.
func (e *Emulator) DeleteTag(fullName, tag, author string) (PushResult, error) {
	return e.changeRef(fullName, tagRef(tag), author, deleteRef)
}

func deleteRef(_ *repo, _ *user, old string) (string, error) {
	if old == "" {
		return "", errors.New("no such ref")
	}
	return "", nil
}

// changeRef updates ref to what move returns ("" deletes it), builds the
// repo:push payload under the lock and delivers it after releasing it.
func (e *Emulator) changeRef(fullName, ref, author string, move func(r *repo, a *user, old string) (string, error)) (PushResult, error) {
	e.mu.Lock()
	r := e.repoByFullName(fullName)
	a := e.userByName(author)
	switch {
	case r == nil:
		e.mu.Unlock()
		return PushResult{}, fmt.Errorf("no repository %s", fullName)
	case a == nil:
		e.mu.Unlock()
		return PushResult{}, fmt.Errorf("no user %s", author)
	case strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/") == "":
		e.mu.Unlock()
		return PushResult{}, errors.New("a branch or tag name is required")
	}
	old := r.refs[ref]
	next, err := move(r, a, old)
	if err != nil {
		e.mu.Unlock()
		return PushResult{}, fmt.Errorf("%s %s: %w", fullName, ref, err)
	}
	if next == "" {
		delete(r.refs, ref)
	} else {
		r.refs[ref] = next
	}
	r.updated = time.Now()
	events := []delivery{e.event(r, "repo:push", e.pushPayload(e.currentSite(), r, a, ref, old, next))}
	if branch, ok := strings.CutPrefix(ref, "refs/heads/"); ok && next != "" {
		// Open pull requests from this branch now have a new source commit.
		events = append(events, e.sourceUpdates(r, branch, a)...)
	}
	e.mu.Unlock()

	out, err := e.send(events...)
	return PushResult{Ref: ref, Old: old, New: next, Deliveries: out}, err
}

// deliver posts body to every hook concurrently, so one slow receiver does
// not delay the others, and returns once all are done.
func (e *Emulator) deliver(fullName, event string, body []byte, hooks []Hook) []Delivery {
	out := make([]Delivery, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Go(func() { out[i] = e.deliverOne(event, body, h) })
	}
	wg.Wait()
	e.mu.Lock()
	for _, d := range out {
		e.deliveries = append([]DeliveryLog{{Delivery: d, Repository: fullName, Event: event, At: time.Now()}}, e.deliveries...)
	}
	if len(e.deliveries) > keptDeliveries {
		e.deliveries = e.deliveries[:keptDeliveries]
	}
	e.mu.Unlock()
	return out
}

func (e *Emulator) deliverOne(event string, body []byte, h Hook) Delivery {
	d := Delivery{HookUUID: h.UUID, URL: h.URL, RequestUUID: uuid.NewString()}
	for attempt := 1; attempt <= deliveryAttempts; attempt++ {
		if attempt > 1 {
			time.Sleep(e.cfg.RetryBackoff)
		}
		d.Attempts = attempt
		d.Status, d.Error = e.post(event, body, h, d.RequestUUID, attempt)
		if d.Status != 0 && d.Status < 500 {
			break
		}
	}
	return d
}

func (e *Emulator) post(event string, body []byte, h Hook, requestUUID string, attempt int) (int, string) {
	req, err := http.NewRequest(http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
	req.Header.Set("X-Event-Key", event)
	req.Header.Set("X-Hook-UUID", strings.Trim(h.UUID, "{}"))
	req.Header.Set("X-Request-UUID", requestUUID)
	req.Header.Set("X-Attempt-Number", fmt.Sprint(attempt))
	if h.Secret != "" {
		mac := hmac.New(sha256.New, []byte(h.Secret))
		mac.Write(body)
		req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := e.hookClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)) // drained only to reuse the connection
	return resp.StatusCode, ""
}

// pushPayload builds a repo:push body shaped like recorded/webhook_push*.json.
func (e *Emulator) pushPayload(s site, r *repo, actor *user, ref, old, next string) map[string]any {
	name := strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
	isTag := strings.HasPrefix(ref, "refs/tags/")
	api := s.api() + "/repositories/" + repoPath(r)
	web := s.base + "/" + repoPath(r)
	change := map[string]any{
		"forced":    false,
		"truncated": false,
		"created":   old == "",
		"closed":    next == "",
		"old":       e.refJSON(s, r, name, isTag, old),
		"new":       e.refJSON(s, r, name, isTag, next),
	}
	switch {
	case old != "" && next != "":
		change["links"] = map[string]any{
			"commits": href(api + "/commits?include=" + next + "&exclude=" + old),
			"html":    href(web + "/branches/compare/" + next + ".." + old),
			"diff":    href(api + "/diff/" + next + ".." + old),
		}
	case next != "" && isTag:
		change["links"] = map[string]any{"commits": href(api + "/commits?include=" + next)}
	case next != "":
		change["links"] = map[string]any{
			"commits": href(api + "/commits?include=" + next),
			"html":    href(web + "/branch/" + name),
		}
	}
	if next != "" && !isTag {
		// The pushed commits, with the fuller links Bitbucket gives them.
		c := e.commitJSON(s, r, r.commits[next])
		links := c["links"].(map[string]any)
		commitAPI := api + "/commit/" + next
		links["comments"] = href(commitAPI + "/comments")
		links["approve"] = href(commitAPI + "/approve")
		links["statuses"] = href(commitAPI + "/statuses")
		links["patch"] = href(api + "/patch/" + next)
		links["diff"] = href(api + "/diff/" + next)
		change["commits"] = []any{c}
	}
	return map[string]any{
		"push":       map[string]any{"changes": []any{change}},
		"repository": e.payloadRepo(s, r),
		"actor":      userRef(s, actor),
	}
}

// refJSON is the old/new side of a change: a branch or tag pointing at a
// commit, or null.
func (e *Emulator) refJSON(s site, r *repo, name string, isTag bool, hash string) any {
	if hash == "" {
		return nil
	}
	api := s.api() + "/repositories/" + repoPath(r)
	web := s.base + "/" + repoPath(r)
	o := map[string]any{"name": name, "target": e.commitJSON(s, r, r.commits[hash])}
	if isTag {
		o["type"] = "tag"
		o["tagger"] = nil
		o["date"] = nil
		o["message"] = nil
		o["links"] = map[string]any{
			"commits": href(api + "/commits/" + name),
			"self":    href(api + "/refs/tags/" + name),
			"html":    href(web + "/commits/tag/" + name),
		}
	} else {
		o["type"] = "branch"
		o["links"] = map[string]any{
			"commits": href(api + "/commits/" + name),
			"self":    href(api + "/refs/branches/" + name),
			"html":    href(web + "/branch/" + name),
		}
	}
	return o
}

func commitLinks(s site, r *repo, hash string) map[string]any {
	return map[string]any{
		"self": href(s.api() + "/repositories/" + repoPath(r) + "/commit/" + hash),
		"html": href(s.base + "/" + repoPath(r) + "/commits/" + hash),
	}
}

// commitJSON describes a commit, with its parents as short references as
// Bitbucket does.
func (e *Emulator) commitJSON(s site, r *repo, c *commit) map[string]any {
	author := map[string]any{"type": "author", "raw": c.raw}
	if c.author != nil {
		author["user"] = userRef(s, c.author)
	}
	o := map[string]any{
		"type":    "commit",
		"hash":    c.hash,
		"links":   commitLinks(s, r, c.hash),
		"author":  author,
		"message": c.message,
		"date":    c.date.Format("2006-01-02T15:04:05-07:00"),
		"summary": map[string]any{
			"type":   "rendered",
			"raw":    c.message,
			"markup": "markdown",
			"html":   "<p>" + html.EscapeString(strings.TrimSpace(c.message)) + "</p>",
		},
	}
	parents := []any{}
	for _, p := range c.parents {
		parents = append(parents, map[string]any{"type": "commit", "hash": p, "links": commitLinks(s, r, p)})
	}
	o["parents"] = parents
	return o
}
