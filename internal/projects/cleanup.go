package projects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jonboulle/clockwork"

	"tether/internal/bitbucket"
	"tether/internal/tether"
	"tether/internal/webhooks"
)

// cleanupStore is what the Cleanup reads and writes.
type cleanupStore interface {
	DueLeftovers(ctx context.Context, now time.Time, limit int) ([]tether.Leftover, error)
	PostponeLeftover(ctx context.Context, l tether.Leftover, next time.Time) error
	Project(ctx context.Context, id int64) (tether.Project, error)
	ActiveDeployKeyPublic(ctx context.Context, projectID int64) (tether.DeployKey, error)
	ActiveWebhookPublic(ctx context.Context, projectID int64) (tether.Webhook, error)
	ForgetRetiredWebhooks(ctx context.Context, cutoff time.Time) error
	partsStore
}

// Cleanup removes leftovers in the background: keys and hooks Tether let
// go of that Bitbucket did not confirm gone, and those a create made
// after Tether stopped waiting. Each is tried with its backer's
// connection as a follow-up (bitbucket.FollowUp: it never waits, and is
// put off while the connection's API budget is spent), after each delay
// of Backoff in turn; the outcome goes to the audit log.
// It also forgets replaced webhooks once their delivery grace window is
// over.
type Cleanup struct {
	// Backoff is how long a leftover waits before each new try; after
	// the last one Tether gives up on it and says so in the audit log.
	// Set it before Run.
	Backoff []time.Duration

	log   *slog.Logger
	store cleanupStore
	conns Connections
	parts *parts
	locks *projectLocks
	clock clockwork.Clock

	forgot time.Time // when retired webhooks were last forgotten
}

// retryIn is the wait after attempts failed tries.
func (c *Cleanup) retryIn(attempts int) time.Duration {
	if len(c.Backoff) == 0 {
		return time.Minute
	}
	return c.Backoff[min(attempts, len(c.Backoff)-1)]
}

// batch is how many leftovers one Step tries.
const batch = 20

// Run tries due leftovers every ten seconds until ctx is done.
func (c *Cleanup) Run(ctx context.Context) {
	for {
		c.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(10 * time.Second):
		}
	}
}

// Step tries each due leftover once, and (once a minute) forgets replaced
// webhooks past their grace window. Steps are not run concurrently.
func (c *Cleanup) Step(ctx context.Context) {
	now := c.clock.Now()
	if now.Sub(c.forgot) >= time.Minute {
		c.forgot = now
		if err := c.store.ForgetRetiredWebhooks(ctx, now.Add(-webhooks.Grace)); err != nil && ctx.Err() == nil {
			c.log.Error("forget retired webhooks", "err", err)
		}
	}
	due, err := c.store.DueLeftovers(ctx, now, batch)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("due leftovers", "err", err)
		}
		return
	}
	for _, l := range due {
		if ctx.Err() != nil {
			return
		}
		c.try(ctx, l)
	}
}

// try makes one attempt at a leftover.
func (c *Cleanup) try(ctx context.Context, l tether.Leftover) {
	defer c.locks.lock(l.ProjectID)()
	if c.inUse(ctx, l) {
		// Found by a check while an operation was making it: it is the
		// project's now, not a leftover.
		c.settle(ctx, l)
		return
	}
	if l.OwnerID == 0 {
		c.giveUp(ctx, l, "nobody's Bitbucket connection is left to remove it with")
		return
	}
	var gone bool
	// A follow-up: it finishes what a person's action (or a check) began,
	// never waits for the budget, and is put off when none is left.
	err := c.conns.Do(bitbucket.WithPriority(ctx, bitbucket.FollowUp), l.OwnerID, func(ctx context.Context, token string) error {
		var err error
		gone, err = c.parts.remove(ctx, token, l)
		return err
	})
	if until, deferred := bitbucket.Deferred(err); deferred {
		c.logErr(l, c.store.PostponeLeftover(ctx, l, until))
		return
	}
	switch {
	case gone:
		c.logErr(l, c.store.SettleLeftover(ctx, l, removedEntry(l, 0)))
	case l.Attempts+1 >= len(c.Backoff) && l.RemoteID == "" && err == nil:
		// The create never showed up: nothing is left.
		c.logErr(l, c.store.SettleLeftover(ctx, l))
	case l.Attempts+1 >= len(c.Backoff):
		c.giveUp(ctx, l, reason(err))
	case err == nil:
		c.logErr(l, c.store.RetryLeftover(ctx, l, c.clock.Now().Add(c.retryIn(l.Attempts+1))))
	default:
		c.log.Warn("leftover still on Bitbucket", "project_id", l.ProjectID, "part", l.Part, "remote_id", l.RemoteID, "err", err)
		c.logErr(l, c.store.RetryLeftover(ctx, l, c.clock.Now().Add(c.retryIn(l.Attempts+1))))
	}
}

// inUse reports whether l is a part the project has in force (a key or
// hook a check recorded while an operation was making it).
func (c *Cleanup) inUse(ctx context.Context, l tether.Leftover) bool {
	if l.RemoteID == "" {
		return false
	}
	if _, err := c.store.Project(ctx, l.ProjectID); err != nil {
		return false
	}
	if l.Part == tether.PartWebhook {
		h, err := c.store.ActiveWebhookPublic(ctx, l.ProjectID)
		return err == nil && tether.NormalizeHookUUID(h.UUID) == tether.NormalizeHookUUID(l.RemoteID)
	}
	k, err := c.store.ActiveDeployKeyPublic(ctx, l.ProjectID)
	return err == nil && strconv.Itoa(k.BitbucketKeyID) == l.RemoteID
}

func (c *Cleanup) settle(ctx context.Context, l tether.Leftover) {
	c.logErr(l, c.store.SettleLeftover(ctx, l))
}

// giveUp forgets a leftover Tether could not remove, and says in the
// audit log that it is for people to remove now.
func (c *Cleanup) giveUp(ctx context.Context, l tether.Leftover, why string) {
	c.logErr(l, c.store.SettleLeftover(ctx, l, tether.Audit{OrgID: l.OrgID, ProjectID: l.ProjectID, ProjectName: l.ProjectName,
		Action: "left on Bitbucket", Detail: fmt.Sprintf("%s on %s: %s; Tether stopped trying, remove it in the repository settings on Bitbucket", l.Name(), l.FullName, why)}))
}

func (c *Cleanup) logErr(l tether.Leftover, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Error("cleanup", "project_id", l.ProjectID, "err", err)
	}
}
