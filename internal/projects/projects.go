// Package projects creates CI projects from Bitbucket repositories and
// keeps what ties them together: the deploy key Tether generates and
// registers on the repository. Every change on Bitbucket follows one rule:
// create the new thing first, store it, then remove the old one — so a
// failure part-way never leaves a project without a working key, and never
// leaves a half project behind.
package projects

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/problem"
	"tether/internal/repourl"
	"tether/internal/tether"
	"tether/internal/webhooks"
)

// Store is the part of the database projects use.
type Store interface {
	CreateProject(ctx context.Context, p tether.Project, key tether.DeployKey, hook tether.Webhook, actorID int64) (tether.Project, error)
	Project(ctx context.Context, id int64) (tether.Project, error)
	ProjectsInOrg(ctx context.Context, orgID int64) ([]tether.Project, error)
	Role(ctx context.Context, orgID, userID int64) (string, error)
	IdentityByUser(ctx context.Context, userID int64) (tether.Identity, error)
	RehomeProject(ctx context.Context, projectID, newOwner int64, key tether.DeployKey, hook tether.Webhook, a tether.Audit) error
	DeleteProject(ctx context.Context, projectID int64, entries ...tether.Audit) error
	UsedRepositories(ctx context.Context) (map[string]bool, error)
	ActiveDeployKey(ctx context.Context, projectID int64) (tether.DeployKey, error)
	ActiveDeployKeyPublic(ctx context.Context, projectID int64) (tether.DeployKey, error)
	RetiringDeployKeys(ctx context.Context, projectID int64) ([]tether.DeployKey, error)
	ReplaceDeployKey(ctx context.Context, projectID int64, next tether.DeployKey, a tether.Audit) error
	DeleteDeployKey(ctx context.Context, id int64) error
	ActiveWebhook(ctx context.Context, projectID int64) (tether.Webhook, error)
	ActiveWebhookPublic(ctx context.Context, projectID int64) (tether.Webhook, error)
	RetiringWebhooks(ctx context.Context, projectID int64) ([]tether.Webhook, error)
	ReplaceWebhook(ctx context.Context, projectID int64, next tether.Webhook, a tether.Audit) error
	DeleteWebhook(ctx context.Context, id int64) error
	RecentWorkflows(ctx context.Context, projectID int64, limit int) ([]tether.Workflow, error)
	RecentDeliveries(ctx context.Context, projectID int64, limit int) ([]tether.Delivery, error)
	LastAccepted(ctx context.Context, projectID int64) (time.Time, error)
	Refusals(ctx context.Context, projectID int64) ([]tether.Refusal, error)
	UpdateRepository(ctx context.Context, projectID int64, r tether.Repository, a tether.Audit) error
	SwitchRepository(ctx context.Context, projectID int64, r tether.Repository, key tether.DeployKey, hook tether.Webhook, a tether.Audit) error
}

// Connections gives the acting user's token.
type Connections interface {
	Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error
}

// Bitbucket is the part of the client projects use.
type Bitbucket interface {
	Repositories(ctx context.Context, accessToken, role string) ([]bitbucket.Repository, error)
	Repository(ctx context.Context, accessToken, workspace, repoSlugOrUUID string) (bitbucket.Repository, error)
	RepositoryByUUID(ctx context.Context, accessToken, lastWorkspace, uuid string) (bitbucket.Repository, error)
	CreateDeployKey(ctx context.Context, accessToken, workspace, slug, authorizedKey, label string) (bitbucket.DeployKey, error)
	DeleteDeployKey(ctx context.Context, accessToken, workspace, slug string, id int) error
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
	Hosts    repourl.Hosts // the configured Bitbucket, for URLs people paste
}

// Service manages projects.
type Service struct {
	// ListFresh is how recent a repository list must be to answer a
	// request for a fresh one ("Refresh list", the troubleshooting
	// checklist): pressing again and again lists every workspace once.
	ListFresh time.Duration

	hookBase string
	hosts    repourl.Hosts
	log      *slog.Logger
	store    Store
	conns    Connections
	bb       Bitbucket
	checker  Checker

	mu      sync.Mutex
	cache   map[int64]repoList // repository lists per user, for the picker's search
	listing singleflight.Group // one listing per user at a time
}

type repoList struct {
	repos   []bitbucket.Repository
	unread  []Unread
	fetched time.Time
}

// repoListTTL is how long the picker reuses a user's repository list while
// they type a search, instead of asking Bitbucket on every keystroke.
const repoListTTL = 2 * time.Minute

// New returns the projects service.
func New(log *slog.Logger, store Store, conns Connections, bb Bitbucket, checker Checker, cfg Config) *Service {
	return &Service{ListFresh: 10 * time.Second, hookBase: cfg.HookBase, hosts: cfg.Hosts, log: log, store: store, conns: conns, bb: bb, checker: checker, cache: map[int64]repoList{}}
}

// Choice is a repository in the New project picker.
type Choice struct {
	bitbucket.Repository
	Used bool // a project for it exists
}

// Unread is a workspace the picker could not read, and why, for people.
type Unread struct {
	Workspace string // its slug
	Reason    string // e.g. "Bitbucket answered 403: …"
	Transient bool   // Bitbucket could not be asked: trying again may help
	Grant     bool   // the grant lacks a scope: the fix is Grant access
}

// Listing is what the picker shows: the repositories it could read, and
// the workspaces it could not (one workspace's answer decides that
// workspace only).
type Listing struct {
	Choices []Choice
	Unread  []Unread
}

// MaxSearch bounds the picker's search: "workspace/slug" is at most 191
// characters, and a search that long finds the one repository.
const MaxSearch = 200

// Repositories lists what the user can make a project from, filtered by a
// case-insensitive name search of at most MaxSearch characters, and the
// workspaces that could not be read. fresh skips the short-lived cache.
func (s *Service) Repositories(ctx context.Context, userID int64, search string, fresh bool) (Listing, error) {
	if utf8.RuneCountInString(search) > MaxSearch {
		return Listing{}, problem.Field("q", "Search for at most %d characters of a repository's name.", MaxSearch)
	}
	list, err := s.repositories(ctx, userID, fresh)
	if err != nil {
		return Listing{}, err
	}
	used, err := s.store.UsedRepositories(ctx)
	if err != nil {
		return Listing{}, err
	}
	search = strings.ToLower(strings.TrimSpace(search))
	out := Listing{Unread: list.unread}
	for _, r := range list.repos {
		if search != "" && !strings.Contains(strings.ToLower(r.FullName), search) {
			continue
		}
		out.Choices = append(out.Choices, Choice{Repository: r, Used: used[r.UUID]})
	}
	return out, nil
}

func (s *Service) repositories(ctx context.Context, userID int64, fresh bool) (repoList, error) {
	s.mu.Lock()
	cached, ok := s.cache[userID]
	s.mu.Unlock()
	maxAge := repoListTTL
	if fresh {
		maxAge = s.ListFresh
	}
	if ok && time.Since(cached.fetched) < maxAge {
		return cached, nil
	}
	// People typing, and several tabs, share one listing in flight.
	v, err, _ := s.listing.Do(strconv.FormatInt(userID, 10), func() (any, error) {
		var repos []bitbucket.Repository
		var partial *bitbucket.PartialError
		err := s.conns.Do(ctx, userID, func(ctx context.Context, token string) error {
			var err error
			repos, err = s.bb.Repositories(ctx, token, "member")
			if errors.As(err, &partial) {
				return nil // what was read is the answer; partial says the rest
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(repos, func(i, j int) bool { return repos[i].FullName < repos[j].FullName })
		list := repoList{repos: repos, fetched: time.Now()}
		if partial != nil {
			for _, u := range partial.Unread {
				list.unread = append(list.unread, Unread{Workspace: u.Workspace.Slug, Reason: unreadReason(u.Err),
					Transient: bitbucket.IsTransient(u.Err), Grant: len(bitbucket.MissingScopes(u.Err)) > 0})
			}
		}
		s.mu.Lock()
		s.cache[userID] = list
		s.mu.Unlock()
		return list, nil
	})
	if err != nil {
		return repoList{}, bitbucketProblem(err, "list your repositories")
	}
	return v.(repoList), nil
}

// unreadReason says why a workspace could not be listed, in Bitbucket's
// words where it gave some.
func unreadReason(err error) string {
	var budget *bitbucket.BudgetError
	var be *bitbucket.Error
	switch {
	case errors.As(err, &budget) && budget.Paused:
		return "Bitbucket is rate limiting this connection until " + budget.Until.UTC().Format("15:04 UTC")
	case errors.As(err, &budget):
		return "this connection's hourly Bitbucket API budget is spent until " + budget.Until.UTC().Format("15:04 UTC")
	case len(bitbucket.MissingScopes(err)) > 0:
		return "the grant lacks the " + strings.Join(bitbucket.MissingScopes(err), ", ") + " permission"
	case errors.As(err, &be) && be.Reason() != "":
		return fmt.Sprintf("Bitbucket answered %d: %s", be.Status, be.Reason())
	case errors.As(err, &be):
		return fmt.Sprintf("Bitbucket answered %d", be.Status)
	}
	return "Bitbucket did not answer"
}

// bitbucketProblem turns a Bitbucket failure into a message for people.
func bitbucketProblem(err error, doing string) error {
	if _, ok := problem.As(err); ok {
		return err
	}
	if p := scopeProblem(err, doing); p != nil {
		return p
	}
	var budget *bitbucket.BudgetError
	switch {
	case errors.As(err, &budget) && budget.Paused:
		return problem.Wrap(problem.Unavailable, err, "Bitbucket is rate limiting this connection, so Tether did not ask it to %s. Nothing was changed; try again after %s.", doing, budget.Until.UTC().Format("15:04 UTC"))
	case errors.As(err, &budget):
		return problem.Wrap(problem.Unavailable, err, "This connection has spent its hourly Bitbucket API budget for now, so Tether did not ask Bitbucket to %s. Nothing was changed; try again after %s.", doing, budget.Until.UTC().Format("15:04 UTC"))
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

// ErrNoProject is what anyone outside a project's organization gets: it
// says nothing about whether the project exists.
var ErrNoProject = problem.New(problem.NotFound, "There is no such project.")

// Get returns a project and the person's role in its organization; people
// outside it get ErrNoProject. It does not depend on the organization the
// person looks at: a project's URL works for every member.
func (s *Service) Get(ctx context.Context, userID, projectID int64) (tether.Project, string, error) {
	p, err := s.store.Project(ctx, projectID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Project{}, "", ErrNoProject
	}
	if err != nil {
		return tether.Project{}, "", err
	}
	role, err := s.store.Role(ctx, p.OrgID, userID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Project{}, "", ErrNoProject
	}
	return p, role, err
}

// List returns an organization's projects.
func (s *Service) List(ctx context.Context, orgID int64) ([]tether.Project, error) {
	return s.store.ProjectsInOrg(ctx, orgID)
}

// audit starts an audit entry about the project by actor.
func audit(p tether.Project, actorID int64, action, detail string) tether.Audit {
	return tether.Audit{OrgID: p.OrgID, ActorID: actorID, Action: action, ProjectID: p.ID, ProjectName: p.Name, Detail: detail}
}

// Key returns the public half of the project's deploy key in force.
func (s *Service) Key(ctx context.Context, p tether.Project) (tether.DeployKey, error) {
	k, err := s.store.ActiveDeployKeyPublic(ctx, p.ID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.DeployKey{}, nil
	}
	return k, err
}

// Create makes a project of organization orgID from the repository
// "workspace/slug" (or any URL of it; both in Bitbucket's canonical form
// first, see repourl.Name): it looks the repository up with the user's connection,
// registers a new deploy key and webhook on it, and stores all of it. When
// a step fails what was added to Bitbucket is taken off again, so nothing
// is left half made.
func (s *Service) Create(ctx context.Context, orgID, userID int64, fullName string) (tether.Project, error) {
	// A name Bitbucket cannot have is not worth a call on the person's
	// budget; any other is looked up as Bitbucket writes it.
	named, err := repourl.Name(fullName, s.hosts)
	var perr *repourl.Error
	if errors.As(err, &perr) {
		return tether.Project{}, problem.Field("repository", "%s", perr.Message)
	}
	if err != nil {
		return tether.Project{}, err
	}
	ws, slug := named.Workspace, named.Slug
	fullName = named.FullName()
	var p tether.Project
	err = s.conns.Do(ctx, userID, func(ctx context.Context, token string) error {
		repo, err := s.bb.Repository(ctx, token, ws, slug)
		switch {
		case bitbucket.IsUnauthorized(err):
			return err // Do refreshes the token and tries again
		case bitbucket.IsNotFound(err):
			return problem.New(problem.NotFound, "Bitbucket has no repository %s that you can see.", fullName)
		case err != nil:
			return bitbucketProblem(err, "look up "+fullName)
		}
		if used, err := s.store.UsedRepositories(ctx); err != nil {
			return err
		} else if used[repo.UUID] {
			return problem.New(problem.Conflict, "%s already has a project in Tether.", repo.FullName)
		}
		hookToken := randomToken()
		in, err := s.addIntegration(ctx, token, repo, hookToken, problem.New(problem.Forbidden,
			"You need admin rights on %s to create a project from it: Tether adds a deploy key to the repository. Ask a repository admin to create the project.", repo.FullName))
		if err != nil {
			return err
		}
		p, err = s.store.CreateProject(ctx, tether.Project{
			OrgID: orgID, Name: repo.FullName, OwnerID: userID, RepoUUID: repo.UUID, Workspace: repo.Workspace.Slug, RepoSlug: repo.Slug,
			FullName: repo.FullName, CloneSSH: repo.CloneSSH, HTMLURL: repo.HTMLURL, Private: repo.IsPrivate, HookToken: hookToken,
		}, in.key, in.hook, userID)
		if err != nil {
			s.undo(ctx, token, in)
			if errors.Is(err, tether.ErrRepositoryTaken) {
				return problem.New(problem.Conflict, "%s already has a project in Tether.", repo.FullName)
			}
			return fmt.Errorf("projects: store new project: %w", err)
		}
		return nil
	})
	if err != nil {
		return tether.Project{}, bitbucketProblem(err, "create the project")
	}
	s.forgetRepositories(userID)
	if err := s.checker.Check(ctx, p); err != nil {
		s.log.Warn("first health check", "project_id", p.ID, "err", err)
	}
	return p, nil
}

// HookURL is the webhook URL of a project.
func (s *Service) HookURL(p tether.Project) string { return s.hookBase + p.HookToken }

func (s *Service) hookInput(project, hookToken, secret string) bitbucket.HookInput {
	return bitbucket.HookInput{
		Description: "Tether: " + project, URL: s.hookBase + hookToken,
		Active: true, Events: webhooks.Events, Secret: secret,
	}
}

// hookProblem explains a refused hook creation, and what that left
// (outcome).
func hookProblem(err error, repo, outcome string) error {
	var be *bitbucket.Error
	switch {
	case len(bitbucket.MissingScopes(err)) > 0:
		names := strings.Join(bitbucket.MissingScopes(err), ", ")
		return problem.Grant(problem.Forbidden, err, "The Bitbucket grant lacks the %s permission (scope), so Tether cannot create the webhook on %s. %s Grant access again.", names, repo, outcome)
	case errors.As(err, &be) && be.FieldReason("url") != "":
		return problem.Wrap(problem.Unavailable, err, "Bitbucket refused the webhook URL Tether gave it (url: %s) on %s. The URL is Tether's public URL (TETHER_PUBLIC_URL) and must be one Bitbucket accepts and can reach. %s", be.FieldReason("url"), repo, outcome)
	case errors.As(err, &be) && be.Status == 403:
		return problem.New(problem.Forbidden, "Admin rights on %s are needed to create its webhook. %s", repo, outcome)
	case bitbucket.IsTransient(err):
		return problem.Wrap(problem.Unavailable, err, "Could not reach Bitbucket to create the webhook on %s. %s", repo, outcome)
	case errors.As(err, &be):
		return problem.Wrap(problem.Unavailable, err, "Bitbucket refused to create the webhook on %s: %s. %s", repo, cmp.Or(be.Reason(), fmt.Sprint(be.Status)), outcome)
	}
	return err
}

// randomToken is 32 random bytes, URL-safe: webhook path tokens and
// secrets.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// undoHook removes a hook Tether just created when what followed failed.
func (s *Service) undoHook(ctx context.Context, token, ws, slug, uuid string) {
	if err := s.bb.DeleteHook(context.WithoutCancel(ctx), token, ws, slug, uuid); err != nil {
		s.log.Error("could not remove the webhook after a failed change; remove it on Bitbucket",
			"repository", ws+"/"+slug, "hook_uuid", uuid, "err", err)
	}
}

// undoKey removes a key Tether just added when what followed failed.
func (s *Service) undoKey(ctx context.Context, token, ws, slug string, id int) {
	if err := s.bb.DeleteDeployKey(context.WithoutCancel(ctx), token, ws, slug, id); err != nil {
		s.log.Error("could not remove the deploy key after a failed change; remove it on Bitbucket",
			"repository", ws+"/"+slug, "key_id", id, "err", err)
	}
}

func (s *Service) forgetRepositories(userID int64) {
	s.mu.Lock()
	delete(s.cache, userID)
	s.mu.Unlock()
}

// RegenerateResult says how a Regenerate went when it did not fail.
type RegenerateResult struct {
	// Warning is set when the new key is in force but the old one could
	// not be removed from Bitbucket.
	Warning string
}

// RegenerateKey replaces the project's deploy key: the new key is added to
// Bitbucket and stored first, then the old one is deleted. If adding or
// storing fails, the old key stays in force and nothing else changes.
func (s *Service) RegenerateKey(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	key, err := deploykeys.Generate(p.FullName)
	if err != nil {
		return RegenerateResult{}, err
	}
	var res RegenerateResult
	err = s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		remote, err := s.bb.CreateDeployKey(ctx, token, p.Workspace, p.RepoSlug, key.Public, deploykeys.Label(p.FullName))
		switch {
		case len(bitbucket.MissingScopes(err)) > 0:
			return scopeProblem(err, "add the new deploy key; the old key stays in force")
		case bitbucket.IsForbidden(err):
			return problem.New(problem.Forbidden, "%s has no admin rights on %s any more, so the key cannot be replaced. The old key stays in force.", p.OwnerName, p.FullName)
		case err != nil:
			return bitbucketProblem(err, "add the new deploy key; the old key stays in force")
		}
		err = s.store.ReplaceDeployKey(ctx, p.ID, tether.DeployKey{BitbucketKeyID: remote.ID, PublicKey: key.Public, Fingerprint: key.Fingerprint, PrivateKey: key.Private},
			audit(p, actorID, "deploy key regenerated", key.Fingerprint))
		if err != nil {
			s.undoKey(ctx, token, p.Workspace, p.RepoSlug, remote.ID)
			return problem.Wrap(problem.Unavailable, err, "Tether could not store the new key, so it was removed from Bitbucket again. The old key stays in force; please try again.")
		}
		res.Warning = s.retireAll(ctx, token, p)
		return nil
	})
	if err != nil {
		return RegenerateResult{}, bitbucketProblem(err, "replace the deploy key")
	}
	if err := s.checker.Check(ctx, p); err != nil {
		s.log.Warn("health check after regenerate", "project_id", p.ID, "err", err)
	}
	return res, nil
}

// retireAll deletes replaced keys from Bitbucket — the one just replaced
// and any an earlier Regenerate could not delete — then forgets them. A key
// already gone from Bitbucket counts as deleted. It returns a warning for
// the keys that remain.
func (s *Service) retireAll(ctx context.Context, token string, p tether.Project) string {
	keys, err := s.store.RetiringDeployKeys(ctx, p.ID)
	if err != nil {
		s.log.Error("list replaced deploy keys", "project_id", p.ID, "err", err)
		return "The new key is in force; Tether could not look up the old key to remove it."
	}
	var left []string
	for _, old := range keys {
		err := s.bb.DeleteDeployKey(ctx, token, p.Workspace, p.RepoSlug, old.BitbucketKeyID)
		if err != nil && !bitbucket.IsNotFound(err) {
			s.log.Warn("could not delete a replaced deploy key", "project_id", p.ID, "key_id", old.BitbucketKeyID, "err", err)
			left = append(left, fmt.Sprint(old.BitbucketKeyID))
			continue
		}
		if err := s.store.DeleteDeployKey(context.WithoutCancel(ctx), old.ID); err != nil {
			s.log.Error("forget deleted deploy key", "project_id", p.ID, "err", err)
		}
	}
	if len(left) == 0 {
		return ""
	}
	return fmt.Sprintf("The new key is in force, but the old key (id %s) could not be removed from %s yet. Tether tries again at the next Regenerate; you can also remove it on Bitbucket.",
		strings.Join(left, ", "), p.FullName)
}

// RegenerateWebhook replaces the project's webhook (with a new secret): the
// new hook is created on Bitbucket and stored first, then the old one is
// deleted. Deliveries from the old hook still in flight are accepted for a
// grace window. If creating or storing fails, the old hook stays in force.
func (s *Service) RegenerateWebhook(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	var res RegenerateResult
	secret := randomToken()
	err := s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		hook, err := s.bb.CreateHook(ctx, token, p.Workspace, p.RepoSlug, s.hookInput(p.FullName, p.HookToken, secret))
		if err != nil {
			if bitbucket.IsUnauthorized(err) {
				return err // Do refreshes the token and tries again
			}
			return hookProblem(err, p.FullName, "The old webhook stays in force.")
		}
		err = s.store.ReplaceWebhook(ctx, p.ID, tether.Webhook{UUID: hook.UUID, URL: hook.URL, Events: hook.Events, Secret: secret},
			audit(p, actorID, "webhook regenerated", hook.UUID))
		if err != nil {
			s.undoHook(ctx, token, p.Workspace, p.RepoSlug, hook.UUID)
			return problem.Wrap(problem.Unavailable, err, "Tether could not store the new webhook, so it was removed from Bitbucket again. The old webhook stays in force; please try again.")
		}
		res.Warning = s.retireHooks(ctx, token, p)
		return nil
	})
	if err != nil {
		return RegenerateResult{}, bitbucketProblem(err, "replace the webhook")
	}
	if err := s.checker.Check(ctx, p); err != nil {
		s.log.Warn("health check after regenerate", "project_id", p.ID, "err", err)
	}
	return res, nil
}

// retireHooks deletes replaced hooks from Bitbucket (a hook already gone
// counts as deleted) and forgets them once their grace window is over. It
// returns a warning for hooks that remain on Bitbucket.
func (s *Service) retireHooks(ctx context.Context, token string, p tether.Project) string {
	hooks, err := s.store.RetiringWebhooks(ctx, p.ID)
	if err != nil {
		s.log.Error("list replaced webhooks", "project_id", p.ID, "err", err)
		return "The new webhook is in force; Tether could not look up the old one to remove it."
	}
	var left []string
	for _, old := range hooks {
		err := s.bb.DeleteHook(ctx, token, p.Workspace, p.RepoSlug, old.UUID)
		if err != nil && !bitbucket.IsNotFound(err) {
			s.log.Warn("could not delete a replaced webhook", "project_id", p.ID, "hook_uuid", old.UUID, "err", err)
			left = append(left, "{"+old.UUID+"}")
			continue
		}
		if time.Since(old.RetiredAt) > webhooks.Grace {
			if err := s.store.DeleteWebhook(context.WithoutCancel(ctx), old.ID); err != nil {
				s.log.Error("forget deleted webhook", "project_id", p.ID, "err", err)
			}
		}
	}
	if len(left) == 0 {
		return ""
	}
	return fmt.Sprintf("The new webhook is in force, but the old one (%s) could not be removed from %s yet. Tether tries again at the next Regenerate; you can also remove it on Bitbucket.",
		strings.Join(left, ", "), p.FullName)
}

// Webhook returns the project's webhook in force, without its secret.
func (s *Service) Webhook(ctx context.Context, p tether.Project) (tether.Webhook, error) {
	h, err := s.store.ActiveWebhookPublic(ctx, p.ID)
	if errors.Is(err, tether.ErrNotFound) {
		return tether.Webhook{}, nil
	}
	return h, err
}

// Activity is what a project's webhook brought in lately.
type Activity struct {
	Workflows    []tether.Workflow
	Deliveries   []tether.Delivery // accepted ones, newest first
	LastAccepted time.Time
	Refusals     []tether.Refusal // counts per reason, latest first
}

// recent is how many workflows and deliveries a project page lists.
const recent = 20

// Activity returns the project's recent workflows and deliveries.
func (s *Service) Activity(ctx context.Context, p tether.Project) (Activity, error) {
	var a Activity
	var err error
	if a.Workflows, err = s.store.RecentWorkflows(ctx, p.ID, recent); err != nil {
		return a, err
	}
	if a.Deliveries, err = s.store.RecentDeliveries(ctx, p.ID, recent); err != nil {
		return a, err
	}
	if a.LastAccepted, err = s.store.LastAccepted(ctx, p.ID); err != nil {
		return a, err
	}
	a.Refusals, err = s.store.Refusals(ctx, p.ID)
	return a, err
}

// Reload reads the project again, e.g. after a check recorded a move.
func (s *Service) Reload(ctx context.Context, p tether.Project) (tether.Project, error) {
	return s.store.Project(ctx, p.ID)
}
