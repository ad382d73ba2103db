// Package recovery makes up for the workflows that were missed while
// deliveries were not arriving — a webhook broken or deleted, a connection
// lost, or Tether itself not running. It compares a repository's branch
// heads (one paged Bitbucket call, made with the backer's connection like
// every other) with the last workflows of each branch, and lists the
// branches that changed without a workflow; an admin then starts them with
// the trigger "recovered". A (branch, commit) is never started twice: the
// database's unique key says so.
//
// When to compare is learnt from what Tether records: the alerts watcher
// schedules a comparison when a webhook or connection incident closes (a
// Regenerate, Update URL or Re-home repaired it), and a start after more
// than Downtime without a heartbeat schedules one for every project, paced.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/problem"
	"tether/internal/tether"
)

// Store is the part of the database recovery uses.
type Store interface {
	Project(ctx context.Context, id int64) (tether.Project, error)
	AllProjects(ctx context.Context) ([]tether.Project, error)
	ScheduleRecoveryCheck(ctx context.Context, c tether.RecoveryCheck) error
	DueRecoveryCheck(ctx context.Context, now time.Time) (tether.RecoveryCheck, error)
	RetryRecoveryCheck(ctx context.Context, projectID int64, due time.Time) error
	DropRecoveryCheck(ctx context.Context, projectID int64) error
	BranchBuilds(ctx context.Context, projectID int64, branch, commit string) (built, seen bool, err error)
	ReplaceMissedBranches(ctx context.Context, projectID int64, missed []tether.MissedBranch) error
	MissedBranches(ctx context.Context, projectID int64) ([]tether.MissedBranch, error)
	StartMissedWorkflows(ctx context.Context, projectID int64, a tether.Audit) ([]tether.Workflow, error)
	TouchInstance(ctx context.Context, name string, at time.Time) (time.Time, error)
}

// Connections hands out the backer's token (and counts the call against
// their budget).
type Connections interface {
	Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error
}

// Bitbucket is the part of the client recovery uses.
type Bitbucket interface {
	Branches(ctx context.Context, accessToken, workspace, slug string) ([]bitbucket.Branch, error)
}

// Service compares branch heads and starts missed workflows.
type Service struct {
	// Every is the pace of comparisons: at most one per tick, so a start
	// after downtime spreads one Bitbucket call per project over time.
	Every time.Duration
	// Heartbeat is how often Tether records that it is up.
	Heartbeat time.Duration
	// Downtime is how long without a heartbeat counts as "Tether was not
	// running" at start.
	Downtime time.Duration
	// Retries bounds the attempts of a comparison Bitbucket could not
	// answer; each waits RetryAfter longer.
	Retries    int
	RetryAfter time.Duration

	log   *slog.Logger
	store Store
	conns Connections
	bb    Bitbucket
	now   func() time.Time
}

// New returns the recovery service; Run starts its heartbeat and worker.
func New(log *slog.Logger, store Store, conns Connections, bb Bitbucket) *Service {
	return &Service{
		Every: 3 * time.Second, Heartbeat: time.Minute, Downtime: 5 * time.Minute,
		Retries: 5, RetryAfter: time.Minute,
		log: log, store: store, conns: conns, bb: bb, now: time.Now,
	}
}

// instanceUp names the heartbeat in the store.
const instanceUp = "up"

// Run records the heartbeat and runs due comparisons until ctx is done. At
// start, when the last heartbeat is older than Downtime, every project is
// compared once (paced by Every).
func (s *Service) Run(ctx context.Context) {
	if err := s.Started(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("recovery: start", "err", err)
	}
	beat := time.NewTicker(s.Heartbeat)
	defer beat.Stop()
	tick := time.NewTicker(s.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			if _, err := s.store.TouchInstance(ctx, instanceUp, s.now()); err != nil && ctx.Err() == nil {
				s.log.Error("recovery: heartbeat", "err", err)
			}
		case <-tick.C:
			if err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("recovery: compare", "err", err)
			}
		}
	}
}

// Started records that Tether is up and, when it was not for longer than
// Downtime, schedules a comparison for every project.
func (s *Service) Started(ctx context.Context) error {
	now := s.now()
	last, err := s.store.TouchInstance(ctx, instanceUp, now)
	if err != nil || last.IsZero() || now.Sub(last) <= s.Downtime {
		return err
	}
	projects, err := s.store.AllProjects(ctx)
	if err != nil {
		return err
	}
	why := fmt.Sprintf("Tether was not running from %s to %s", stamp(last), stamp(now))
	s.log.Info("recovery: Tether was down; comparing every project's branches", "down_since", last, "projects", len(projects))
	for _, p := range projects {
		if err := s.store.ScheduleRecoveryCheck(ctx, tether.RecoveryCheck{ProjectID: p.ID, Why: why, DueAt: now}); err != nil {
			return err
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// RunDue runs the comparison due first, if any.
func (s *Service) RunDue(ctx context.Context) error {
	c, err := s.store.DueRecoveryCheck(ctx, s.now())
	if errors.Is(err, tether.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := s.store.Project(ctx, c.ProjectID)
	if errors.Is(err, tether.ErrNotFound) {
		return s.store.DropRecoveryCheck(ctx, c.ProjectID)
	}
	if err != nil {
		return err
	}
	missed, err := s.compare(ctx, p, c.Why)
	switch {
	case err == nil:
		if len(missed) > 0 {
			s.log.Info("recovery: branches changed while deliveries were not arriving", "project_id", p.ID, "branches", len(missed))
		}
		return s.store.ReplaceMissedBranches(ctx, p.ID, missed)
	case deferredUntil(err) != (time.Time{}):
		// The backer's budget is spent for now: the same comparison
		// again when it has room.
		return s.store.RetryRecoveryCheck(ctx, p.ID, deferredUntil(err))
	case bitbucket.IsTransient(err) && c.Attempts+1 < s.Retries:
		s.log.Warn("recovery: could not list branches; will retry", "project_id", p.ID, "err", err)
		return s.store.RetryRecoveryCheck(ctx, p.ID, s.now().Add(s.RetryAfter*time.Duration(c.Attempts+1)))
	default:
		// Not connected, no access, or Bitbucket kept failing: the next
		// repair schedules another comparison.
		s.log.Warn("recovery: branches not compared", "project_id", p.ID, "err", err)
		return s.store.DropRecoveryCheck(ctx, p.ID)
	}
}

// compare lists the repository's branch heads with the backer's
// connection and returns those without a workflow: a branch whose head was
// never built although the branch was (it moved since its last workflow),
// or a branch never built whose head commit is newer than the project
// (pushed after it existed). Older branches nobody pushed to since the
// project was created are not "missed".
func (s *Service) compare(ctx context.Context, p tether.Project, why string) ([]tether.MissedBranch, error) {
	var branches []bitbucket.Branch
	// Tether's own work, finishing what a repair began: it never waits
	// for the budget, and a shed call is tried again when the budget has
	// room (RunDue).
	ctx = bitbucket.WithPriority(ctx, bitbucket.FollowUp)
	err := s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		var err error
		branches, err = s.bb.Branches(ctx, token, p.Workspace, p.RepoSlug)
		return err
	})
	if err != nil {
		return nil, err
	}
	var missed []tether.MissedBranch
	for _, b := range branches {
		if b.Hash == "" {
			continue
		}
		built, seen, err := s.store.BranchBuilds(ctx, p.ID, b.Name, b.Hash)
		if err != nil {
			return nil, err
		}
		if built || !seen && !b.Date.After(p.CreatedAt) {
			continue
		}
		missed = append(missed, tether.MissedBranch{ProjectID: p.ID, Why: why, BranchHead: tether.BranchHead{
			Name: b.Name, Commit: b.Hash, Message: b.Message, Author: b.Author, CommittedAt: b.Date}})
	}
	return missed, nil
}

// Missed lists the project's branches that changed while deliveries were
// not arriving (empty when none, or not compared).
func (s *Service) Missed(ctx context.Context, p tether.Project) ([]tether.MissedBranch, error) {
	return s.store.MissedBranches(ctx, p.ID)
}

// Compare schedules a comparison of the project's branches now.
func (s *Service) Compare(ctx context.Context, p tether.Project, why string) error {
	return s.store.ScheduleRecoveryCheck(ctx, tether.RecoveryCheck{ProjectID: p.ID, Why: why, DueAt: s.now()})
}

// ErrNothingMissed: there is nothing left to start.
var ErrNothingMissed = problem.New(problem.Conflict, "There are no missed workflows to start: they were started already, or a push built them.")

// StartMissed starts a workflow marked recovered for each missed branch,
// once; a second press starts none (ErrNothingMissed).
func (s *Service) StartMissed(ctx context.Context, actorID int64, p tether.Project) ([]tether.Workflow, error) {
	started, err := s.store.StartMissedWorkflows(ctx, p.ID, tether.Audit{OrgID: p.OrgID, ActorID: actorID, ProjectID: p.ID, ProjectName: p.Name,
		Action: "missed workflows started"})
	if err != nil {
		return nil, err
	}
	if len(started) == 0 {
		return nil, ErrNothingMissed
	}
	s.log.Info("recovery: missed workflows started", "project_id", p.ID, "workflows", len(started))
	return started, nil
}

// deferredUntil is when a call shed by the budget may be tried again; the
// zero time when err is not such a refusal.
func deferredUntil(err error) time.Time {
	at, ok := bitbucket.Deferred(err)
	if !ok {
		return time.Time{}
	}
	return at
}

var _ Connections = (*connections.Service)(nil)
