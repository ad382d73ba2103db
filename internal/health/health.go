// Package health checks the two things that tie a project to its
// repository — the deploy key and the webhook — and records the result with
// a reason, never a bare red. Bitbucket being unreachable, slow or rate
// limiting is "unknown", never "invalid": badges must not flap on a network
// blip. Badge polls only read what is recorded (and mark the project
// watched); full checks run on "Check now" and after a change, cheap ones
// in the background on a schedule fair across connections, within each
// connection's API budget.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

const (
	statusChecking = "checking"
	checkTimeout   = 20 * time.Second
)

// Store is the part of the database health uses.
type Store interface {
	Project(ctx context.Context, id int64) (tether.Project, error)
	AllProjects(ctx context.Context) ([]tether.Project, error)
	ActiveDeployKey(ctx context.Context, projectID int64) (tether.DeployKey, error)
	ActiveWebhook(ctx context.Context, projectID int64) (tether.Webhook, error)
	Health(ctx context.Context, projectID int64, part string) (tether.Health, error)
	RecordHealth(ctx context.Context, h tether.Health) error
	SetMovedTo(ctx context.Context, projectID int64, fullName string) error
	RecentDeliveries(ctx context.Context, projectID int64, limit int) ([]tether.Delivery, error)
	LastAccepted(ctx context.Context, projectID int64) (time.Time, error)
	AddLeftovers(ctx context.Context, ls []tether.Leftover, entries ...tether.Audit) error
}

// Connections hands out the project owner's token and says whether their
// connection still stands.
type Connections interface {
	Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error
	Identity(ctx context.Context, userID int64) (tether.Identity, error)
}

// Bitbucket is the part of the client the checks use. A part is read by
// listing the repository's keys or hooks — one call, as reading the one
// would be — so a check also sees the extra ones Tether made.
type Bitbucket interface {
	RepositoryByUUID(ctx context.Context, accessToken, lastWorkspace, uuid string) (bitbucket.Repository, error)
	DeployKeys(ctx context.Context, accessToken, workspace, slug string) ([]bitbucket.DeployKey, error)
	Hooks(ctx context.Context, accessToken, workspace, slug string) ([]bitbucket.Hook, error)
}

// errNotListed is a key or hook missing from its repository's list: the
// repository was found, so no move explains it.
var errNotListed = errors.New("health: not on the repository")

// SSH is where deploy keys are probed.
type SSH struct {
	Addr     string
	HostKeys []ssh.PublicKey
}

// Checker runs and records checks: full ones when a person asks, and
// cheap ones in the background on a schedule (see Run).
type Checker struct {
	// Cadence says how often background checks look at each project.
	// Set it before Run.
	Cadence Cadence
	// Coalesce is how recent a full check must have started to answer
	// "Check now": presses in quick succession, by anyone, share one check.
	Coalesce time.Duration
	// OnResult, when set, is told every recorded result (for metrics):
	// part is tether.PartDeployKey or tether.PartWebhook, status a health
	// status.
	OnResult func(part, status string)
	// Instance is this Tether's in the markers of the keys and hooks it
	// creates (tether.InstanceOf its public URL), to tell its own extra
	// ones on a repository from anyone else's. Set it before Run.
	Instance string

	log      *slog.Logger
	store    Store
	conns    Connections
	bb       Bitbucket
	ssh      SSH
	hookBase string // webhook URLs are hookBase + the project's token
	clock    clockwork.Clock

	mu       sync.Mutex
	checks   map[int64]*flight // per project: the latest check, running or done
	sched    schedule
	probeSSH func(ctx context.Context, addr string, hostKeys []ssh.PublicKey, signer ssh.Signer, workspace, slug string) error
}

// flight is one check of a project; done closes when it ends.
type flight struct {
	started time.Time
	full    bool // a full check (every part through the API), not a background look
	done    chan struct{}
	err     error
}

func (f *flight) running() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// New returns a checker on the real clock.
func New(log *slog.Logger, store Store, conns Connections, bb Bitbucket, sshCfg SSH, hookBase string) *Checker {
	return NewWithClock(log, store, conns, bb, sshCfg, hookBase, clockwork.NewRealClock())
}

// NewWithClock returns a checker whose schedule runs on clock (a
// clockwork.FakeClock in tests and the simulation benchmark).
func NewWithClock(log *slog.Logger, store Store, conns Connections, bb Bitbucket, sshCfg SSH, hookBase string, clock clockwork.Clock) *Checker {
	return &Checker{
		Cadence:  DefaultCadence,
		Coalesce: 10 * time.Second,
		log:      log, store: store, conns: conns, bb: bb, ssh: sshCfg, hookBase: hookBase, clock: clock,
		checks:   map[int64]*flight{},
		sched:    newSchedule(),
		probeSSH: bitbucket.ProbeSSH,
	}
}

// SetProbe replaces the SSH probe (the simulation benchmark asks the
// emulator directly instead of opening 10,000 SSH sessions).
func (c *Checker) SetProbe(probe func(ctx context.Context, addr string, hostKeys []ssh.PublicKey, signer ssh.Signer, workspace, slug string) error) {
	c.probeSSH = probe
}

// Badge is what a health badge shows.
type Badge struct {
	Part     string
	Status   string // valid | invalid | unknown | checking
	Reason   string
	Detail   string
	Checked  time.Time
	Since    time.Time
	Checking bool // a check is running: poll again soon
	// NextCheck is set when background work on this project waits for
	// its connection's API budget (or a 429's Retry-After): when it will
	// look again.
	NextCheck time.Time
	// Paused says that wait is Bitbucket's 429, not Tether's own budget.
	Paused bool
}

// Badge reads the recorded health of a part. It never calls Bitbucket;
// with watch it marks the project as watched, so the schedule looks at it
// first and more often (a badge poll is someone with the page open).
func (c *Checker) Badge(ctx context.Context, p tether.Project, part string, watch bool) (Badge, error) {
	h, err := c.store.Health(ctx, p.ID, part)
	if err != nil && !errors.Is(err, tether.ErrNotFound) {
		return Badge{}, err
	}
	if watch {
		c.Watch(p)
	}
	b := Badge{Part: part, Status: h.Status, Reason: h.Reason, Detail: h.Detail, Checked: h.CheckedAt, Since: h.Since}
	b.Checking = c.Checking(p.ID)
	if errors.Is(err, tether.ErrNotFound) || b.Checking && b.Status == "" {
		b.Status, b.Checking = statusChecking, true
	}
	b.NextCheck, b.Paused = c.deferred(p)
	return b, nil
}

// Result returns the recorded health of a part.
func (c *Checker) Result(ctx context.Context, projectID int64, part string) (tether.Health, error) {
	return c.store.Health(ctx, projectID, part)
}

// Checking reports whether a check of the project is running.
func (c *Checker) Checking(projectID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.checks[projectID]
	return f != nil && f.running()
}

// Check runs a full check of the project that starts after the call (a
// running one is waited for first: one check per project at a time) and
// records it. Create, Regenerate, Change and Re-home call it after they
// changed something.
func (c *Checker) Check(ctx context.Context, p tether.Project) error {
	return c.CheckWithin(ctx, p, 0)
}

// CheckNow is "Check now": a full check that started less than Coalesce
// ago, or is running, answers every press, whoever presses.
func (c *Checker) CheckNow(ctx context.Context, p tether.Project) error {
	return c.CheckWithin(ctx, p, c.Coalesce)
}

// CheckWithin makes sure a full check of the project started no more than
// maxAge ago, running one if not, and returns its error.
func (c *Checker) CheckWithin(ctx context.Context, p tether.Project, maxAge time.Duration) error {
	notBefore := c.clock.Now().Add(-maxAge)
	for {
		c.mu.Lock()
		f := c.checks[p.ID]
		switch {
		case f != nil && f.full && !f.started.Before(notBefore):
			c.mu.Unlock()
			return wait(ctx, f)
		case f != nil && f.running():
			c.mu.Unlock()
			if err := wait(ctx, f); ctx.Err() != nil {
				return err
			}
			continue
		}
		f = &flight{started: c.clock.Now(), full: true, done: make(chan struct{})}
		c.checks[p.ID] = f
		c.mu.Unlock()
		f.err = c.full(ctx, p)
		c.finish(p, f, true)
		return f.err
	}
}

func wait(ctx context.Context, f *flight) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// full checks every part of the project through the API and records the
// results, with a context that outlives the caller's so a result is never
// half-written.
func (c *Checker) full(ctx context.Context, p tether.Project) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r := c.inspect(ctx, p, want{repo: true, key: true, hook: true})
	var errs []error
	if r.looked {
		errs = append(errs, c.noteMove(ctx, p, r.repo))
	}
	errs = append(errs, c.recordExtras(ctx, p, r))
	errs = append(errs, c.record(ctx, withExtras(c.deployKeyHealth(ctx, p, r), r), withExtras(c.webhookHealth(p, r), r)))
	return errors.Join(errs...)
}

// noteMove records where the repository found by UUID lives now: a
// rename or move to offer with Update URL, or none.
func (c *Checker) noteMove(ctx context.Context, p tether.Project, repo bitbucket.Repository) error {
	movedTo := ""
	if !strings.EqualFold(repo.FullName, p.FullName) {
		movedTo = repo.FullName
	}
	return c.store.SetMovedTo(context.WithoutCancel(ctx), p.ID, movedTo)
}

// record stores results that outlive the caller's context.
func (c *Checker) record(ctx context.Context, results ...tether.Health) error {
	var errs []error
	for _, h := range results {
		errs = append(errs, c.store.RecordHealth(context.WithoutCancel(ctx), h))
		if c.OnResult != nil {
			c.OnResult(h.Part, h.Status)
		}
	}
	return errors.Join(errs...)
}

// remote is what Bitbucket says about a project, read with one token.
type remote struct {
	key     tether.DeployKey // ours, as stored
	hook    tether.Webhook
	keyErr  error // reading ours
	hookErr error

	err    error  // a failure before the parts could be read
	step   string // what Tether was doing when err happened
	repo   bitbucket.Repository
	looked bool // repo was found by UUID (so a move is known)

	remoteKey     bitbucket.DeployKey
	remoteKeyErr  error
	remoteHook    bitbucket.Hook
	remoteHookErr error

	// Extra keys and hooks Tether made for the project, besides those
	// in force: leftovers of a create that answered after Tether gave
	// up, or of a delete that failed.
	extraKeys  []bitbucket.DeployKey
	extraHooks []bitbucket.Hook
}

// want says what inspect reads: the repository by UUID first (repo), and
// our deploy key and webhook on it. Without repo the parts are read where
// the project says the repository is, and the UUID is asked only when a
// part is not found there — the one case a move could explain.
type want struct{ repo, key, hook bool }

// inspect reads what w asks with the owner's connection.
func (c *Checker) inspect(ctx context.Context, p tether.Project, w want) remote {
	var r remote
	if w.key {
		r.key, r.keyErr = c.store.ActiveDeployKey(ctx, p.ID)
	}
	if w.hook {
		r.hook, r.hookErr = c.store.ActiveWebhook(ctx, p.ID)
	}
	r.repo = bitbucket.Repository{FullName: p.FullName, Slug: p.RepoSlug, Workspace: bitbucket.Workspace{Slug: p.Workspace}}
	r.err = c.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		r.remoteKeyErr, r.remoteHookErr = nil, nil // a second try (fresh token) starts over
		// Once the budget let a background inspection start, its other
		// calls finish the same answer (a 404 asks: deleted, or moved?),
		// so they go as follow-ups rather than be shed half-way.
		followUp := func() {
			if bitbucket.PriorityOf(ctx) == bitbucket.Background {
				ctx = bitbucket.WithPriority(ctx, bitbucket.FollowUp)
			}
		}
		lookup := func() error {
			r.step = "looked up the repository"
			// By UUID: a rename or move is followed, never mistaken for a
			// removed key or hook.
			repo, err := c.bb.RepositoryByUUID(ctx, token, p.Workspace, p.RepoUUID)
			if err != nil {
				return err
			}
			r.repo, r.looked = repo, true
			r.step = ""
			followUp()
			return nil
		}
		if w.repo {
			if err := lookup(); err != nil {
				return err
			}
		}
		readKey := func() {
			keys, err := c.bb.DeployKeys(ctx, token, r.repo.Workspace.Slug, r.repo.Slug)
			r.remoteKey, r.extraKeys, r.remoteKeyErr = c.ownKeys(p, r.key, keys, err)
			if _, shed := bitbucket.Deferred(r.remoteKeyErr); !shed {
				followUp()
			}
		}
		readHook := func() {
			hooks, err := c.bb.Hooks(ctx, token, r.repo.Workspace.Slug, r.repo.Slug)
			r.remoteHook, r.extraHooks, r.remoteHookErr = c.ownHooks(p, r.hook, hooks, err)
			if _, shed := bitbucket.Deferred(r.remoteHookErr); !shed {
				followUp()
			}
		}
		// Both parts are read even when one answers 401: if the token
		// is fine (Do tries once more with a fresh one, and asks GET
		// /user), each part's answer decides that part only.
		if w.key && r.keyErr == nil {
			readKey()
		}
		if w.hook && r.hookErr == nil {
			readHook()
		}
		for _, err := range []error{r.remoteKeyErr, r.remoteHookErr} {
			if bitbucket.IsUnauthorized(err) {
				return err
			}
		}
		if !r.looked && (bitbucket.IsNotFound(r.remoteKeyErr) || bitbucket.IsNotFound(r.remoteHookErr)) {
			stored := r.repo
			if err := lookup(); err != nil {
				return err
			}
			if !strings.EqualFold(r.repo.FullName, stored.FullName) {
				if bitbucket.IsNotFound(r.remoteKeyErr) {
					readKey()
				}
				if bitbucket.IsNotFound(r.remoteHookErr) {
					readHook()
				}
			}
		}
		return nil
	})
	if bitbucket.IsUnauthorized(r.err) && (bitbucket.IsUnauthorized(r.remoteKeyErr) || bitbucket.IsUnauthorized(r.remoteHookErr)) {
		r.err = nil // a part's own 401, with the account still standing
	}
	return r
}

const detailRateLimited = "Bitbucket is rate limiting Tether; checks pause for a few minutes."

// transient turns a failure to reach Bitbucket into an unknown result.
func transient(part string, p tether.Project, err error, what string) tether.Health {
	h := tether.Health{ProjectID: p.ID, Part: part, Status: tether.Unknown, Reason: tether.ReasonCouldNotCheck}
	var be *bitbucket.Error
	var budget *bitbucket.BudgetError
	until, limited := bitbucket.RateLimited(err)
	switch {
	case errors.Is(err, connections.ErrClientRefused):
		h.Detail = "Bitbucket refuses Tether's OAuth consumer key or secret, so Tether cannot renew access to check; an administrator must correct BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET."
	case limited && !until.IsZero():
		// The 429 itself, or a call held back while its pause lasts:
		// the same end either way.
		h.Detail = fmt.Sprintf("Bitbucket is rate limiting %s's connection; Tether waits until %s before asking again.", p.OwnerName, bitbucket.WaitEnd(until))
	case limited:
		h.Detail = detailRateLimited
	case errors.As(err, &budget):
		h.Detail = fmt.Sprintf("%s's connection has spent its hourly Bitbucket API budget for now; Tether asks again at %s.", p.OwnerName, bitbucket.WaitEnd(budget.Until))
	case errors.As(err, &be) && be.Status >= 500:
		h.Detail = fmt.Sprintf("Bitbucket answered %d while Tether %s; will retry.", be.Status, what)
	default:
		h.Detail = fmt.Sprintf("Could not reach Bitbucket while Tether %s; will retry.", what)
	}
	return h
}

// sshRefused is the verdict of Bitbucket refusing the key over SSH, with
// Bitbucket's reason: a refused key is "SSH Permission denied", anything
// else (a repository SSH does not find, an IP allowlist, two-step
// verification required) "refused over SSH". lead starts the sentence.
func sshRefused(p tether.Project, addr string, r *bitbucket.SSHRefusal, lead string) tether.Health {
	h := tether.Health{ProjectID: p.ID, Part: tether.PartDeployKey, Status: tether.Invalid, Reason: tether.ReasonSSHRefused}
	what := "refused to let it read " + p.FullName
	if errors.Is(r, bitbucket.ErrSSHPermissionDenied) {
		h.Reason, what = tether.ReasonSSHDenied, "refused it"
	}
	h.Detail = fmt.Sprintf("%s %s over SSH at %s. Bitbucket said: “%s”", lead, what, addr, r.Reason)
	return h
}

// resourceRefused is the verdict of a 401, 403 or 404 about one thing
// (the repository, its deploy key or webhook) while the account itself
// still stands: in Bitbucket's words, about that one thing only.
func resourceRefused(h tether.Health, p tether.Project, err error, what string) tether.Health {
	h.Status = tether.Invalid
	if scopes := bitbucket.MissingScopes(err); len(scopes) > 0 {
		h.Reason = tether.ReasonScopeMissing
		h.Detail = fmt.Sprintf("Bitbucket refused to show %s: %s's grant lacks the %s permission (scope). %s must grant access again.",
			what, p.OwnerName, strings.Join(scopes, ", "), p.OwnerName)
		return h
	}
	var be *bitbucket.Error
	words := ""
	if errors.As(err, &be) && be.Reason() != "" {
		words = " Bitbucket said: “" + be.Reason() + "”."
	}
	h.Reason = tether.ReasonOwnerNoAccess
	h.Detail = fmt.Sprintf("Bitbucket refused %s's token for %s (%d), although the account itself is connected.%s", p.OwnerName, what, statusOf(err), words)
	return h
}

func statusOf(err error) int {
	var be *bitbucket.Error
	if errors.As(err, &be) {
		return be.Status
	}
	return 0
}

// shared judges what both parts depend on: the owner's connection and
// their access to the repository. ok is false when that decided the result.
func (c *Checker) shared(part string, p tether.Project, r remote) (tether.Health, bool) {
	h := tether.Health{ProjectID: p.ID, Part: part}
	switch {
	case r.err == nil:
		return h, true
	case errors.Is(r.err, connections.ErrNotConnected):
		h.Status, h.Reason = tether.Invalid, tether.ReasonOAuthRevoked
		h.Detail = fmt.Sprintf("%s's Bitbucket connection is Not Connected, so Tether cannot act on the repository. %s must grant access again on their account page.", p.OwnerName, p.OwnerName)
	case bitbucket.IsTransient(r.err):
		return transient(part, p, r.err, r.step), false
	case len(bitbucket.MissingScopes(r.err)) > 0 || bitbucket.IsUnauthorized(r.err):
		return resourceRefused(h, p, r.err, "the repository "+p.FullName), false
	case bitbucket.IsNotFound(r.err) || bitbucket.IsForbidden(r.err):
		h.Status, h.Reason = tether.Invalid, tether.ReasonOwnerNoAccess
		h.Detail = fmt.Sprintf("Bitbucket no longer shows %s to %s. Give them access again, or re-home the project to someone who has it.", p.FullName, p.OwnerName)
	default:
		c.log.Error("health check", "project_id", p.ID, "err", r.err)
		return transient(part, p, r.err, r.step), false
	}
	return h, false
}

func (c *Checker) deployKeyHealth(ctx context.Context, p tether.Project, r remote) tether.Health {
	if errors.Is(r.keyErr, tether.ErrNotFound) {
		return tether.Health{ProjectID: p.ID, Part: tether.PartDeployKey, Status: tether.Invalid, Reason: tether.ReasonNoDeployKey,
			Detail: "This project has no deploy key. Press Regenerate to create one."}
	}
	if r.keyErr != nil {
		return transient(tether.PartDeployKey, p, r.keyErr, "read the stored key")
	}
	h, ok := c.shared(tether.PartDeployKey, p, r)
	if !ok {
		return h
	}
	err := r.remoteKeyErr
	switch {
	case bitbucket.IsTransient(err):
		return transient(h.Part, p, err, "read the deploy key")
	case len(bitbucket.MissingScopes(err)) > 0 || bitbucket.IsUnauthorized(err):
		return resourceRefused(h, p, err, "the deploy keys of "+r.repo.FullName)
	case bitbucket.IsForbidden(err):
		h.Status, h.Reason = tether.Invalid, tether.ReasonOwnerNoAccess
		h.Detail = fmt.Sprintf("%s is no longer an admin of %s, and only admins can see its deploy keys.", p.OwnerName, r.repo.FullName)
		return h
	case bitbucket.IsNotFound(err) || errors.Is(err, errNotListed):
		h.Status, h.Reason = tether.Invalid, tether.ReasonKeyRemoved
		h.Detail = fmt.Sprintf("The key Tether added (id %d) is no longer on %s; someone removed it. Press Regenerate to add a new one.", r.key.BitbucketKeyID, r.repo.FullName)
		return h
	case err != nil:
		c.log.Error("deploy key check", "project_id", p.ID, "err", err)
		return transient(h.Part, p, err, "read the deploy key")
	}
	if !deploykeys.SameKey(r.remoteKey.Key, r.key.PublicKey) {
		h.Status, h.Reason = tether.Invalid, tether.ReasonKeyDiffers
		h.Detail = "The key with Tether's id on Bitbucket is not the key Tether holds. Press Regenerate to replace it."
		return h
	}
	signer, err := deploykeys.Signer(r.key.PrivateKey)
	if err != nil {
		c.log.Error("deploy key unreadable", "project_id", p.ID, "err", err)
		h.Status, h.Reason, h.Detail = tether.Invalid, tether.ReasonKeyDiffers, "Tether's copy of the private key cannot be read. Press Regenerate."
		return h
	}
	err = c.probeSSH(ctx, c.ssh.Addr, c.ssh.HostKeys, signer, r.repo.Workspace.Slug, r.repo.Slug)
	var refusal *bitbucket.SSHRefusal
	switch {
	case errors.As(err, &refusal):
		return sshRefused(p, c.ssh.Addr, refusal, "Bitbucket lists the key, but")
	case errors.Is(err, bitbucket.ErrSSHHostKeyMismatch):
		h.Status, h.Reason = tether.Unknown, tether.ReasonCouldNotCheck
		h.Detail = fmt.Sprintf("The SSH server at %s did not present a pinned host key (BITBUCKET_SSH_HOST_KEYS), so Tether did not trust it.", c.ssh.Addr)
		return h
	case err != nil:
		return transient(h.Part, p, err, "probed SSH")
	}
	h.Status, h.Reason = tether.Valid, ""
	h.Detail = fmt.Sprintf("The key is on %s and reads the repository over SSH.", r.repo.FullName)
	return h
}

func (c *Checker) webhookHealth(p tether.Project, r remote) tether.Health {
	if errors.Is(r.hookErr, tether.ErrNotFound) {
		return tether.Health{ProjectID: p.ID, Part: tether.PartWebhook, Status: tether.Invalid, Reason: tether.ReasonNoWebhook,
			Detail: "This project has no webhook, so pushes cannot start workflows. Press Regenerate to create one."}
	}
	if r.hookErr != nil {
		return transient(tether.PartWebhook, p, r.hookErr, "read the stored webhook")
	}
	h, ok := c.shared(tether.PartWebhook, p, r)
	if !ok {
		return h
	}
	err, hook := r.remoteHookErr, r.remoteHook
	h.Status = tether.Invalid
	switch {
	case bitbucket.IsTransient(err):
		return transient(h.Part, p, err, "read the webhook")
	case len(bitbucket.MissingScopes(err)) > 0 || bitbucket.IsUnauthorized(err):
		return resourceRefused(h, p, err, "the webhooks of "+r.repo.FullName)
	case bitbucket.IsForbidden(err):
		h.Reason = tether.ReasonOwnerNoAccess
		h.Detail = fmt.Sprintf("%s can no longer manage webhooks on %s (admin rights or the webhook permission are missing).", p.OwnerName, r.repo.FullName)
	case bitbucket.IsNotFound(err) || errors.Is(err, errNotListed):
		h.Reason = tether.ReasonHookDeleted
		h.Detail = fmt.Sprintf("The webhook Tether created ({%s}) is no longer on %s, so pushes do not reach Tether. Press Regenerate.", r.hook.UUID, r.repo.FullName)
	case err != nil:
		c.log.Error("webhook check", "project_id", p.ID, "err", err)
		return transient(h.Part, p, err, "read the webhook")
	case !hook.Active:
		h.Reason, h.Detail = tether.ReasonHookInactive, "The webhook is deactivated on Bitbucket, so pushes do not reach Tether. Press Regenerate."
	case hook.URL != c.hookURL(p):
		h.Reason, h.Detail = tether.ReasonHookWrongURL, fmt.Sprintf("The webhook sends to %s instead of Tether's %s. Press Regenerate.", hook.URL, c.hookURL(p))
	case !slices.Contains(hook.Events, "repo:push"):
		h.Reason, h.Detail = tether.ReasonHookNoPush, "The webhook no longer includes repo:push, so pushes do not start workflows. Press Regenerate."
	case !hook.SecretSet:
		h.Reason, h.Detail = tether.ReasonHookNoSecret, "The webhook has no secret, so Tether refuses its deliveries as unsigned. Press Regenerate."
	default:
		h.Status, h.Reason = tether.Valid, ""
		h.Detail = fmt.Sprintf("The webhook on %s is active, sends repo:push to Tether and signs its deliveries.", r.repo.FullName)
	}
	return h
}

func (c *Checker) hookURL(p tether.Project) string { return c.hookBase + p.HookToken }
