package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"tether/internal/bitbucket"
)

// meterSaveEvery is how often the API budget's meters are saved while
// they change: a crash forgets at most this much of the hour (a stop
// saves them once more).
const meterSaveEvery = 5 * time.Second

// meterStore keeps the budget's meters between runs (db.Store).
type meterStore interface {
	SaveBudgetMeters(ctx context.Context, meters map[int64][]byte) error
	BudgetMeters(ctx context.Context) (map[int64][]byte, error)
}

// restoreMeters puts the meters the last run saved back into budget, so
// the calls it made in the last hour still count. A meter that cannot be
// read is skipped and said in the log: the budget then errs by spending,
// which Bitbucket's own 429 still bounds.
func restoreMeters(ctx context.Context, log *slog.Logger, store meterStore, budget *bitbucket.Budget) error {
	saved, err := store.BudgetMeters(ctx)
	if err != nil {
		return err
	}
	meters := make([]bitbucket.Meter, 0, len(saved))
	for userID, raw := range saved {
		var m bitbucket.Meter
		if err := json.Unmarshal(raw, &m); err != nil {
			log.Warn("API budget: a saved meter could not be read; its hour starts afresh", "user_id", userID, "err", err)
			continue
		}
		m.Connection = userID
		meters = append(meters, m)
	}
	budget.Restore(meters)
	return nil
}

// keepMeters saves the budget's meters every every (meterSaveEvery) while they
// change, at once when a 429 pauses a connection (a crash must not lift
// Bitbucket's pause), and once more when ctx is done.
func keepMeters(ctx context.Context, log *slog.Logger, store meterStore, budget *bitbucket.Budget, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var saved uint64 // what Restore put back is saved already; anything since is new
	save := func(ctx context.Context) {
		changes := budget.Changes()
		if changes == saved {
			return
		}
		meters := map[int64][]byte{}
		for _, m := range budget.Meters() {
			raw, err := json.Marshal(m)
			if err != nil {
				log.Error("API budget: encode meter", "user_id", m.Connection, "err", err)
				return
			}
			meters[m.Connection] = raw
		}
		if err := store.SaveBudgetMeters(ctx, meters); err != nil {
			log.Error("API budget: save meters", "err", err)
			return
		}
		saved = changes
	}
	for {
		select {
		case <-ctx.Done():
			save(context.WithoutCancel(ctx))
			return
		case <-t.C:
			save(ctx)
		case <-budget.Paused():
			save(ctx)
		}
	}
}
