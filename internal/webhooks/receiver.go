// Package webhooks receives Bitbucket's webhook deliveries. Bitbucket waits
// at most 10 s for an answer, retries (up to twice) only on a 5xx, and
// sends payloads up to 256 KB. So a delivery is verified (hook, signature,
// payload), then written durably together with the workflows it starts
// before the 2xx; a 5xx means only "not stored, send it again"; a retry
// with the same X-Request-UUID is acknowledged and not processed twice, and
// so is the same body again within a day under a fresh X-Request-UUID (a
// replay). Concurrent deliveries share one commit (group commit), which
// keeps the answer well inside Bitbucket's timeout under load.
//
// The hook URL is public, so what an anonymous sender can make Tether do
// is bounded: a delivery to an unknown URL writes nothing; refusals for a
// real project are counted per project and reason (tether.Refusal) in
// memory and recorded a few times a second, so a stream of them costs a
// few rows in all and at most four commits a second; logs carry counts
// per minute, never what a request sent.
package webhooks

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/tether"
)

// MaxBody is the largest payload Bitbucket sends; anything above is refused.
const MaxBody = 256 << 10

// Grace is how long a hook replaced by Regenerate still has its deliveries
// accepted, for those already in flight when it was replaced.
const Grace = 10 * time.Minute

// answerWithin bounds how long a delivery waits for its commit, well inside
// Bitbucket's 10 s.
const answerWithin = 8 * time.Second

// summaryEvery is how often the receiver logs what it received.
const summaryEvery = time.Minute

// refusalsEvery is how often counted refusals are recorded.
const refusalsEvery = 250 * time.Millisecond

// maxToken bounds the hook URL's token (Tether makes 43-character ones).
const maxToken = 128

// Events Tether subscribes to.
var Events = []string{"repo:push", "pullrequest:created", "pullrequest:updated"}

// Why a delivery is refused: a fixed set, so one project's refusals count
// up under a handful of reasons whatever the requests carry.
const (
	ReasonTooLarge     = "payload larger than 256 KB"
	ReasonUnreadable   = "the body could not be read"
	ReasonLongHeader   = "header too long: X-Event-Key, X-Hook-UUID and X-Request-UUID have at most 64 characters"
	ReasonUnknownHook  = "unknown hook: X-Hook-UUID is not this project's webhook"
	ReasonNoSignature  = "missing signature: X-Hub-Signature is not set"
	ReasonBadSignature = "bad signature: X-Hub-Signature does not match the body"
	ReasonMalformed    = "malformed JSON"
	ReasonOtherRepo    = "the payload is for another repository"
	ReasonReplay       = "replay: this body was already accepted within 24 hours"
)

// missingHeader is the reason for a delivery without one of Bitbucket's
// headers (three fixed reasons, one per header).
func missingHeader(name string) string { return "missing header " + name }

// Store is the part of the database the receiver uses.
type Store interface {
	ProjectByHookToken(ctx context.Context, token string) (tether.Project, error)
	DeliveryHook(ctx context.Context, projectID int64, hookUUID string, retiredSince time.Time) (tether.Webhook, error)
	AcceptDeliveries(ctx context.Context, batch []tether.Accept) ([]tether.AcceptResult, error)
	RecordRefusals(ctx context.Context, refusals []tether.Refusal) error
}

// Receiver checks, stores and answers deliveries.
type Receiver struct {
	log   *slog.Logger
	store Store
	jobs  chan job
	// arriving counts deliveries being verified that will be queued, unless
	// refused, soon: a commit waits a little for them (gather).
	arriving atomic.Int64

	mu      sync.Mutex
	pending map[refusalKey]*tether.Refusal // refusals not yet recorded
	tally   tally                          // since the last summary
}

type refusalKey struct {
	projectID int64
	reason    string
}

// tally counts deliveries for the summary logged every minute.
type tally struct {
	accepted, duplicates, unknownURL int
	refused                          map[refusalKey]int
}

type job struct {
	accept tether.Accept
	done   chan tether.AcceptResult
}

// maxBatch bounds one group commit.
const maxBatch = 256

// New returns a receiver; Run must be running for deliveries to be stored.
func New(log *slog.Logger, store Store) *Receiver {
	return &Receiver{
		log: log, store: store,
		jobs:    make(chan job, maxBatch),
		pending: map[refusalKey]*tether.Refusal{},
		tally:   tally{refused: map[refusalKey]int{}},
	}
}

// Run commits accepted deliveries until ctx is done: it takes whatever is
// waiting, and what deliveries being verified add within gatherFor, up to
// maxBatch, and stores it in one transaction. Every
// refusalsEvery it records the refusals counted meanwhile, and every
// minute it logs what arrived. When ctx is done it stores what is still
// waiting, then returns.
func (r *Receiver) Run(ctx context.Context) {
	summary := time.NewTicker(summaryEvery)
	defer summary.Stop()
	refusals := time.NewTicker(refusalsEvery)
	defer refusals.Stop()
	store := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			r.commit(store, r.gather(nil))
			r.recordRefusals(store)
			r.summarize()
			return
		case j := <-r.jobs:
			r.commit(store, r.gather([]job{j}))
		case <-refusals.C:
			r.recordRefusals(store)
		case <-summary.C:
			r.summarize()
		}
	}
}

// gatherFor is how long a commit waits at most for deliveries still being
// verified. Each commit costs the same fsync and WAL writes however many
// deliveries share it; taking only those already queued, a commit under
// load went out every few deliveries, and on two cores that fixed cost
// took CPU from the deliveries themselves. A lone delivery never waits.
const gatherFor = time.Millisecond

// gather adds to batch the jobs already queued and those of the deliveries
// still being verified, waiting up to gatherFor for them, up to maxBatch.
// Each job taken is no longer arriving.
func (r *Receiver) gather(batch []job) []job {
	r.arriving.Add(-int64(len(batch)))
	var timeout <-chan time.Time
	for len(batch) < maxBatch {
		select {
		case j := <-r.jobs:
			r.arriving.Add(-1)
			batch = append(batch, j)
			continue
		default:
		}
		if r.arriving.Load() <= 0 {
			return batch
		}
		if timeout == nil {
			timer := time.NewTimer(gatherFor)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case j := <-r.jobs:
			r.arriving.Add(-1)
			batch = append(batch, j)
		case <-timeout:
			return batch
		}
	}
	return batch
}

// commit stores batch in one transaction and answers each job.
func (r *Receiver) commit(ctx context.Context, batch []job) {
	if len(batch) == 0 {
		return
	}
	accepts := make([]tether.Accept, len(batch))
	for i, j := range batch {
		accepts[i] = j.accept
	}
	results, err := r.store.AcceptDeliveries(ctx, accepts)
	for i, j := range batch {
		if err != nil {
			j.done <- tether.AcceptResult{Err: err}
		} else {
			j.done <- results[i]
		}
	}
}

// recordRefusals writes the refusals counted since it last ran.
func (r *Receiver) recordRefusals(ctx context.Context) {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		return
	}
	pending := r.pending
	r.pending = map[refusalKey]*tether.Refusal{}
	r.mu.Unlock()
	refusals := make([]tether.Refusal, 0, len(pending))
	for _, f := range pending {
		refusals = append(refusals, *f)
	}
	if err := r.store.RecordRefusals(ctx, refusals); err != nil {
		r.log.Error("record refused deliveries", "err", err)
	}
}

// summarize logs what arrived since the last summary: one line of counts,
// and one per project and reason refused.
func (r *Receiver) summarize() {
	r.mu.Lock()
	t := r.tally
	r.tally = tally{refused: map[refusalKey]int{}}
	r.mu.Unlock()
	if t.accepted+t.duplicates+t.unknownURL > 0 {
		r.log.Info("webhook deliveries", "accepted", t.accepted, "duplicates", t.duplicates,
			"to_unknown_url", t.unknownURL, "period", summaryEvery)
	}
	for k, n := range t.refused {
		r.log.Warn("webhook deliveries refused", "project_id", k.projectID, "reason", k.reason, "count", n, "period", summaryEvery)
	}
}

// Answer is what the receiver replies to Bitbucket.
type Answer struct {
	Status  int
	Message string
}

// refusal is a delivery Tether will not process, and why: reason is one
// of the fixed Reason… values; detail, if any, only goes in the answer.
type refusal struct {
	status int
	reason string
	detail string
}

func (f *refusal) Error() string { return f.reason }

// Receive handles one delivery to the hook URL ending in token.
func (r *Receiver) Receive(ctx context.Context, token string, h http.Header, body io.Reader) Answer {
	d := tether.Delivery{
		RequestUUID: strings.TrimSpace(h.Get("X-Request-UUID")),
		HookUUID:    strings.TrimSpace(h.Get("X-Hook-UUID")),
		EventKey:    strings.TrimSpace(h.Get("X-Event-Key")),
	}
	d.Attempt, _ = strconv.Atoi(h.Get("X-Attempt-Number"))
	r.arriving.Add(1)
	accept, err := r.verify(ctx, token, h, body, &d)
	if err != nil {
		r.arriving.Add(-1) // refused: it will not be queued
	}
	var ref *refusal
	switch {
	case errors.Is(err, tether.ErrNotFound):
		r.count(func(t *tally) { t.unknownURL++ })
		return Answer{http.StatusNotFound, "Refused: no project has this webhook URL."}
	case errors.As(err, &ref):
		return r.refuse(d, ref)
	case err != nil:
		r.log.Error("webhook delivery could not be checked", "project_id", d.ProjectID, "err", err)
		return Answer{http.StatusServiceUnavailable, "Tether could not check this delivery; please retry."}
	}
	return r.store1(ctx, accept)
}

// readBody reads at most MaxBody+1 bytes of body, into a buffer sized
// from its Content-Length when that is given and within MaxBody (read at
// once instead of grown from 512 bytes); the length is only a hint.
func readBody(body io.Reader, contentLength string) ([]byte, error) {
	var buf bytes.Buffer
	if n, err := strconv.Atoi(contentLength); err == nil && n > 0 && n <= MaxBody {
		buf.Grow(n + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(body, MaxBody+1))
	return buf.Bytes(), err
}

// verify reads and checks the delivery and turns it into what to store.
// A URL that is no project's is tether.ErrNotFound.
func (r *Receiver) verify(ctx context.Context, token string, h http.Header, body io.Reader, d *tether.Delivery) (tether.Accept, error) {
	if token == "" || len(token) > maxToken {
		return tether.Accept{}, tether.ErrNotFound
	}
	p, err := r.store.ProjectByHookToken(ctx, token)
	if err != nil {
		return tether.Accept{}, err
	}
	d.ProjectID = p.ID
	raw, err := readBody(body, h.Get("Content-Length"))
	d.Size = len(raw)
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &big) || len(raw) > MaxBody:
		return tether.Accept{}, &refusal{status: http.StatusRequestEntityTooLarge, reason: ReasonTooLarge}
	case err != nil:
		return tether.Accept{}, &refusal{status: http.StatusBadRequest, reason: ReasonUnreadable}
	}
	for _, name := range []string{"X-Event-Key", "X-Hook-UUID", "X-Request-UUID"} {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return tether.Accept{}, &refusal{status: http.StatusBadRequest, reason: missingHeader(name)}
		}
		if len(v) > tether.MaxSampleField {
			return tether.Accept{}, &refusal{status: http.StatusBadRequest, reason: ReasonLongHeader}
		}
	}
	hook, err := r.store.DeliveryHook(ctx, p.ID, d.HookUUID, time.Now().Add(-Grace))
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Accept{}, &refusal{status: http.StatusForbidden, reason: ReasonUnknownHook}
	}
	if err != nil {
		return tether.Accept{}, err
	}
	sig := h.Get("X-Hub-Signature")
	if sig == "" {
		return tether.Accept{}, &refusal{status: http.StatusUnauthorized, reason: ReasonNoSignature}
	}
	if !bitbucket.VerifySignature([]byte(hook.Secret), raw, sig) {
		return tether.Accept{}, &refusal{status: http.StatusUnauthorized, reason: ReasonBadSignature}
	}
	workflows, note, err := workflowsOf(d.EventKey, raw, p)
	if err != nil {
		return tether.Accept{}, err
	}
	d.Reason = note
	sum := sha256.Sum256(raw)
	return tether.Accept{Delivery: *d, BodySHA256: sum[:], Workflows: workflows}, nil
}

// workflowsOf turns a verified payload into the workflows it would start
// and a note on each part that starts none, for the delivery's reason.
// Every event Bitbucket documents is read for what it is (the Bitbucket
// Cloud "Event payloads" page): only repo:push and an open pull request's
// created/updated name code to build; the others — approvals, comments,
// merges, declines, forks, settings, build statuses, issues — are
// answered 2xx with a note and start nothing. A payload about another
// repository is refused; for a pull request that is the destination
// (where the hook lives), while the source may be a fork.
func workflowsOf(event string, raw []byte, p tether.Project) ([]tether.Workflow, string, error) {
	var (
		out   []tether.Workflow
		notes []string
	)
	malformed := func(err error) error {
		return &refusal{status: http.StatusBadRequest, reason: ReasonMalformed, detail: err.Error()}
	}
	switch {
	case event == "repo:push":
		push, err := bitbucket.ParsePush(raw)
		if err != nil {
			return nil, "", malformed(err)
		}
		if !sameRepo(push.Repository, p) {
			return nil, "", &refusal{status: http.StatusBadRequest, reason: ReasonOtherRepo}
		}
		out, notes = pushWorkflows(push)
	case strings.HasPrefix(event, "pullrequest:"):
		pr, err := bitbucket.ParsePullRequest(raw)
		if err != nil {
			return nil, "", malformed(err)
		}
		target := pr.Destination.Repository
		if target.UUID == "" {
			target = pr.Repository
		}
		if !sameRepo(target, p) {
			return nil, "", &refusal{status: http.StatusBadRequest, reason: ReasonOtherRepo}
		}
		w, note := pullRequestWorkflow(event, pr)
		if note != "" {
			notes = append(notes, note)
		} else {
			out = append(out, w)
		}
	default:
		env, err := bitbucket.ParseEnvelope(raw)
		if err != nil {
			return nil, "", malformed(err)
		}
		if env.Repository.UUID != "" && !sameRepo(env.Repository, p) {
			return nil, "", &refusal{status: http.StatusBadRequest, reason: ReasonOtherRepo}
		}
		notes = append(notes, otherEvent(event, env))
	}
	return out, tether.JoinReasons(notes), nil
}

func sameRepo(r bitbucket.RepoRef, p tether.Project) bool {
	return strings.EqualFold(r.UUID, p.RepoUUID)
}

// pushWorkflows reads a push's changes: a branch or tag that points at a
// commit is a workflow; a deleted ref, a change naming no ref, a ref that
// is neither branch nor tag, or an empty list of changes is a note.
func pushWorkflows(push bitbucket.Push) ([]tether.Workflow, []string) {
	if len(push.Changes) == 0 {
		return nil, []string{"the push lists no branch or tag changes"}
	}
	var out []tether.Workflow
	var notes []string
	for _, c := range push.Changes {
		switch {
		case c.New == nil && c.Old == nil:
			notes = append(notes, "a change names no branch or tag (new and old are both null)")
		case c.New == nil:
			notes = append(notes, refWords(c.Old)+" deleted")
		case c.New.Type != "branch" && c.New.Type != "tag":
			notes = append(notes, fmt.Sprintf("%s is a %s, not a branch or tag", clipName(c.New.Name), clipName(c.New.Type)))
		case c.New.Target.Hash == "":
			notes = append(notes, refWords(c.New)+" names no commit")
		default:
			out = append(out, tether.Workflow{Trigger: tether.TriggerPush, RefType: c.New.Type, RefName: c.New.Name,
				CommitHash: strings.ToLower(c.New.Target.Hash), Message: c.New.Target.Message, Author: c.New.Target.Author, CommittedAt: c.New.Target.Date})
		}
	}
	return out, notes
}

func refWords(r *bitbucket.Ref) string { return clipName(r.Type) + " " + clipName(r.Name) }

// clipName keeps a name from a payload short enough for a reason.
func clipName(s string) string {
	if len(s) > 60 {
		return s[:57] + "…"
	}
	return s
}

// pullRequestWorkflow is the workflow a pull request event starts, or the
// note on why it starts none. Only created and updated on an open pull
// request name a commit to build; the source commit decides whether it
// is new (a title or description edit names the one already built).
func pullRequestWorkflow(event string, pr bitbucket.PullRequest) (tether.Workflow, string) {
	n := fmt.Sprintf("pull request #%d", pr.ID)
	action := strings.TrimPrefix(event, "pullrequest:")
	switch action {
	case "created", "updated":
	case "approved":
		return tether.Workflow{}, n + " approved: an approval is not a code change"
	case "unapproved":
		return tether.Workflow{}, n + ": approval removed, not a code change"
	case "changes_request_created", "changes_request_removed":
		return tether.Workflow{}, n + ": a change request is not a code change"
	case "fulfilled":
		return tether.Workflow{}, n + " merged: the merge commit arrives as a repo:push"
	case "rejected":
		return tether.Workflow{}, n + " declined: nothing to build"
	case "comment_created", "comment_updated", "comment_deleted", "comment_resolved", "comment_reopened":
		return tether.Workflow{}, "a comment on " + n + " is not a code change"
	default:
		return tether.Workflow{}, clipName(event) + " on " + n + " is not a code change"
	}
	switch {
	case pr.State != "" && !strings.EqualFold(pr.State, "OPEN"):
		return tether.Workflow{}, fmt.Sprintf("%s is %s: nothing to build", n, strings.ToLower(clipName(pr.State)))
	case pr.FromFork():
		return tether.Workflow{}, fmt.Sprintf("%s comes from the fork %s: its commits are not in this repository, so the deploy key cannot read them",
			n, clipName(pr.Source.Repository.FullName))
	case pr.Source.Commit == "" || pr.Source.Branch == "":
		return tether.Workflow{}, n + " names no source branch and commit"
	}
	return tether.Workflow{Trigger: tether.TriggerPullRequest, RefType: "branch", RefName: pr.Source.Branch,
		CommitHash: strings.ToLower(pr.Source.Commit), Message: fmt.Sprintf("#%d %s", pr.ID, pr.Title), Author: pr.Actor.DisplayName, CommittedAt: pr.UpdatedOn}, ""
}

// otherEvent is the note for an event that is not a push or a pull
// request: none names code to build.
func otherEvent(event string, env bitbucket.Envelope) string {
	switch event {
	case "repo:fork":
		return "the repository was forked to " + clipName(cmp.Or(env.Fork.FullName, "another repository")) + ": a fork's pushes reach its own webhooks"
	case "repo:updated":
		if len(env.Changed) > 0 {
			return "the repository's settings changed (" + clipName(strings.Join(env.Changed, ", ")) + "): not a code change"
		}
		return "the repository's settings changed: not a code change"
	case "repo:transfer":
		return "the repository was transferred to another workspace: not a code change (Tether follows moves by UUID)"
	case "repo:commit_comment_created":
		return "a commit comment is not a code change"
	case "repo:commit_status_created", "repo:commit_status_updated":
		return "a build status (" + clipName(env.Status.Key) + ": " + clipName(strings.ToLower(env.Status.State)) + ") is not a code change"
	case "repo:created", "repo:imported", "repo:deleted":
		return clipName(event) + ": not a code change"
	}
	if strings.HasPrefix(event, "issue:") {
		return "an issue event is not a code change"
	}
	return clipName(event) + " is not an event Tether builds from"
}

// count changes the tally under the lock.
func (r *Receiver) count(change func(*tally)) {
	r.mu.Lock()
	change(&r.tally)
	r.mu.Unlock()
}

// note counts a refused delivery of a project into the pending refusals.
func (r *Receiver) note(d tether.Delivery, reason string) {
	now := time.Now().UTC()
	one := tether.Refusal{ProjectID: d.ProjectID, Reason: reason, Count: 1, FirstSeen: now, LastSeen: now,
		Samples: []tether.RefusalSample{{At: now, RequestUUID: sampleField(d.RequestUUID), HookUUID: sampleField(d.HookUUID),
			EventKey: sampleField(d.EventKey), Attempt: d.Attempt, Size: d.Size}}}
	k := refusalKey{d.ProjectID, reason}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.pending[k]; ok {
		f.Add(one)
	} else {
		r.pending[k] = &one
	}
	r.tally.refused[k]++
}

// sampleField keeps what a header said as printable ASCII, cut to
// tether.MaxSampleField characters.
func sampleField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < tether.MaxSampleField; i++ {
		if c := s[i]; c >= ' ' && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// refuse counts a refused delivery and says why; it never starts a
// workflow.
func (r *Receiver) refuse(d tether.Delivery, f *refusal) Answer {
	r.note(d, f.reason)
	msg := "Refused: " + f.reason
	if f.detail != "" {
		msg += ": " + f.detail
	}
	return Answer{f.status, msg + "."}
}

// store1 hands an accepted delivery to the group commit and waits for it.
func (r *Receiver) store1(ctx context.Context, a tether.Accept) Answer {
	j := job{accept: a, done: make(chan tether.AcceptResult, 1)}
	ctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	select {
	case r.jobs <- j:
	case <-ctx.Done():
		r.arriving.Add(-1)
		return Answer{http.StatusServiceUnavailable, "Tether is busy and did not store this delivery; please retry."}
	}
	select {
	case res := <-j.done:
		switch {
		case res.Err != nil:
			r.log.Error("store delivery", "project_id", a.Delivery.ProjectID, "err", res.Err)
			return Answer{http.StatusServiceUnavailable, "Tether could not store this delivery; please retry."}
		case res.Replay:
			// Acknowledged, so the sender stops; counted, so the project
			// shows someone sent it again.
			r.note(a.Delivery, ReasonReplay)
			return Answer{http.StatusOK, "Already received (the same payload within 24 hours); not processed again."}
		case res.Duplicate:
			r.count(func(t *tally) { t.duplicates++ })
			return Answer{http.StatusOK, "Already received; not processed again."}
		}
		r.count(func(t *tally) { t.accepted++ })
		msg := fmt.Sprintf("Accepted: %d workflow(s) started.", res.Started)
		if res.Reason != "" {
			msg = fmt.Sprintf("Accepted: %d workflow(s) started; %s.", res.Started, res.Reason)
		}
		return Answer{http.StatusAccepted, msg}
	case <-ctx.Done():
		// The commit may still land; a retry is then acknowledged as a
		// duplicate, so answering 5xx here loses nothing.
		return Answer{http.StatusServiceUnavailable, "Tether did not finish storing this delivery in time; please retry."}
	}
}
