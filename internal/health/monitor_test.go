package health

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"tether/internal/bitbucket"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// The background monitor on a fake clock, with the store, connections and
// Bitbucket faked in memory: what one look decides and what it spends, and
// how often the schedule looks.

// world is everything the checker reads, in memory.
type world struct {
	mu         sync.Mutex
	project    tether.Project
	key        tether.DeployKey
	hook       tether.Webhook
	status     string // the owner's connection
	budget     error  // what conns.Do answers instead of running, if set
	accepted   time.Time
	refused    bool // the latest delivery was refused
	probe      error
	keyErr     error // Bitbucket's answer to GET …/deploy-keys
	recorded   map[string]tether.Health
	calls      []string
	probes     int
	listed     bitbucket.Hook
	apiKeyLine string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	k, err := deploykeys.Generate("acme/api")
	if err != nil {
		t.Fatal(err)
	}
	return &world{
		project:    testProject,
		key:        tether.DeployKey{BitbucketKeyID: 42, PublicKey: k.Public, PrivateKey: k.Private},
		hook:       tether.Webhook{UUID: "h"},
		status:     tether.Connected,
		recorded:   map[string]tether.Health{},
		listed:     bitbucket.Hook{UUID: "{h}", URL: testHookBase + testProject.HookToken, Active: true, Events: []string{"repo:push"}, SecretSet: true},
		apiKeyLine: k.Public,
	}
}

func (w *world) Project(context.Context, int64) (tether.Project, error) { return w.project, nil }
func (w *world) AllProjects(context.Context) ([]tether.Project, error) {
	return []tether.Project{w.project}, nil
}
func (w *world) ActiveDeployKey(context.Context, int64) (tether.DeployKey, error) { return w.key, nil }
func (w *world) ActiveWebhook(context.Context, int64) (tether.Webhook, error)     { return w.hook, nil }
func (w *world) Health(_ context.Context, _ int64, part string) (tether.Health, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.recorded[part]
	if !ok {
		return h, tether.ErrNotFound
	}
	return h, nil
}
func (w *world) RecordHealth(_ context.Context, h tether.Health) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recorded[h.Part] = h
	return nil
}
func (w *world) SetMovedTo(context.Context, int64, string) error { return nil }
func (w *world) RecentDeliveries(context.Context, int64, int) ([]tether.Delivery, error) {
	if w.refused {
		return []tether.Delivery{{Status: tether.Refused}}, nil
	}
	return []tether.Delivery{{Status: tether.Accepted}}, nil
}
func (w *world) LastAccepted(context.Context, int64) (time.Time, error) { return w.accepted, nil }

func (w *world) Do(ctx context.Context, _ int64, fn func(ctx context.Context, token string) error) error {
	if w.budget != nil {
		return w.budget
	}
	return fn(ctx, "token")
}
func (w *world) Identity(context.Context, int64) (tether.Identity, error) {
	return tether.Identity{Status: w.status}, nil
}

func (w *world) call(name string) {
	w.mu.Lock()
	w.calls = append(w.calls, name)
	w.mu.Unlock()
}
func (w *world) RepositoryByUUID(context.Context, string, string, string) (bitbucket.Repository, error) {
	w.call("repository")
	return testRepo, nil
}
func (w *world) DeployKeys(context.Context, string, string, string) ([]bitbucket.DeployKey, error) {
	w.call("deploy key")
	if w.keyErr != nil {
		return nil, w.keyErr
	}
	return []bitbucket.DeployKey{{ID: 42, Key: w.apiKeyLine}}, nil
}
func (w *world) Hooks(context.Context, string, string, string) ([]bitbucket.Hook, error) {
	w.call("hook")
	return []bitbucket.Hook{w.listed}, nil
}
func (w *world) AddLeftovers(context.Context, []tether.Leftover, ...tether.Audit) error { return nil }

func (w *world) checker(clock clockwork.Clock) *Checker {
	c := NewWithClock(slog.New(slog.NewTextHandler(io.Discard, nil)), w, w, w, SSH{Addr: testSSHAddr}, testHookBase, clock)
	c.SetProbe(func(context.Context, string, []ssh.PublicKey, ssh.Signer, string, string) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.probes++
		return w.probe
	})
	return c
}

func (w *world) verdict(part string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, ok := w.recorded[part]
	if !ok {
		return "none"
	}
	return strings.TrimSuffix(h.Status+"/"+h.Reason, "/")
}

// One background look: the deploy key by the SSH probe, the webhook by a
// recent accepted delivery, the API only to explain a failure or when no
// delivery vouches for the webhook and its cadence is due.
func TestBackgroundLook(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	now := clock.Now()
	until := now.Add(20 * time.Minute)
	cases := []struct {
		name       string
		setup      func(w *world)
		hookAsked  time.Duration // how long ago the API was last asked about the webhook
		key, hook  string        // verdicts recorded
		calls      string        // API calls made
		deferred   bool          // the look left API work to the budget
		detailSays string        // in the key's detail
	}{
		{name: "a recent delivery vouches for the webhook", setup: func(w *world) { w.accepted = now.Add(-10 * time.Minute) },
			hookAsked: time.Hour, key: "valid", hook: "valid", calls: ""},
		{name: "no delivery: the webhook is asked on the API", hookAsked: time.Hour, key: "valid", hook: "valid", calls: "hook"},
		{name: "no delivery, asked lately: nothing asked", hookAsked: time.Minute, key: "valid", hook: "none", calls: ""},
		{name: "a refused delivery after the accepted one: asked", setup: func(w *world) {
			w.accepted, w.refused = now.Add(-10*time.Minute), true
		}, hookAsked: time.Hour, key: "valid", hook: "valid", calls: "hook"},
		{name: "the delivery is older than Fresh: asked", setup: func(w *world) { w.accepted = now.Add(-2 * time.Hour) },
			hookAsked: time.Hour, key: "valid", hook: "valid", calls: "hook"},
		{name: "SSH refuses the key: the API says it was removed", setup: func(w *world) {
			w.accepted, w.probe, w.keyErr = now, bitbucket.NewSSHRefusal("probe", "Permission denied (publickey)."), &bitbucket.Error{Status: 404}
		}, hookAsked: time.Hour, key: "invalid/" + tether.ReasonKeyRemoved, hook: "valid", calls: "repository deploy key"},
		{name: "SSH refuses the key, the budget is spent: the refusal is the verdict", setup: func(w *world) {
			w.accepted, w.probe = now, bitbucket.NewSSHRefusal("probe", "Permission denied (publickey).")
			w.budget = &bitbucket.BudgetError{Until: until}
		}, hookAsked: time.Hour, key: "invalid/" + tether.ReasonSSHDenied, hook: "valid", calls: "", deferred: true,
			detailSays: "Tether asks the API for more at " + bitbucket.WaitEnd(until)},
		{name: "SSH unreachable: could not check, nothing asked", setup: func(w *world) {
			w.accepted, w.probe = now, context.DeadlineExceeded
		}, hookAsked: time.Hour, key: "unknown/" + tether.ReasonCouldNotCheck, hook: "valid", calls: ""},
		{name: "connection revoked: both invalid, nothing asked", setup: func(w *world) { w.status = tether.NotConnected },
			hookAsked: time.Hour, key: "invalid/" + tether.ReasonOAuthRevoked, hook: "invalid/" + tether.ReasonOAuthRevoked, calls: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			if tc.setup != nil {
				tc.setup(w)
			}
			c := w.checker(clock)
			e := entry{id: w.project.ID, owner: w.project.OwnerID, hookAsked: now.Add(-tc.hookAsked), movesAsked: now}
			res := c.look(context.Background(), e, now)
			if got := w.verdict(tether.PartDeployKey); got != tc.key {
				t.Errorf("deploy key: %s, want %s", got, tc.key)
			}
			if got := w.verdict(tether.PartWebhook); got != tc.hook {
				t.Errorf("webhook: %s, want %s", got, tc.hook)
			}
			if got := strings.Join(w.calls, " "); got != tc.calls {
				t.Errorf("API calls %q, want %q", got, tc.calls)
			}
			if (res.deferred != nil) != tc.deferred {
				t.Errorf("deferred: %v, want %v", res.deferred, tc.deferred)
			}
			if !strings.Contains(w.recorded[tether.PartDeployKey].Detail, tc.detailSays) {
				t.Errorf("key detail %q does not say %q", w.recorded[tether.PartDeployKey].Detail, tc.detailSays)
			}
		})
	}
}

// On the fake clock: a project someone watches is probed about every
// minute, its webhook asked every five; unwatched, a quarter of an hour
// apart; and the daily lookup by UUID once a day.
func TestScheduleCadence(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	w := newWorld(t)
	c := w.checker(clock)
	c.Cadence.Jitter = 0
	ctx := context.Background()
	step := func(d time.Duration) {
		clock.Advance(d)
		c.Step(ctx)
		c.Wait()
	}
	watch := func() { c.Watch(w.project) }
	c.Step(ctx) // reads the project list; the first look is spread over Unwatched
	c.Wait()
	watch() // a badge poll: due at once
	step(0)
	if w.probes != 1 {
		t.Fatalf("a newly watched project: %d probes, want 1", w.probes)
	}
	asked := func(what string) int {
		n := 0
		for _, c := range w.calls {
			if c == what {
				n++
			}
		}
		return n
	}
	hooks := asked("hook")
	// Watched for ten minutes (a poll every 10 s): a probe a minute, the
	// webhook on the API every five (no delivery vouches for it).
	for range 60 {
		watch()
		step(10 * time.Second)
	}
	if w.probes < 10 || w.probes > 12 {
		t.Errorf("watched for 10 minutes: %d probes, want about 10", w.probes)
	}
	if n := asked("hook") - hooks; n < 2 || n > 3 {
		t.Errorf("watched for 10 minutes: the webhook asked %d times, want 2", n)
	}
	// Nobody watching: after the probe the last watched minute set, the
	// next a quarter of an hour later.
	step(2 * time.Minute)
	probes := w.probes
	for range 13 {
		step(time.Minute)
	}
	if w.probes != probes {
		t.Errorf("unwatched: probed again within 13 minutes (%d probes)", w.probes-probes)
	}
	for range 4 {
		step(time.Minute)
	}
	if w.probes != probes+1 {
		t.Errorf("unwatched: %d probes in 17 minutes, want 1", w.probes-probes)
	}
	// The lookup by UUID (a move) at most once a day.
	if n := asked("repository"); n > 1 {
		t.Errorf("the repository looked up %d times within half an hour", n)
	}
}

// A badge poll wakes the schedule only when it makes the project due now:
// a page polls every few seconds and must not make the schedule run each
// time.
func TestWatchWakesOnlyWhenDue(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	w := newWorld(t)
	c := w.checker(clock)
	c.Cadence.Jitter = 0
	woken := func() bool {
		select {
		case <-c.sched.wake:
			return true
		default:
			return false
		}
	}
	c.sched.entry(w.project.ID, w.project.OwnerID, clock.Now()).due = clock.Now().Add(time.Hour)
	c.Watch(w.project)
	if !woken() {
		t.Fatal("the first poll of an unprobed project did not wake the schedule")
	}
	c.Step(context.Background())
	c.Wait()
	for range 5 {
		clock.Advance(10 * time.Second)
		c.Watch(w.project)
		if woken() {
			t.Fatal("a poll of a project probed moments ago woke the schedule")
		}
	}
	clock.Advance(15 * time.Second) // a minute after the probe: due, as the look set it
	c.Watch(w.project)
	if woken() {
		t.Fatal("a poll that changed nothing woke the schedule: its own tick finds what falls due")
	}
}
