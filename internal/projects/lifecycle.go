package projects

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/problem"
	"tether/internal/repourl"
	"tether/internal/tether"
)

// lifecycleStore is what Lifecycle reads and writes.
type lifecycleStore interface {
	UsedRepositories(ctx context.Context) (map[string]bool, error)
	ReserveProjectID(ctx context.Context) (int64, error)
	CreateProject(ctx context.Context, p tether.Project, key tether.DeployKey, hook tether.Webhook, actorID int64) (tether.Project, error)
	Project(ctx context.Context, id int64) (tether.Project, error)
	ActiveDeployKeyPublic(ctx context.Context, projectID int64) (tether.DeployKey, error)
	ActiveWebhookPublic(ctx context.Context, projectID int64) (tether.Webhook, error)
	ChangeParts(ctx context.Context, projectID int64, c tether.PartsChange) error
	UpdateRepository(ctx context.Context, projectID int64, r tether.Repository, a tether.Audit) error
	DeleteProject(ctx context.Context, projectID int64, leftovers []tether.Leftover, entries ...tether.Audit) error
	partsStore
}

// Lifecycle creates, changes and deletes projects: every change of their
// deploy key and webhook goes through the one flow of parts.go.
type Lifecycle struct {
	log     *slog.Logger
	store   lifecycleStore
	conns   Connections
	bb      Bitbucket
	checker Checker
	parts   *parts
	locks   *projectLocks
	choices *Choices
	hosts   repourl.Hosts
}

// Create makes a project of organization orgID from the repository
// "workspace/slug" (or any URL of it; both in Bitbucket's canonical form
// first, see repourl.Name): it looks the repository up with the user's
// connection, registers a new deploy key and webhook on it, and stores all
// of it. When a step fails what was added to Bitbucket is taken off again,
// so nothing is left half made.
func (s *Lifecycle) Create(ctx context.Context, orgID, userID int64, fullName string) (tether.Project, error) {
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
		id, err := s.store.ReserveProjectID(ctx)
		if err != nil {
			return err
		}
		p = tether.Project{
			ID: id, OrgID: orgID, Name: repo.FullName, OwnerID: userID, RepoUUID: repo.UUID, Workspace: repo.Workspace.Slug, RepoSlug: repo.Slug,
			FullName: repo.FullName, CloneSSH: repo.CloneSSH, HTMLURL: repo.HTMLURL, Private: repo.IsPrivate, HookToken: randomToken(),
		}
		o := order{project: p, actor: userID, owner: userID, to: repoPlace(repo), key: true, hook: true, keep: "Nothing was changed.", its: "the",
			keyRefused: problem.New(problem.Forbidden,
				"You need admin rights on %s to create a project from it: Tether adds a deploy key to the repository. Ask a repository admin to create the project.", repo.FullName)}
		note, err := s.parts.replace(ctx, token, o, nil, func(m made) error {
			stored, err := s.store.CreateProject(ctx, p, *m.key, *m.hook, userID)
			if errors.Is(err, tether.ErrRepositoryTaken) {
				return problem.New(problem.Conflict, "%s already has a project in Tether.", repo.FullName)
			}
			if err != nil {
				return fmt.Errorf("projects: store new project: %w", err)
			}
			p = stored
			return nil
		})
		if note != "" {
			s.log.Info("project created", "project_id", p.ID, "note", note)
		}
		return err
	})
	if err != nil {
		return tether.Project{}, bitbucketProblem(err, "create the project")
	}
	s.choices.forget(userID)
	if err := s.checker.Check(ctx, p); err != nil {
		s.log.Warn("first health check", "project_id", p.ID, "err", err)
	}
	return p, nil
}

// RegenerateResult says how a Regenerate went when it did not fail.
type RegenerateResult struct {
	// Warning is set when the new part is in force but something needs
	// saying: the old one could not be removed from Bitbucket yet, or a
	// late answer was found and kept.
	Warning string
	// Project is the project as stored after a Re-home (its new backer);
	// zero for Regenerate and after an error.
	Project tether.Project
}

// RegenerateKey replaces the project's deploy key: the new key is added to
// Bitbucket and stored first, then the old one is deleted. If adding or
// storing fails, the old key stays in force and nothing else changes.
func (s *Lifecycle) RegenerateKey(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	return s.regenerate(ctx, actorID, p, tether.PartDeployKey)
}

// RegenerateWebhook replaces the project's webhook (with a new secret): the
// new hook is created on Bitbucket and stored first, then the old one is
// deleted. Deliveries from the old hook still in flight are accepted for a
// grace window. If creating or storing fails, the old hook stays in force.
func (s *Lifecycle) RegenerateWebhook(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	return s.regenerate(ctx, actorID, p, tether.PartWebhook)
}

func (s *Lifecycle) regenerate(ctx context.Context, actorID int64, p tether.Project, part string) (RegenerateResult, error) {
	defer s.locks.lock(p.ID)()
	var res RegenerateResult
	what, short := "deploy key", "key"
	if part == tether.PartWebhook {
		what, short = "webhook", "webhook"
	}
	o := order{project: p, actor: actorID, owner: p.OwnerID, to: projectPlace(p), key: part == tether.PartDeployKey, hook: part == tether.PartWebhook,
		keep: "The old " + short + " stays in force.", done: "The new " + short + " is in force.", its: "the old",
		keyRefused: problem.New(problem.Forbidden, "%s has no admin rights on %s any more, so the key cannot be replaced. The old key stays in force.", p.OwnerName, p.FullName)}
	err := s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		old, err := s.inForce(ctx, o, "replaced by Regenerate")
		if err != nil {
			return err
		}
		res.Warning, err = s.parts.replace(ctx, token, o, old, func(m made) error {
			c := tether.PartsChange{Key: m.key, Hook: m.hook, Leftovers: old}
			if m.key != nil {
				c.Audit = []tether.Audit{audit(p, actorID, "deploy key regenerated", m.key.Fingerprint)}
			} else {
				c.Audit = []tether.Audit{audit(p, actorID, "webhook regenerated", m.hook.UUID)}
			}
			if err := s.store.ChangeParts(ctx, p.ID, c); err != nil {
				return problem.Wrap(problem.Unavailable, err, "Tether could not store the new %s, so it was removed from Bitbucket again. %s Please try again.", what, o.keep)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return RegenerateResult{}, bitbucketProblem(err, "replace the "+what)
	}
	if res.Warning != "" {
		res.Warning = o.done + " " + res.Warning
	}
	s.recheck(ctx, p.ID)
	return res, nil
}

// inForce is the project's key and hook in force that o replaces, as the
// leftovers its commit records, on the repository the project uses now.
func (s *Lifecycle) inForce(ctx context.Context, o order, why string) ([]tether.Leftover, error) {
	var old []tether.Leftover
	at := projectPlace(o.project)
	if o.key {
		k, err := s.store.ActiveDeployKeyPublic(ctx, o.project.ID)
		switch {
		case err == nil:
			old = append(old, s.parts.leftover(o, at, tether.PartDeployKey, strconv.Itoa(k.BitbucketKeyID), k.Fingerprint, why))
		case !errors.Is(err, tether.ErrNotFound):
			return nil, err
		}
	}
	if o.hook {
		h, err := s.store.ActiveWebhookPublic(ctx, o.project.ID)
		switch {
		case err == nil:
			old = append(old, s.parts.leftover(o, at, tether.PartWebhook, h.UUID, "", why))
		case !errors.Is(err, tether.ErrNotFound):
			return nil, err
		}
	}
	return old, nil
}

// recheck runs the checks on the project as now stored.
func (s *Lifecycle) recheck(ctx context.Context, projectID int64) {
	p, err := s.store.Project(ctx, projectID)
	if err == nil {
		err = s.checker.Check(ctx, p)
	}
	if err != nil {
		s.log.Warn("health check after change", "project_id", projectID, "err", err)
	}
}

// Rehome makes the acting admin the person whose Bitbucket connection backs
// the project: a new deploy key and webhook are created with their token
// first, stored, and then the old ones are removed (with their token, as
// an admin of the repository) when still there. If a step fails, what was
// in force stays in force.
func (s *Lifecycle) Rehome(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	var res RegenerateResult
	if actorID == p.OwnerID {
		return res, problem.New(problem.Conflict, "Your connection already backs this project.")
	}
	defer s.locks.lock(p.ID)()
	err := s.conns.Do(ctx, actorID, func(ctx context.Context, token string) error {
		repo, err := s.bb.RepositoryByUUID(ctx, token, p.Workspace, p.RepoUUID)
		switch {
		case bitbucket.IsUnauthorized(err):
			return err
		case bitbucket.IsNotFound(err) || bitbucket.IsForbidden(err):
			return problem.New(problem.Forbidden, "Your Bitbucket account cannot see %s, so it cannot back this project.", p.FullName)
		case err != nil:
			return bitbucketProblem(err, "look up "+p.FullName)
		}
		o := order{project: p, actor: actorID, owner: actorID, to: repoPlace(repo), key: true, hook: true, keep: "Nothing was changed.",
			done: "The new deploy key and webhook are in force.", its: "the old",
			keyRefused: problem.New(problem.Forbidden, "Your Bitbucket account needs admin rights on %s to back this project. Nothing was changed.", repo.FullName)}
		old, err := s.inForce(ctx, o, "replaced by Re-home")
		if err != nil {
			return err
		}
		res.Warning, err = s.parts.replace(ctx, token, o, old, func(m made) error {
			err := s.store.ChangeParts(ctx, p.ID, tether.PartsChange{OwnerID: actorID, Key: m.key, Hook: m.hook, Leftovers: old,
				Audit: []tether.Audit{audit(p, actorID, "re-homed", "was backed by "+p.OwnerName)}})
			if err != nil {
				return problem.Wrap(problem.Unavailable, err, "Tether could not store the new key and webhook, so they were removed from Bitbucket again. Nothing was changed; please try again.")
			}
			return nil
		})
		if res.Warning != "" {
			res.Warning = o.done + " " + res.Warning
		}
		return err
	})
	if err != nil {
		if errors.Is(err, connections.ErrNotConnected) {
			return res, problem.New(problem.Forbidden, "Your Bitbucket account is not connected. Grant access on your account page, then re-home.")
		}
		return res, bitbucketProblem(err, "re-home the project")
	}
	s.recheck(ctx, p.ID)
	res.Project, err = s.store.Project(ctx, p.ID)
	return res, err
}

// Delete removes the project: everything Tether kept of it is forgotten,
// its deploy key and webhook recorded as leftovers in the same
// transaction, then taken off the repository (with the backing
// connection, else the acting admin's). It returns what it could not
// remove from Bitbucket yet, naming each part, for the person; the audit
// log records it, and the Cleanup keeps trying.
func (s *Lifecycle) Delete(ctx context.Context, actorID int64, p tether.Project) (string, error) {
	defer s.locks.lock(p.ID)()
	o := order{project: p, actor: actorID, owner: p.OwnerID, to: projectPlace(p), key: true, hook: true, its: "its", auditRemovals: true}
	old, err := s.inForce(ctx, o, "the project was deleted")
	if err != nil {
		return "", err
	}
	if err := s.store.DeleteProject(ctx, p.ID, old, audit(p, actorID, "project deleted", p.FullName)); err != nil {
		return "", err
	}
	pending, err := s.store.ProjectLeftovers(ctx, p.ID)
	if err != nil {
		return "", err
	}
	left := []string{}
	var connErr error
	for _, who := range []int64{p.OwnerID, actorID} {
		o.owner = who
		connErr = s.conns.Do(ctx, who, func(ctx context.Context, token string) error {
			left = s.parts.letGo(context.WithoutCancel(ctx), token, o, pending, true)
			return nil
		})
		if connErr == nil {
			break
		}
	}
	if connErr != nil {
		left = left[:0]
		for _, l := range pending {
			left = append(left, s.parts.stays(context.WithoutCancel(ctx), o, l, true, connErr))
		}
	}
	if len(left) == 0 {
		return "", nil
	}
	return "The project is deleted. " + remains(left), nil
}
