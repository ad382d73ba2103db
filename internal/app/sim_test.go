package app_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// TestSimulateBudgetAtScale is the simulation benchmark of
// docs/BENCHMARKS.md: 10,000 projects backed by 20 Bitbucket connections,
// one simulated hour on a fake clock shared by Tether and the emulator
// (which enforces Bitbucket's 1,000 calls per user per hour), 20 projects
// watched, 200 breaks injected at random times in minutes 2–50. It reports
// API calls per connection in that hour against the budget, 429s, the time
// from a break to the badge turning invalid (the simulation goes on for
// up to 45 more minutes until every break has shown, so late breaks are
// measured too, not cut off), and the process's peak RSS and CPU seconds. It runs only
// with TETHER_SIM=1 (about 3–4 minutes on 2 cores); TETHER_SIM_SSH=real
// probes deploy keys over real SSH sessions to the emulator instead of
// asking it directly.
func TestSimulateBudgetAtScale(t *testing.T) {
	if os.Getenv("TETHER_SIM") == "" {
		t.Skip("the simulation benchmark runs with TETHER_SIM=1")
	}
	const (
		connections = 20
		perConn     = 500
		breaks      = 200
		watchedN    = connections
	)
	ctx := context.Background()
	wall := time.Now()
	clock := clockwork.NewFakeClockAt(time.Now())
	env := apptest.Start(t, apptest.Options{Clock: clock})
	env.Emulator.SetRateLimit(emulator.RateLimit{PerHour: 1000})
	if os.Getenv("TETHER_SIM_SSH") != "real" {
		env.App.Health.SetProbe(func(_ context.Context, _ string, _ []ssh.PublicKey, signer ssh.Signer, ws, slug string) error {
			found, ok := env.Emulator.KeyCanRead(ws+"/"+slug, signer.PublicKey())
			switch {
			case !found:
				return errors.New("conq: repository does not exist")
			case !ok:
				return bitbucket.ErrSSHPermissionDenied
			}
			return nil
		})
	}

	// Twenty people sign up with Bitbucket; each backs 500 projects,
	// stored the way Create stores them, with their key and hook on the
	// emulator.
	var (
		users    []string
		owners   = map[string]int64{}
		projects []tether.Project
	)
	db := rawDB(t, env)
	for i := range connections {
		name := fmt.Sprintf("user%02d", i)
		users = append(users, name)
		env.AddUser(name)
		env.Client().SignUpWithBitbucket(name)
		owners[name] = userID(t, env, name)
		var org int64
		if err := db.QueryRow(`SELECT org_id FROM memberships WHERE user_id = ?`, owners[name]).Scan(&org); err != nil {
			t.Fatal(err)
		}
		for j := range perConn {
			repo := env.Emulator.AddRepository(name, fmt.Sprintf("repo%03d", j), true)
			key, err := deploykeys.Generate(repo.FullName)
			if err != nil {
				t.Fatal(err)
			}
			remote, err := env.Emulator.AddDeployKey(repo.FullName, key.Public, "Tether: "+repo.FullName)
			if err != nil {
				t.Fatal(err)
			}
			token, secret := fmt.Sprintf("sim-%d-%d", i, j), fmt.Sprintf("secret-%d-%d", i, j)
			hook, err := env.Emulator.AddHook(repo.FullName, emulator.Hook{Description: "Tether: " + repo.FullName,
				URL: env.URL + "/hooks/bitbucket/" + token, Active: true, Events: []string{"repo:push"}, Secret: secret})
			if err != nil {
				t.Fatal(err)
			}
			p, err := env.App.Store.CreateProject(ctx, tether.Project{
				OrgID: org, Name: repo.FullName, OwnerID: owners[name], RepoUUID: repo.UUID, Workspace: name, RepoSlug: repo.Slug,
				FullName: repo.FullName, CloneSSH: "git@bitbucket.org:" + repo.FullName + ".git", HTMLURL: env.BBURL + "/" + repo.FullName, Private: true, HookToken: token,
			}, tether.DeployKey{BitbucketKeyID: remote.ID, PublicKey: key.Public, Fingerprint: key.Fingerprint, PrivateKey: key.Private},
				tether.Webhook{UUID: tether.NormalizeHookUUID(hook.UUID), URL: hook.URL, Events: hook.Events, Secret: secret}, owners[name])
			if err != nil {
				t.Fatal(err)
			}
			projects = append(projects, p)
		}
	}
	setup := time.Since(wall)
	env.Emulator.ResetAPICalls()

	// Breaks at random times between minute 2 and minute 50: half the
	// time a deploy key is deleted, half the time a webhook.
	type brk struct {
		at       time.Duration
		p        tether.Project
		part     string
		detected time.Duration // from the break to the badge turning invalid; 0: not yet
	}
	rng := rand.New(rand.NewPCG(12, 2026))
	var plan []*brk
	for _, i := range rng.Perm(len(projects))[:breaks] {
		b := &brk{at: 2*time.Minute + time.Duration(rng.Int64N(int64(48*time.Minute))), p: projects[i], part: tether.PartDeployKey}
		if rng.IntN(2) == 1 {
			b.part = tether.PartWebhook
		}
		plan = append(plan, b)
	}
	slices.SortFunc(plan, func(a, b *brk) int { return int(a.at - b.at) })
	var watched []tether.Project
	for i := range watchedN {
		watched = append(watched, projects[i*perConn])
	}

	start := clock.Now()
	next := 0
	var pending []*brk
	var (
		spent                    []int
		limited, mismatched, sum int
	)
	for sec := 1; sec <= 3600 || len(pending) > 0 && sec <= 3600+45*60; sec++ {
		clock.Advance(time.Second)
		now := clock.Since(start)
		for next < len(plan) && plan[next].at <= now {
			b := plan[next]
			next++
			if b.part == tether.PartDeployKey {
				env.Emulator.DeleteDeployKey(b.p.FullName, env.Emulator.DeployKeys(b.p.FullName)[0].ID)
			} else {
				env.Emulator.DeleteHook(b.p.FullName, env.Emulator.Hooks(b.p.FullName)[0].UUID)
			}
			pending = append(pending, b)
		}
		if sec%10 == 0 {
			for _, p := range watched { // a badge poll each
				env.App.Health.Watch(p)
			}
		}
		env.App.Health.Step(ctx)
		env.App.Health.Wait()
		if sec%10 == 0 {
			pending = slices.DeleteFunc(pending, func(b *brk) bool {
				h, err := env.App.Health.Result(ctx, b.p.ID, b.part)
				if err == nil && h.Status == tether.Invalid {
					b.detected = now - b.at
					return true
				}
				return false
			})
		}
		if sec == 3600 {
			// What each connection spent in the hour, and what Bitbucket
			// (the emulator) saw.
			for _, name := range users {
				c := env.Emulator.APICallsOf(name)
				spent = append(spent, c.Total)
				sum += c.Total
				if u := env.App.Budget.Usage(owners[name]); u.Spent != c.LastHour {
					mismatched++
					t.Errorf("%s: meter %d, emulator %d", name, u.Spent, c.LastHour)
				}
			}
			slices.Sort(spent)
		}
	}
	simulated := clock.Since(start)
	for _, name := range users { // over the whole run, the extra minutes too
		limited += env.Emulator.APICallsOf(name).Limited
	}
	var detect []time.Duration
	byPart := map[string][]time.Duration{}
	within := 0
	for _, b := range plan {
		if b.detected > 0 && b.at+b.detected <= time.Hour {
			within++
		}
		if b.detected > 0 {
			detect = append(detect, b.detected)
			byPart[b.part] = append(byPart[b.part], b.detected)
		}
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return d[min(len(d)-1, int(q*float64(len(d))))].Round(time.Second)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	status, _ := os.ReadFile("/proc/self/status")
	var hwm string
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			hwm = strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	t.Logf("projects %d, connections %d, watched %d, breaks %d (setup %s; %s simulated in %s wall)",
		len(projects), connections, watchedN, breaks, setup.Round(time.Second), simulated, (time.Since(wall) - setup).Round(time.Second))
	t.Logf("API calls per connection in the hour: min %d, median %d, max %d (budget %d, Bitbucket's limit 1000); total %d",
		spent[0], spent[len(spent)/2], spent[len(spent)-1], env.App.Budget.PerHour(), sum)
	t.Logf("429s answered by the emulator (whole run): %d; meters that disagreed with the emulator at the hour: %d", limited, mismatched)
	t.Logf("break to invalid badge: %d of %d shown, %d within the hour; p50 %s, p99 %s; deploy key p50 %s p99 %s (n=%d); webhook p50 %s p99 %s (n=%d)",
		len(detect), breaks, within, pct(detect, .5), pct(detect, .99),
		pct(byPart[tether.PartDeployKey], .5), pct(byPart[tether.PartDeployKey], .99), len(byPart[tether.PartDeployKey]),
		pct(byPart[tether.PartWebhook], .5), pct(byPart[tether.PartWebhook], .99), len(byPart[tether.PartWebhook]))
	if mfs, err := env.App.Metrics.Registry.Gather(); err == nil {
		for _, mf := range mfs {
			if mf.GetName() != "tether_bitbucket_api_calls_total" {
				continue
			}
			for _, m := range mf.Metric {
				t.Logf("  %v %.0f", labels(m), m.GetCounter().GetValue())
			}
		}
	}
	t.Logf("process (Tether, emulator and harness together): peak RSS %s, CPU %.1f s (user+system, setup included)", hwm, cpu.Seconds())
	if spent[len(spent)-1] > env.App.Budget.PerHour() {
		t.Errorf("a connection spent %d calls, budget %d", spent[len(spent)-1], env.App.Budget.PerHour())
	}
	if limited != 0 {
		t.Errorf("%d calls answered 429", limited)
	}
	// A removed key is refused over SSH at the next probe (every 15
	// minutes), whatever the API budget; a deleted webhook waits for its
	// turn on the API, about every 45 minutes on average at 500 quiet
	// projects a connection — some wait longer.
	keys := 0
	for _, b := range plan {
		if b.part == tether.PartDeployKey {
			keys++
		}
	}
	if got := len(byPart[tether.PartDeployKey]); got != keys {
		t.Errorf("only %d of %d removed deploy keys turned a badge invalid", got, keys)
	}
	if got := len(byPart[tether.PartWebhook]); got*10 < (breaks-keys)*8 {
		t.Errorf("only %d of %d deleted webhooks turned a badge invalid", got, breaks-keys)
	}
}
