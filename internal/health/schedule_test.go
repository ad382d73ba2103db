package health

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// The schedule takes turns across connections: a backer with a hundred
// due projects never starves one with a single project; watched projects
// go first; within a connection the stalest goes first; a project being
// checked is never picked twice.
func TestScheduleIsFairAcrossConnections(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	now := clock.Now()
	s := newSchedule()
	for i := range 100 {
		e := s.entry(int64(1000+i), 1, now) // busy backer: user 1
		e.probed = now.Add(-time.Duration(i+1) * time.Minute)
	}
	s.entry(2000, 2, now).probed = now.Add(-time.Minute) // user 2: one project

	notRunning := func(int64) bool { return false }

	got := s.pick(now, 2, notRunning)
	if len(got) != 2 || got[0].owner == got[1].owner {
		t.Fatalf("two workers went to owners %d and %d", got[0].owner, got[1].owner)
	}
	for _, e := range got {
		if e.owner == 1 && e.id != 1099 {
			t.Fatalf("user 1's stalest project is 1099, picked %d", e.id)
		}
	}
	if p := s.pick(now, 1, func(id int64) bool { return id == 1099 }); len(p) != 1 || p[0].id != 1098 {
		t.Fatalf("with 1099 being checked, user 1's next stalest is 1098: %+v", p[0])
	}

	// Many rounds, one worker each: user 2 is served every other turn
	// while it has work, whatever user 1's backlog.
	s.entries[2000].due = now
	var owners []int64
	running := map[int64]bool{}
	for range 6 {
		p := s.pick(now, 1, func(id int64) bool { return running[id] })
		if len(p) != 1 {
			t.Fatal("nothing picked")
		}
		owners = append(owners, p[0].owner)
		if p[0].owner == 2 {
			s.entries[2000].due = now // due again at once
		} else {
			running[p[0].id] = true // one check per project at a time
		}
	}
	for i := 1; i < len(owners); i++ {
		if owners[i] == owners[i-1] {
			t.Fatalf("turns %v: a connection went twice in a row", owners)
		}
	}
	seen := map[int64]bool{}
	for id := range running {
		if seen[id] {
			t.Fatalf("project %d picked while running", id)
		}
		seen[id] = true
	}

	// A watched project goes first, even from the connection served last.
	w := s.entry(3000, 1, now)
	w.watchedUntil = now.Add(time.Minute)
	w.probed = now // just looked at, yet watched and due
	if p := s.pick(now, 1, func(id int64) bool { return running[id] }); len(p) != 1 || p[0].id != 3000 {
		t.Fatalf("watched project not first: %+v", p)
	}

	// Nothing that is not due is picked.
	later := newSchedule()
	later.entry(1, 1, now).due = now.Add(time.Second)
	if p := later.pick(now, 4, notRunning); len(p) != 0 {
		t.Fatalf("picked %d projects not due yet", len(p))
	}
}

// Jitter spreads intervals within ± the cadence's share.
func TestScheduleJitter(t *testing.T) {
	t.Parallel()
	s := newSchedule()
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := s.jittered(10*time.Minute, 0.1)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 9*time.Minute || hi > 11*time.Minute || hi-lo < time.Minute {
		t.Fatalf("jitter spread %v..%v", lo, hi)
	}
}
