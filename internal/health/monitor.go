package health

import (
	"context"
	"errors"
	"tether/internal/tether"
	"time"
)

// Monitor re-checks every project about once per every, looking each tick
// for the projects whose last check is older. It spreads the work so one
// tick starts at most perTick checks: Bitbucket allows about 1,000 API
// calls an hour per user, and each project check costs two or three.
func (c *Checker) Monitor(ctx context.Context, every, tick time.Duration, perTick int) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		projects, err := c.store.AllProjects(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Error("health monitor: list projects", "err", err)
			}
			continue
		}
		started := 0
		for _, p := range projects {
			if started == perTick {
				break
			}
			h, err := c.store.Health(ctx, p.ID, tether.PartDeployKey)
			if err != nil && !errors.Is(err, tether.ErrNotFound) {
				continue
			}
			if err == nil && time.Since(h.CheckedAt) < every {
				continue
			}
			c.CheckInBackground(p.ID)
			started++
		}
	}
}
