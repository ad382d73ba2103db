package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// Cadence says how often the background schedule looks at each project.
// A look is cheap: the deploy key is judged by the SSH probe (Bitbucket's
// Git budget, about 60,000 an hour) and the webhook by delivery freshness;
// the REST API (about 1,000 calls an hour per person) is asked only to
// explain a failure, when no recent delivery vouches for the webhook, and
// once a day to look for a move by UUID.
type Cadence struct {
	Watched        time.Duration // SSH probe of a project someone has open
	Unwatched      time.Duration // SSH probe of every other project
	WebhookWatched time.Duration // API look at a watched project's webhook, when no delivery vouches for it
	Webhook        time.Duration // the same for other projects
	Moves          time.Duration // look the repository up by UUID
	Fresh          time.Duration // an accepted delivery this recent proves the webhook works
	WatchFor       time.Duration // how long a badge poll keeps a project watched
	Jitter         float64       // each interval varies by ± this share, so checks spread out
	Workers        int           // background looks running at once
	Refresh        time.Duration // how often the project list is read again
}

// DefaultCadence keeps a watched project page at about a dozen API calls an
// hour (its webhook every five minutes when no push proves it). A backer
// of many quiet projects asks each webhook every half hour at most, as far
// as the budget allows: 500 of them fill the background share of 800 calls
// an hour, so each is asked about every 45 minutes.
var DefaultCadence = Cadence{
	Watched:        time.Minute,
	Unwatched:      15 * time.Minute,
	WebhookWatched: 5 * time.Minute,
	Webhook:        30 * time.Minute,
	Moves:          24 * time.Hour,
	Fresh:          time.Hour,
	WatchFor:       45 * time.Second,
	Jitter:         0.1,
	Workers:        16,
	Refresh:        time.Minute,
}

// entry is one project in the schedule.
type entry struct {
	id, owner    int64
	due          time.Time // next background look
	probed       time.Time // last SSH probe (a full check counts)
	hookAsked    time.Time // last API look at the webhook
	movesAsked   time.Time // last lookup by UUID
	keyExplained time.Time // last time the API said why SSH refused the key
	watchedUntil time.Time
}

func (e *entry) watched(now time.Time) bool { return now.Before(e.watchedUntil) }

// deferral is a connection whose background API work waits for its budget.
type deferral struct {
	until  time.Time
	paused bool // Bitbucket's 429
}

// schedule is the background work: which project to look at next.
type schedule struct {
	mu        sync.Mutex
	entries   map[int64]*entry
	served    map[int64]uint64 // owner → turn of its last look, for round robin
	turn      uint64
	deferred  map[int64]deferral
	refreshed time.Time
	running   int
	wg        sync.WaitGroup
	wake      chan struct{}
	rand      *rand.Rand
}

func newSchedule() schedule {
	return schedule{
		entries:  map[int64]*entry{},
		served:   map[int64]uint64{},
		deferred: map[int64]deferral{},
		wake:     make(chan struct{}, 1),
		rand:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// jittered spreads d by ± the cadence's jitter. Callers hold s.mu.
func (s *schedule) jittered(d time.Duration, jitter float64) time.Duration {
	return time.Duration(float64(d) * (1 + jitter*(2*s.rand.Float64()-1)))
}

func (s *schedule) entry(id, owner int64, now time.Time) *entry {
	e, ok := s.entries[id]
	if !ok {
		e = &entry{id: id, owner: owner, due: now}
		s.entries[id] = e
	}
	e.owner = owner
	return e
}

// Watch marks the project as watched: someone has its page open. The
// schedule looks at it first and every Cadence.Watched while the badge
// polls keep coming. It wakes the schedule only when the project just
// became due: every open page polls, and the schedule's own tick finds
// what falls due later.
func (c *Checker) Watch(p tether.Project) {
	s := &c.sched
	s.mu.Lock()
	now := c.clock.Now()
	e := s.entry(p.ID, p.OwnerID, now)
	e.watchedUntil = now.Add(c.Cadence.WatchFor)
	next := now
	if !e.probed.IsZero() {
		next = e.probed.Add(c.Cadence.Watched)
	}
	wake := next.Before(e.due) && !next.After(now)
	if next.Before(e.due) {
		e.due = next
	}
	s.mu.Unlock()
	if !wake {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deferred says when background API work on p's connection resumes, if it
// waits for the budget (paused: for a 429's Retry-After).
func (c *Checker) deferred(p tether.Project) (time.Time, bool) {
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deferred[p.OwnerID]
	if !c.clock.Now().Before(d.until) {
		return time.Time{}, false
	}
	return d.until, d.paused
}

// NextCheck is when the schedule next looks at a project backed by the
// connection of user owner; zero when it backs none.
func (c *Checker) NextCheck(owner int64) time.Time {
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, e := range s.entries {
		if e.owner == owner && (next.IsZero() || e.due.Before(next)) {
			next = e.due
		}
	}
	if d := s.deferred[owner]; !next.IsZero() && next.Before(d.until) {
		// The SSH probe goes on; the API part waits. Say what the badge
		// says: when the connection's API work resumes.
		return d.until
	}
	return next
}

// Run looks at projects in the background until ctx is done, waking every
// second (on the checker's clock) or when a badge poll marks a project
// watched.
func (c *Checker) Run(ctx context.Context) {
	for {
		c.Step(ctx)
		select {
		case <-ctx.Done():
			c.Wait()
			return
		case <-c.clock.After(time.Second):
		case <-c.sched.wake:
		}
	}
}

// Wait waits for the background looks started so far.
func (c *Checker) Wait() { c.sched.wg.Wait() }

// Step reads the project list when it is due, then starts the looks that
// are due, as many as free workers allow: watched projects first, then the
// stalest, taking turns across connections so one busy backer never
// starves another. It does not wait for them (see Wait).
func (c *Checker) Step(ctx context.Context) {
	s := &c.sched
	now := c.clock.Now()
	s.mu.Lock()
	needRefresh := s.refreshed.IsZero() || now.Sub(s.refreshed) >= c.Cadence.Refresh
	s.mu.Unlock()
	if needRefresh {
		c.refresh(ctx, now)
	}
	s.mu.Lock()
	free := c.Cadence.Workers - s.running
	picked := s.pick(now, free, c.Checking)
	for _, e := range picked {
		s.running++
		s.wg.Add(1)
		// Not due again until this look says otherwise.
		e.due = now.Add(c.Cadence.Unwatched)
		go c.lookAt(ctx, *e, now)
	}
	s.mu.Unlock()
}

// refresh brings the schedule in line with the projects stored: new ones
// join, their probes spread over one Unwatched interval and their webhook
// and move lookups over theirs (as if last done at a random time within
// it), so a restart with thousands of projects does not spend a
// connection's hour at once; deleted ones leave.
func (c *Checker) refresh(ctx context.Context, now time.Time) {
	list, err := c.store.AllProjects(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("health schedule: list projects", "err", err)
		}
		return
	}
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshed = now
	seen := make(map[int64]bool, len(list))
	for _, p := range list {
		seen[p.ID] = true
		if _, ok := s.entries[p.ID]; !ok {
			e := s.entry(p.ID, p.OwnerID, now)
			spread := func(d time.Duration) time.Duration { return time.Duration(s.rand.Float64() * float64(d)) }
			e.due = now.Add(spread(c.Cadence.Unwatched))
			e.hookAsked = now.Add(-spread(c.Cadence.Webhook))
			e.movesAsked = now.Add(-spread(c.Cadence.Moves))
		}
		s.entries[p.ID].owner = p.OwnerID
	}
	for id := range s.entries {
		if !seen[id] {
			delete(s.entries, id)
		}
	}
}

// pick chooses up to free due entries that are not running: watched ones
// first, then the rest; within each, connections take turns (the one
// served longest ago first) and each connection offers its stalest
// project. Callers hold s.mu.
func (s *schedule) pick(now time.Time, free int, running func(int64) bool) []*entry {
	if free <= 0 {
		return nil
	}
	var out []*entry
	for _, watched := range []bool{true, false} {
		byOwner := map[int64][]*entry{}
		for _, e := range s.entries {
			if e.watched(now) == watched && !e.due.After(now) && !running(e.id) {
				byOwner[e.owner] = append(byOwner[e.owner], e)
			}
		}
		owners := make([]int64, 0, len(byOwner))
		for o, list := range byOwner {
			owners = append(owners, o)
			slices.SortFunc(list, func(a, b *entry) int {
				return cmp.Or(a.probed.Compare(b.probed), cmp.Compare(a.id, b.id))
			})
		}
		slices.SortFunc(owners, func(a, b int64) int { return cmp.Or(cmp.Compare(s.served[a], s.served[b]), cmp.Compare(a, b)) })
		for len(out) < free {
			progress := false
			for _, o := range owners {
				if len(out) == free {
					break
				}
				if list := byOwner[o]; len(list) > 0 {
					out = append(out, list[0])
					byOwner[o] = list[1:]
					s.turn++
					s.served[o] = s.turn
					progress = true
				}
			}
			if !progress {
				break
			}
		}
	}
	return out
}

// lookResult is what a background look did.
type lookResult struct {
	probed, hookAsked, movesAsked, keyExplained bool
	deferred                                    *bitbucket.BudgetError // API work the budget held back
}

// lookAt runs one background look at the project of e and schedules the
// next.
func (c *Checker) lookAt(ctx context.Context, e entry, now time.Time) {
	s := &c.sched
	defer s.wg.Done()
	res := c.look(ctx, e, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	cur, ok := s.entries[e.id]
	if !ok {
		return
	}
	if res.probed {
		cur.probed = now
	}
	if res.hookAsked {
		cur.hookAsked = now
	}
	if res.movesAsked {
		cur.movesAsked = now
	}
	if res.keyExplained {
		cur.keyExplained = now
	}
	every := c.Cadence.Unwatched
	if cur.watched(c.clock.Now()) {
		every = c.Cadence.Watched
	}
	cur.due = now.Add(s.jittered(every, c.Cadence.Jitter))
	if d := res.deferred; d != nil {
		s.deferred[cur.owner] = deferral{until: d.Until, paused: d.Paused}
		if d.Until.Before(cur.due) {
			cur.due = d.Until
		}
	}
}

// look is one background look at a project: what is due of the SSH probe,
// the webhook and the move lookup, at background priority, one check per
// project at a time.
func (c *Checker) look(ctx context.Context, e entry, now time.Time) lookResult {
	c.mu.Lock()
	if f := c.checks[e.id]; f != nil && f.running() {
		c.mu.Unlock()
		return lookResult{}
	}
	f := &flight{started: now, done: make(chan struct{})}
	c.checks[e.id] = f
	c.mu.Unlock()
	var res lookResult
	defer func() { c.finish(tether.Project{ID: e.id}, f, false) }()

	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ctx = bitbucket.WithPriority(ctx, bitbucket.Background)
	p, err := c.store.Project(ctx, e.id)
	if err != nil {
		if !errors.Is(err, tether.ErrNotFound) && ctx.Err() == nil {
			c.log.Error("background health check", "project_id", e.id, "err", err)
		}
		return res
	}
	watched := e.watched(now)
	hookEvery := c.Cadence.Webhook
	if watched {
		hookEvery = c.Cadence.WebhookWatched
	}
	if d := c.sched.deferredFor(p.OwnerID, now); d != nil {
		res.deferred = d
	}
	apiOK := res.deferred == nil
	res.probed = true
	ident, err := c.conns.Identity(ctx, p.OwnerID)
	if err != nil || ident.Status != tether.Connected {
		if err != nil && !errors.Is(err, tether.ErrNotFound) {
			c.log.Error("background health check: connection", "project_id", p.ID, "err", err)
			return res
		}
		r := remote{err: connections.ErrNotConnected}
		c.logErr(p, c.record(ctx, c.deployKeyHealth(ctx, p, r), c.webhookHealth(p, r)))
		return res
	}

	var results []tether.Health
	explainKey, refused := false, false
	var refusal *bitbucket.SSHRefusal
	key, kerr := c.store.ActiveDeployKey(ctx, p.ID)
	switch {
	case errors.Is(kerr, tether.ErrNotFound):
		results = append(results, c.deployKeyHealth(ctx, p, remote{keyErr: kerr}))
	case kerr != nil:
		c.log.Error("background health check: stored key", "project_id", p.ID, "err", kerr)
	default:
		h, why := c.probeKey(ctx, p, key)
		if h.Part != "" {
			results = append(results, h)
		}
		explainKey, refused = why != nil, errors.As(why, &refusal)
		if explainKey {
			// Still refused, and the API explained it lately: the
			// explanation stands; ask again only on the webhook's cadence.
			if old, err := c.store.Health(ctx, p.ID, tether.PartDeployKey); err == nil && old.Status == tether.Invalid &&
				old.Reason != tether.ReasonSSHDenied && old.Reason != tether.ReasonSSHRefused && now.Sub(e.keyExplained) < hookEvery {
				explainKey = false
			}
		}
	}

	hookVouched, hookNeeded := c.hookByDeliveries(ctx, p)
	if hookVouched.Part != "" {
		results = append(results, hookVouched)
	}
	askHook := hookNeeded && (e.hookAsked.IsZero() || now.Sub(e.hookAsked) >= hookEvery)
	askMoves := e.movesAsked.IsZero() || now.Sub(e.movesAsked) >= c.Cadence.Moves

	if (explainKey || askHook || askMoves) && apiOK {
		w := want{repo: askMoves || explainKey, key: explainKey, hook: askHook}
		r := c.inspect(ctx, p, w)
		if d, ok := asBudget(r.err); ok {
			res.deferred = d
		} else {
			if r.looked {
				res.movesAsked = true
				c.logErr(p, c.noteMove(ctx, p, r.repo))
			} else if askMoves && r.err != nil && !bitbucket.IsTransient(r.err) {
				res.movesAsked = true
			}
			if explainKey {
				if d, ok := asBudget(r.remoteKeyErr); ok {
					res.deferred = d
				} else {
					res.keyExplained = true
					results = append(results, withExtras(c.deployKeyHealth(ctx, p, r), r))
				}
			}
			if askHook {
				if d, ok := asBudget(r.remoteHookErr); ok {
					res.deferred = d
				} else {
					res.hookAsked = true
					results = append(results, withExtras(c.webhookHealth(p, r), r))
				}
			}
			c.logErr(p, c.recordExtras(ctx, p, r))
		}
	}
	if res.deferred != nil && refused {
		// Bitbucket refused the key over SSH, and the API that would
		// say why must wait: the refusal itself is the verdict.
		results = append(results, sshDenied(p, c.ssh.Addr, refusal, res.deferred))
	}
	c.logErr(p, c.record(ctx, results...))
	return res
}

func (c *Checker) logErr(p tether.Project, err error) {
	if err != nil {
		c.log.Error("record health", "project_id", p.ID, "err", err)
	}
}

// probeKey judges the deploy key by the SSH probe where the project says
// the repository is. When the probe failed in a way the API should
// explain — a refused key (ErrSSHPermissionDenied), or a repository SSH
// does not find (moved?) — h is empty and why is the probe's error.
func (c *Checker) probeKey(ctx context.Context, p tether.Project, key tether.DeployKey) (h tether.Health, why error) {
	h = tether.Health{ProjectID: p.ID, Part: tether.PartDeployKey}
	signer, err := deploykeys.Signer(key.PrivateKey)
	if err != nil {
		c.log.Error("deploy key unreadable", "project_id", p.ID, "err", err)
		h.Status, h.Reason, h.Detail = tether.Invalid, tether.ReasonKeyDiffers, "Tether's copy of the private key cannot be read. Press Regenerate."
		return h, nil
	}
	err = c.probeSSH(ctx, c.ssh.Addr, c.ssh.HostKeys, signer, p.Workspace, p.RepoSlug)
	switch {
	case err == nil:
		h.Status = tether.Valid
		h.Detail = fmt.Sprintf("The key reads %s over SSH.", p.FullName)
		return h, nil
	case errors.Is(err, bitbucket.ErrSSHHostKeyMismatch):
		h.Status, h.Reason = tether.Unknown, tether.ReasonCouldNotCheck
		h.Detail = fmt.Sprintf("The SSH server at %s did not present a pinned host key (BITBUCKET_SSH_HOST_KEYS), so Tether did not trust it.", c.ssh.Addr)
		return h, nil
	case bitbucket.IsTransient(err):
		return transient(h.Part, p, err, "probed SSH"), nil
	}
	return tether.Health{}, err
}

// sshDenied is the verdict of a refused SSH probe whose explanation waits
// for the connection's API budget: Bitbucket's refusal and its words.
func sshDenied(p tether.Project, addr string, r *bitbucket.SSHRefusal, d *bitbucket.BudgetError) tether.Health {
	h := sshRefused(p, addr, r, "Bitbucket")
	h.Detail += fmt.Sprintf(" Tether asks the API for more at %s, when %s's connection has budget again.", bitbucket.WaitEnd(d.Until), p.OwnerName)
	return h
}

// hookByDeliveries judges the webhook without the API when deliveries
// allow: a recent accepted delivery, with no refused one after it, proves
// it works. needAPI is true when they do not.
func (c *Checker) hookByDeliveries(ctx context.Context, p tether.Project) (h tether.Health, needAPI bool) {
	if _, err := c.store.ActiveWebhook(ctx, p.ID); err != nil {
		if errors.Is(err, tether.ErrNotFound) {
			return c.webhookHealth(p, remote{hookErr: err}), false
		}
		return tether.Health{}, false
	}
	last, err := c.store.LastAccepted(ctx, p.ID)
	if err != nil || last.IsZero() || c.clock.Now().Sub(last) > c.Cadence.Fresh {
		return tether.Health{}, true
	}
	if latest, err := c.store.RecentDeliveries(ctx, p.ID, 1); err != nil || len(latest) > 0 && latest[0].Status == tether.Refused {
		return tether.Health{}, true
	}
	return tether.Health{ProjectID: p.ID, Part: tether.PartWebhook, Status: tether.Valid,
		Detail: fmt.Sprintf("Bitbucket delivered a push at %s and Tether accepted it, so the webhook works.", last.UTC().Format("2 Jan 15:04 UTC"))}, false
}

func asBudget(err error) (*bitbucket.BudgetError, bool) {
	var d *bitbucket.BudgetError
	return d, errors.As(err, &d)
}

// deferredFor is the connection's current deferral, if any.
func (s *schedule) deferredFor(owner int64, now time.Time) *bitbucket.BudgetError {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.deferred[owner]
	if !ok || !now.Before(d.until) {
		return nil
	}
	return &bitbucket.BudgetError{Until: d.until, Paused: d.paused}
}

// finish ends a check: a full one resets the project's background clock
// (it just looked at everything).
func (c *Checker) finish(p tether.Project, f *flight, full bool) {
	close(f.done)
	if !full {
		return
	}
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	now := c.clock.Now()
	e := s.entry(p.ID, p.OwnerID, now)
	e.probed, e.hookAsked, e.movesAsked = now, now, now
	every := c.Cadence.Unwatched
	if e.watched(now) {
		every = c.Cadence.Watched
	}
	e.due = now.Add(s.jittered(every, c.Cadence.Jitter))
}
