package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"tether/internal/bitbucket"
)

// savedMeters is a meterStore that keeps what was saved last.
type savedMeters struct {
	mu    sync.Mutex
	saves int
	last  map[int64][]byte
}

func (s *savedMeters) SaveBudgetMeters(_ context.Context, meters map[int64][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	s.last = meters
	return nil
}

func (s *savedMeters) BudgetMeters(context.Context) (map[int64][]byte, error) { return nil, nil }

// A 429 is saved at once, not at the next tick: a crash right after it
// must not lift Bitbucket's pause. Nothing is saved while nothing changes.
func TestA429IsSavedAtOnce(t *testing.T) {
	t.Parallel()
	store := &savedMeters{}
	budget := bitbucket.NewBudget(bitbucket.BudgetConfig{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		keepMeters(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), store, budget, time.Hour)
		close(done)
	}()
	budget.Observe(7, http.StatusTooManyRequests, http.Header{"Retry-After": {"1800"}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		store.mu.Lock()
		raw, saved := store.last[7]
		store.mu.Unlock()
		if saved {
			var m bitbucket.Meter
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			if m.PausedUntil.IsZero() || m.RetryAfter != 30*time.Minute {
				t.Fatalf("saved meter %+v, want the 429's 30 min pause", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a 429 was not saved within 5 s (the next tick is an hour away)")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
	if store.saves != 1 {
		t.Fatalf("%d saves, want 1: the stop found nothing new to save", store.saves)
	}
}
