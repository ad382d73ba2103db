// Package projects creates CI projects from Bitbucket repositories and
// keeps the two parts that tie each to its repository: the deploy key
// Tether generates and registers, and the webhook it creates.
//
// Every change of a part — Create, Regenerate, Change to another
// repository, Re-home, Delete — goes through one flow (parts.go): create
// the new part on the repository, confirm it, store it, and only then let
// the old one go; on any failure undo what was created. A part Tether let
// go of but Bitbucket has not confirmed gone — a failed delete, a create
// that answered too late — is a leftover, recorded in the same transaction
// and removed by the Cleanup; Tether never touches a key or hook that is
// not its own (the tether.Marker in its label says whose it is).
//
// The work is split by job: Lifecycle changes projects, Choices lists the
// repositories to make one from, Reader reads what a project page shows,
// Cleanup removes leftovers. Service bundles them for consumers that
// declare one interface over several.
package projects

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/problem"
	"tether/internal/repourl"
	"tether/internal/tether"
)

// Store is the database projects use: the union of what each service
// declares.
type Store interface {
	choicesStore
	readStore
	lifecycleStore
	cleanupStore
}

// Connections gives the token of a user's Bitbucket connection, with the
// connection's API budget in the context.
type Connections interface {
	Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error
}

// Bitbucket is the part of the client projects use. Writes address the
// repository by its "{uuid}" in place of the slug (see place).
type Bitbucket interface {
	RepositoriesWithAdmin(ctx context.Context, accessToken string) ([]bitbucket.Repository, error)
	Repository(ctx context.Context, accessToken, workspace, repoSlugOrUUID string) (bitbucket.Repository, error)
	RepositoryByUUID(ctx context.Context, accessToken, lastWorkspace, uuid string) (bitbucket.Repository, error)
	DeployKeys(ctx context.Context, accessToken, workspace, slug string) ([]bitbucket.DeployKey, error)
	DeployKey(ctx context.Context, accessToken, workspace, slug string, id int) (bitbucket.DeployKey, error)
	CreateDeployKey(ctx context.Context, accessToken, workspace, slug, authorizedKey, label string) (bitbucket.DeployKey, error)
	DeleteDeployKey(ctx context.Context, accessToken, workspace, slug string, id int) error
	Hooks(ctx context.Context, accessToken, workspace, slug string) ([]bitbucket.Hook, error)
	CreateHook(ctx context.Context, accessToken, workspace, slug string, in bitbucket.HookInput) (bitbucket.Hook, error)
	DeleteHook(ctx context.Context, accessToken, workspace, slug, uuid string) error
}

// Checker re-checks a project after a change.
type Checker interface {
	Check(ctx context.Context, p tether.Project) error
}

// Config is where the projects' outside addresses come from.
type Config struct {
	HookBase string        // TETHER_PUBLIC_URL + the receiver's path, ending in "/"
	Instance string        // the marker's instance: tether.InstanceOf(TETHER_PUBLIC_URL)
	Hosts    repourl.Hosts // the configured Bitbucket, for URLs people paste
	// Clock times the cleanup's retries; nil means the real clock.
	Clock clockwork.Clock
}

// Service is every projects service together. It has no methods of its
// own: each embedded service has one job.
type Service struct {
	*Lifecycle
	*Choices
	*Reader
	Cleanup *Cleanup
}

// New returns the projects services over one store, client and set of
// per-project locks.
func New(log *slog.Logger, store Store, conns Connections, bb Bitbucket, checker Checker, cfg Config) *Service {
	clock := cfg.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	f := &parts{log: log, bb: bb, store: store, hookBase: cfg.HookBase, instance: cfg.Instance, now: clock.Now}
	locks := &projectLocks{held: map[int64]*sync.Mutex{}}
	choices := newChoices(store, conns, bb)
	cleanup := &Cleanup{Backoff: DefaultBackoff, log: log, store: store, conns: conns, parts: f, locks: locks, clock: clock}
	f.retryIn = cleanup.retryIn
	return &Service{
		Lifecycle: &Lifecycle{log: log, store: store, conns: conns, bb: bb, checker: checker, parts: f, locks: locks, choices: choices, hosts: cfg.Hosts},
		Choices:   choices,
		Reader:    &Reader{store: store, hookBase: cfg.HookBase, hosts: cfg.Hosts},
		Cleanup:   cleanup,
	}
}

// projectLocks serialises the changes of one project's parts: a
// Lifecycle operation and the Cleanup never work on the same project at
// once, so a part just created is never taken for a leftover.
type projectLocks struct {
	mu   sync.Mutex
	held map[int64]*sync.Mutex
}

// lock locks project id and returns its unlock.
func (l *projectLocks) lock(id int64) func() {
	l.mu.Lock()
	m, ok := l.held[id]
	if !ok {
		m = &sync.Mutex{}
		l.held[id] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// ErrNoProject is what anyone outside a project's organization gets: it
// says nothing about whether the project exists.
var ErrNoProject = problem.New(problem.NotFound, "There is no such project.")

// bitbucketProblem turns a Bitbucket failure into a message for people.
func bitbucketProblem(err error, doing string) error {
	if _, ok := problem.As(err); ok {
		return err
	}
	if p := scopeProblem(err, doing); p != nil {
		return p
	}
	var budget *bitbucket.BudgetError
	until, limited := bitbucket.RateLimited(err)
	after := "in a few minutes"
	if !until.IsZero() {
		after = "after " + bitbucket.WaitEnd(until)
	}
	switch {
	case limited && errors.As(err, &budget):
		return problem.Wrap(problem.Unavailable, err, "Bitbucket is rate limiting this connection, so Tether did not ask it to %s. Nothing was changed; try again %s.", doing, after)
	case limited:
		return problem.Wrap(problem.Unavailable, err, "Bitbucket is rate limiting this connection and did not %s. Nothing was changed; try again %s.", doing, after)
	case errors.As(err, &budget):
		return problem.Wrap(problem.Unavailable, err, "This connection has spent its hourly Bitbucket API budget for now, so Tether did not ask Bitbucket to %s. Nothing was changed; try again after %s.", doing, bitbucket.WaitEnd(budget.Until))
	case errors.Is(err, connections.ErrNotConnected):
		return connections.ErrNotConnected
	case bitbucket.IsTransient(err):
		return problem.Wrap(problem.Unavailable, err, "Could not reach Bitbucket to %s. Nothing was changed; please try again.", doing)
	}
	var be *bitbucket.Error
	if errors.As(err, &be) {
		return problem.Wrap(problem.Unavailable, err, "Bitbucket refused to %s: %s", doing, cmp.Or(be.Reason(), fmt.Sprint(be.Status)))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// scopeProblem explains a 403 naming scopes the grant lacks, with Grant
// access as the fix; nil for any other error.
func scopeProblem(err error, doing string) error {
	scopes := bitbucket.MissingScopes(err)
	if len(scopes) == 0 {
		return nil
	}
	names := strings.Join(scopes, ", ")
	return problem.Grant(problem.Forbidden, err, "Bitbucket refused to %s: the grant lacks the %s permission (scope). Grant access again; the OAuth consumer must include %s.", doing, names, names)
}

// audit starts an audit entry about the project by actor.
func audit(p tether.Project, actorID int64, action, detail string) tether.Audit {
	return tether.Audit{OrgID: p.OrgID, ActorID: actorID, Action: action, ProjectID: p.ID, ProjectName: p.Name, Detail: detail}
}

// randomToken is 32 random bytes, URL-safe: webhook path tokens and
// secrets.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// attempt is a short random token naming one create in its marker.
func attempt() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DefaultBackoff is how long the Cleanup waits before each new try at a
// leftover: a few minutes first (Bitbucket's trouble is often brief, and a
// create that answered late shows up within them), then hours. After the
// last it gives up and says so in the audit log: about a day in all.
var DefaultBackoff = []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, 2 * time.Hour, 6 * time.Hour, 15 * time.Hour}
