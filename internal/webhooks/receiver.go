// Package webhooks receives Bitbucket's webhook deliveries. Bitbucket waits
// at most 10 s for an answer, retries (up to twice) only on a 5xx, and
// sends payloads up to 256 KB. So a delivery is verified (hook, signature,
// payload), then written durably together with the workflows it starts
// before the 2xx; a 5xx means only "not stored, send it again"; a retry
// with the same X-Request-UUID is acknowledged and not processed twice.
// Concurrent deliveries share one commit (group commit), which keeps the
// answer well inside Bitbucket's timeout under load.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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

// Events Tether subscribes to.
var Events = []string{"repo:push", "pullrequest:created", "pullrequest:updated"}

// Store is the part of the database the receiver uses.
type Store interface {
	ProjectByHookToken(ctx context.Context, token string) (tether.Project, error)
	DeliveryHook(ctx context.Context, projectID int64, hookUUID string, retiredSince time.Time) (tether.Webhook, error)
	AcceptDeliveries(ctx context.Context, batch []tether.Accept) ([]tether.AcceptResult, error)
	RefuseDelivery(ctx context.Context, d tether.Delivery) error
}

// Receiver checks, stores and answers deliveries.
type Receiver struct {
	log   *slog.Logger
	store Store
	jobs  chan job
}

type job struct {
	accept tether.Accept
	done   chan tether.AcceptResult
}

// maxBatch bounds one group commit.
const maxBatch = 256

// New returns a receiver; Run must be running for deliveries to be stored.
func New(log *slog.Logger, store Store) *Receiver {
	return &Receiver{log: log, store: store, jobs: make(chan job, maxBatch)}
}

// Run commits accepted deliveries until ctx is done: it takes whatever is
// waiting, up to maxBatch, and stores it in one transaction.
func (r *Receiver) Run(ctx context.Context) {
	for {
		var first job
		select {
		case <-ctx.Done():
			return
		case first = <-r.jobs:
		}
		batch := []job{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-r.jobs:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		accepts := make([]tether.Accept, len(batch))
		for i, j := range batch {
			accepts[i] = j.accept
		}
		results, err := r.store.AcceptDeliveries(context.WithoutCancel(ctx), accepts)
		for i, j := range batch {
			if err != nil {
				j.done <- tether.AcceptResult{Err: err}
			} else {
				j.done <- results[i]
			}
		}
	}
}

// Answer is what the receiver replies to Bitbucket.
type Answer struct {
	Status  int
	Message string
}

// refusal is a delivery Tether will not process, and why.
type refusal struct {
	status int
	reason string
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
	accept, err := r.verify(ctx, token, h, body, &d)
	var ref *refusal
	if errors.As(err, &ref) {
		return r.refuse(ctx, d, ref)
	}
	if err != nil {
		r.log.Error("webhook delivery could not be checked", "project_id", d.ProjectID, "request_uuid", d.RequestUUID, "err", err)
		return Answer{http.StatusServiceUnavailable, "Tether could not check this delivery; please retry."}
	}
	return r.store1(ctx, accept)
}

// verify reads and checks the delivery and turns it into what to store.
func (r *Receiver) verify(ctx context.Context, token string, h http.Header, body io.Reader, d *tether.Delivery) (tether.Accept, error) {
	p, err := r.store.ProjectByHookToken(ctx, token)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Accept{}, &refusal{http.StatusNotFound, "no project has this webhook URL"}
	}
	if err != nil {
		return tether.Accept{}, err
	}
	d.ProjectID = p.ID
	raw, err := io.ReadAll(io.LimitReader(body, MaxBody+1))
	d.Size = len(raw)
	switch {
	case err != nil:
		return tether.Accept{}, &refusal{http.StatusBadRequest, "the body could not be read"}
	case len(raw) > MaxBody:
		return tether.Accept{}, &refusal{http.StatusRequestEntityTooLarge, "payload larger than 256 KB"}
	}
	for _, name := range []string{"X-Event-Key", "X-Hook-UUID", "X-Request-UUID"} {
		if strings.TrimSpace(h.Get(name)) == "" {
			return tether.Accept{}, &refusal{http.StatusBadRequest, "missing header " + name}
		}
	}
	hook, err := r.store.DeliveryHook(ctx, p.ID, d.HookUUID, time.Now().Add(-Grace))
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Accept{}, &refusal{http.StatusForbidden, "unknown hook: X-Hook-UUID is not this project's webhook"}
	}
	if err != nil {
		return tether.Accept{}, err
	}
	sig := h.Get("X-Hub-Signature")
	if sig == "" {
		return tether.Accept{}, &refusal{http.StatusUnauthorized, "missing signature: X-Hub-Signature is not set"}
	}
	if !bitbucket.VerifySignature([]byte(hook.Secret), raw, sig) {
		return tether.Accept{}, &refusal{http.StatusUnauthorized, "bad signature: X-Hub-Signature does not match the body"}
	}
	workflows, note, err := workflowsOf(d.EventKey, raw, p)
	if err != nil {
		return tether.Accept{}, err
	}
	d.Reason = note
	return tether.Accept{Delivery: *d, Workflows: workflows}, nil
}

// workflowsOf turns a verified payload into the workflows it starts.
func workflowsOf(event string, raw []byte, p tether.Project) ([]tether.Workflow, string, error) {
	var (
		repoUUID string
		out      []tether.Workflow
	)
	switch event {
	case "repo:push":
		push, err := bitbucket.ParsePush(raw)
		if err != nil {
			return nil, "", &refusal{http.StatusBadRequest, "malformed JSON: " + err.Error()}
		}
		repoUUID = push.Repository.UUID
		for _, c := range push.Changes {
			if c.New == nil || (c.New.Type != "branch" && c.New.Type != "tag") {
				continue // a deletion starts nothing
			}
			out = append(out, tether.Workflow{Trigger: "push", RefType: c.New.Type, RefName: c.New.Name,
				CommitHash: c.New.Target.Hash, Message: c.New.Target.Message, Author: c.New.Target.Author, CommittedAt: c.New.Target.Date})
		}
	case "pullrequest:created", "pullrequest:updated":
		pr, err := bitbucket.ParsePullRequest(raw)
		if err != nil {
			return nil, "", &refusal{http.StatusBadRequest, "malformed JSON: " + err.Error()}
		}
		repoUUID = pr.Repository.UUID
		out = append(out, tether.Workflow{Trigger: "pull_request", RefType: "branch", RefName: pr.Source.Name,
			CommitHash: pr.Source.Target.Hash, Message: fmt.Sprintf("#%d %s", pr.ID, pr.Title), Author: pr.Actor.DisplayName, CommittedAt: pr.UpdatedOn})
	default:
		return nil, "event not used by Tether", nil
	}
	if !strings.EqualFold(repoUUID, p.RepoUUID) {
		return nil, "", &refusal{http.StatusBadRequest, "the payload is for another repository"}
	}
	if len(out) == 0 {
		return nil, "no branch or tag to build (a deletion)", nil
	}
	return out, "", nil
}

// refuse records and logs a refused delivery; it never starts a workflow.
func (r *Receiver) refuse(ctx context.Context, d tether.Delivery, f *refusal) Answer {
	d.Status, d.Reason = tether.Refused, f.reason
	r.log.Warn("webhook delivery refused", "project_id", d.ProjectID, "reason", f.reason,
		"event", d.EventKey, "hook_uuid", d.HookUUID, "request_uuid", d.RequestUUID, "attempt", d.Attempt)
	if err := r.store.RefuseDelivery(context.WithoutCancel(ctx), d); err != nil {
		r.log.Error("record refused delivery", "err", err)
	}
	return Answer{f.status, "Refused: " + f.reason + "."}
}

// store1 hands an accepted delivery to the group commit and waits for it.
func (r *Receiver) store1(ctx context.Context, a tether.Accept) Answer {
	j := job{accept: a, done: make(chan tether.AcceptResult, 1)}
	ctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	select {
	case r.jobs <- j:
	case <-ctx.Done():
		return Answer{http.StatusServiceUnavailable, "Tether is busy and did not store this delivery; please retry."}
	}
	select {
	case res := <-j.done:
		switch {
		case res.Err != nil:
			r.log.Error("store delivery", "project_id", a.Delivery.ProjectID, "request_uuid", a.Delivery.RequestUUID, "err", res.Err)
			return Answer{http.StatusServiceUnavailable, "Tether could not store this delivery; please retry."}
		case res.Duplicate:
			return Answer{http.StatusOK, "Already received; not processed again."}
		}
		return Answer{http.StatusAccepted, fmt.Sprintf("Accepted: %d workflow(s) started.", len(a.Workflows))}
	case <-ctx.Done():
		// The commit may still land; a retry is then acknowledged as a
		// duplicate, so answering 5xx here loses nothing.
		return Answer{http.StatusServiceUnavailable, "Tether did not finish storing this delivery in time; please retry."}
	}
}
