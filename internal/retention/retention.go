// Package retention keeps Tether's database from growing without end. In
// the background it deletes accepted deliveries and workflows older than
// the configured days or beyond the configured most recent count per
// project, body digests older than the replay window, and expired
// sessions — in small batches, each its own short transaction with a
// pause after it, so deliveries arriving meanwhile never wait long for
// the writer.
package retention

import (
	"context"
	"log/slog"
	"time"

	"tether/internal/tether"
)

// Policy is what to keep.
type Policy struct {
	Days       int // deliveries and workflows younger than this many days
	PerProject int // and, whatever their age, each project's most recent this many
}

// Batch is how many rows one transaction deletes; Pause is the rest after
// each. A batch of deliveries with their workflows takes a few
// milliseconds, so the writer stays free nearly all the time.
const (
	Batch = 200
	Pause = 20 * time.Millisecond
)

// Every is how often the pruner runs.
const Every = 10 * time.Minute

// Store is the part of the database the pruner uses.
type Store interface {
	ProjectIDs(ctx context.Context) ([]int64, error)
	ExpiredDeliveries(ctx context.Context, cutoff time.Time, limit int) ([]int64, error)
	ExpiredWorkflows(ctx context.Context, cutoff time.Time, limit int) ([]int64, error)
	SurplusDeliveries(ctx context.Context, projectID int64, keep, limit int) ([]int64, error)
	SurplusWorkflows(ctx context.Context, projectID int64, keep, limit int) ([]int64, error)
	DeleteDeliveries(ctx context.Context, ids []int64) error
	DeleteWorkflows(ctx context.Context, ids []int64) error
	PruneDigests(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	PruneSessions(ctx context.Context, now time.Time, limit int) (int64, error)
}

// Pruner deletes what the policy no longer keeps.
type Pruner struct {
	log    *slog.Logger
	store  Store
	policy Policy
	now    func() time.Time
}

// New returns a pruner for policy.
func New(log *slog.Logger, store Store, policy Policy) *Pruner {
	return &Pruner{log: log, store: store, policy: policy, now: time.Now}
}

// Run prunes now and then every Every until ctx is done.
func (p *Pruner) Run(ctx context.Context) {
	t := time.NewTicker(Every)
	defer t.Stop()
	for {
		if n, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("retention: prune", "err", err)
		} else if n > 0 {
			p.log.Info("retention: pruned", "rows", n, "days", p.policy.Days, "per_project", p.policy.PerProject)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Prune deletes, batch by batch, everything the policy no longer keeps,
// and returns how many rows it deleted (workflows deleted with their
// delivery not counted).
func (p *Pruner) Prune(ctx context.Context) (int64, error) {
	now := p.now()
	cutoff := now.AddDate(0, 0, -p.policy.Days)
	var total int64
	ids := func(find func() ([]int64, error), del func(context.Context, []int64) error) error {
		return p.batches(ctx, &total, func() (int64, error) {
			found, err := find()
			if err != nil || len(found) == 0 {
				return 0, err
			}
			return int64(len(found)), del(ctx, found)
		})
	}
	if err := ids(func() ([]int64, error) { return p.store.ExpiredDeliveries(ctx, cutoff, Batch) }, p.store.DeleteDeliveries); err != nil {
		return total, err
	}
	if err := ids(func() ([]int64, error) { return p.store.ExpiredWorkflows(ctx, cutoff, Batch) }, p.store.DeleteWorkflows); err != nil {
		return total, err
	}
	projects, err := p.store.ProjectIDs(ctx)
	if err != nil {
		return total, err
	}
	for _, id := range projects {
		keep := p.policy.PerProject
		if err := ids(func() ([]int64, error) { return p.store.SurplusDeliveries(ctx, id, keep, Batch) }, p.store.DeleteDeliveries); err != nil {
			return total, err
		}
		if err := ids(func() ([]int64, error) { return p.store.SurplusWorkflows(ctx, id, keep, Batch) }, p.store.DeleteWorkflows); err != nil {
			return total, err
		}
	}
	if err := p.batches(ctx, &total, func() (int64, error) {
		return p.store.PruneDigests(ctx, now.Add(-tether.ReplayWindow), Batch)
	}); err != nil {
		return total, err
	}
	err = p.batches(ctx, &total, func() (int64, error) { return p.store.PruneSessions(ctx, now, Batch) })
	return total, err
}

// batches runs one until it deletes less than a whole batch, pausing
// after each, and adds what it deleted to total.
func (p *Pruner) batches(ctx context.Context, total *int64, one func() (int64, error)) error {
	for {
		n, err := one()
		*total += n
		if err != nil || n < Batch {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(Pause):
		}
	}
}
