// Package health checks the two things that tie a project to its
// repository — the deploy key and the webhook — and records the result with
// a reason, never a bare red. Bitbucket being unreachable, slow or rate
// limiting is "unknown", never "invalid": badges must not flap on a network
// blip. Badge polls only read what is recorded; checks run on "Check now",
// after a change, and in the background on a budget.
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

	"golang.org/x/crypto/ssh"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

const (
	statusChecking = "checking"
	checkTimeout   = 20 * time.Second
	defaultStale   = 30 * time.Second
	// A 429 pauses the project's background checks this long.
	rateLimitedFallback = 5 * time.Minute
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
}

// Connections hands out the project owner's token.
type Connections interface {
	Do(ctx context.Context, userID int64, fn func(token string) error) error
}

// Bitbucket is the part of the client the checks use.
type Bitbucket interface {
	RepositoryByUUID(ctx context.Context, accessToken, lastWorkspace, uuid string) (bitbucket.Repository, error)
	DeployKey(ctx context.Context, accessToken, workspace, slug string, id int) (bitbucket.DeployKey, error)
	Hook(ctx context.Context, accessToken, workspace, slug, uuid string) (bitbucket.Hook, error)
}

// SSH is where deploy keys are probed.
type SSH struct {
	Addr     string
	HostKeys []ssh.PublicKey
}

// Checker runs and records checks.
type Checker struct {
	// Stale is how old a result may be before a badge poll starts a check
	// in the background (bounding the API calls a watched page costs).
	Stale time.Duration

	log      *slog.Logger
	store    Store
	conns    Connections
	bb       Bitbucket
	ssh      SSH
	hookBase string // webhook URLs are hookBase + the project's token

	mu       sync.Mutex
	running  map[int64]bool      // project checks in flight
	backoff  map[int64]time.Time // rate limited: no background check before
	probeSSH func(ctx context.Context, addr string, hostKeys []ssh.PublicKey, signer ssh.Signer, workspace, slug string) error
}

// New returns a checker.
func New(log *slog.Logger, store Store, conns Connections, bb Bitbucket, sshCfg SSH, hookBase string) *Checker {
	return &Checker{
		Stale: defaultStale,
		log:   log, store: store, conns: conns, bb: bb, ssh: sshCfg, hookBase: hookBase,
		running:  map[int64]bool{},
		backoff:  map[int64]time.Time{},
		probeSSH: bitbucket.ProbeSSH,
	}
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
}

// Badge reads the recorded health of a part. It never calls Bitbucket; when
// the record is stale it starts a check in the background.
func (c *Checker) Badge(ctx context.Context, p tether.Project, part string, kick bool) (Badge, error) {
	h, err := c.store.Health(ctx, p.ID, part)
	if err != nil && !errors.Is(err, tether.ErrNotFound) {
		return Badge{}, err
	}
	if kick && (errors.Is(err, tether.ErrNotFound) || time.Since(h.CheckedAt) >= c.Stale) {
		c.CheckInBackground(p.ID)
	}
	b := Badge{Part: part, Status: h.Status, Reason: h.Reason, Detail: h.Detail, Checked: h.CheckedAt, Since: h.Since}
	b.Checking = c.Checking(p.ID)
	if errors.Is(err, tether.ErrNotFound) || b.Checking && b.Status == "" {
		b.Status, b.Checking = statusChecking, true
	}
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
	return c.running[projectID]
}

// begin marks a project check as running; false if one already is.
func (c *Checker) begin(projectID int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[projectID] {
		return false
	}
	c.running[projectID] = true
	return true
}

func (c *Checker) end(projectID int64) {
	c.mu.Lock()
	delete(c.running, projectID)
	c.mu.Unlock()
}

// CheckInBackground starts a check of the project unless one is running
// or Bitbucket asked us to back off.
func (c *Checker) CheckInBackground(projectID int64) {
	c.mu.Lock()
	until := c.backoff[projectID]
	c.mu.Unlock()
	if time.Now().Before(until) || !c.begin(projectID) {
		return
	}
	go func() {
		defer c.end(projectID)
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		p, err := c.store.Project(ctx, projectID)
		if err != nil {
			if !errors.Is(err, tether.ErrNotFound) {
				c.log.Error("background health check", "project_id", projectID, "err", err)
			}
			return
		}
		c.run(ctx, p)
	}()
}

// Check runs the checks of a project now and records them. Concurrent
// checks of one project share the running one's result.
func (c *Checker) Check(ctx context.Context, p tether.Project) error {
	if !c.begin(p.ID) {
		return c.wait(ctx, p.ID)
	}
	defer c.end(p.ID)
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	return c.run(ctx, p)
}

func (c *Checker) wait(ctx context.Context, projectID int64) error {
	for c.Checking(projectID) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// run checks every part of the project and records the results, with a
// context that outlives the caller's so a result is never half-written.
func (c *Checker) run(ctx context.Context, p tether.Project) error {
	r := c.inspect(ctx, p)
	var errs []error
	if r.err == nil {
		// Found by UUID under another name: a rename or move to offer.
		movedTo := ""
		if !strings.EqualFold(r.repo.FullName, p.FullName) {
			movedTo = r.repo.FullName
		}
		errs = append(errs, c.store.SetMovedTo(context.WithoutCancel(ctx), p.ID, movedTo))
	}
	results := []tether.Health{c.deployKeyHealth(ctx, p, r), c.webhookHealth(p, r)}
	for _, h := range results {
		if h.Status == tether.Unknown {
			c.noteRateLimit(p.ID, h)
		}
		errs = append(errs, c.store.RecordHealth(context.WithoutCancel(ctx), h))
	}
	return errors.Join(errs...)
}

// remote is what Bitbucket says about a project, read with one token.
type remote struct {
	key     tether.DeployKey // ours, as stored
	hook    tether.Webhook
	keyErr  error // reading ours
	hookErr error

	err  error  // a failure before the parts could be read
	step string // what Tether was doing when err happened
	repo bitbucket.Repository

	remoteKey     bitbucket.DeployKey
	remoteKeyErr  error
	remoteHook    bitbucket.Hook
	remoteHookErr error
}

// inspect reads the repository (by UUID) and our key and hook on it with
// the owner's connection.
func (c *Checker) inspect(ctx context.Context, p tether.Project) remote {
	var r remote
	r.key, r.keyErr = c.store.ActiveDeployKey(ctx, p.ID)
	r.hook, r.hookErr = c.store.ActiveWebhook(ctx, p.ID)
	r.err = c.conns.Do(ctx, p.OwnerID, func(token string) error {
		var err error
		r.step = "looked up the repository"
		// By UUID: a rename or move is followed, never mistaken for a
		// removed key or hook.
		if r.repo, err = c.bb.RepositoryByUUID(ctx, token, p.Workspace, p.RepoUUID); err != nil {
			return err
		}
		if r.keyErr == nil {
			r.remoteKey, r.remoteKeyErr = c.bb.DeployKey(ctx, token, r.repo.Workspace.Slug, r.repo.Slug, r.key.BitbucketKeyID)
			if bitbucket.IsUnauthorized(r.remoteKeyErr) {
				return r.remoteKeyErr
			}
		}
		if r.hookErr == nil {
			r.remoteHook, r.remoteHookErr = c.bb.Hook(ctx, token, r.repo.Workspace.Slug, r.repo.Slug, r.hook.UUID)
			if bitbucket.IsUnauthorized(r.remoteHookErr) {
				return r.remoteHookErr
			}
		}
		r.step = ""
		return nil
	})
	return r
}

func (c *Checker) noteRateLimit(projectID int64, h tether.Health) {
	if h.Detail != detailRateLimited {
		return
	}
	c.mu.Lock()
	c.backoff[projectID] = time.Now().Add(rateLimitedFallback)
	c.mu.Unlock()
}

const detailRateLimited = "Bitbucket is rate limiting Tether; checks pause for a few minutes."

// transient turns a failure to reach Bitbucket into an unknown result.
func transient(part string, p tether.Project, err error, what string) tether.Health {
	h := tether.Health{ProjectID: p.ID, Part: part, Status: tether.Unknown, Reason: tether.ReasonCouldNotCheck}
	var be *bitbucket.Error
	switch {
	case errors.As(err, &be) && be.Status == 429:
		h.Detail = detailRateLimited
	case errors.As(err, &be) && be.Status >= 500:
		h.Detail = fmt.Sprintf("Bitbucket answered %d while Tether %s; will retry.", be.Status, what)
	default:
		h.Detail = fmt.Sprintf("Could not reach Bitbucket while Tether %s; will retry.", what)
	}
	return h
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
	case bitbucket.IsForbidden(err):
		h.Status, h.Reason = tether.Invalid, tether.ReasonOwnerNoAccess
		h.Detail = fmt.Sprintf("%s is no longer an admin of %s, and only admins can see its deploy keys.", p.OwnerName, r.repo.FullName)
		return h
	case bitbucket.IsNotFound(err):
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
	switch {
	case errors.Is(err, bitbucket.ErrSSHPermissionDenied):
		h.Status, h.Reason = tether.Invalid, tether.ReasonSSHDenied
		h.Detail = fmt.Sprintf("Bitbucket lists the key, but refused it over SSH at %s.", c.ssh.Addr)
		return h
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
	case bitbucket.IsForbidden(err):
		h.Reason = tether.ReasonOwnerNoAccess
		h.Detail = fmt.Sprintf("%s can no longer manage webhooks on %s (admin rights or the webhook permission are missing).", p.OwnerName, r.repo.FullName)
	case bitbucket.IsNotFound(err):
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
