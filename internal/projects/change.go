package projects

import (
	"context"
	"errors"
	"fmt"

	"tether/internal/bitbucket"
	"tether/internal/problem"
	"tether/internal/repourl"
	"tether/internal/tether"
)

// ChangeResult says what Change did.
type ChangeResult struct {
	// Confirm is set when the URL names a different repository: nothing
	// changed, and the person must confirm switching to it.
	Confirm *bitbucket.Repository
	// Switched is set when the project now uses a different repository,
	// with a new deploy key and webhook there.
	Switched bool
	Warning  string
	// Project is the project as stored after the change (its new name
	// and place); zero when nothing changed (Confirm, or an error).
	Project tether.Project
}

// ChangeRepository points the project at the repository a pasted URL names,
// resolved on Bitbucket with the owner's connection. The same repository
// (same UUID: a rename or move) just gets its new place stored. A different
// one is only taken when confirmUUID is its UUID: then a new deploy key and
// webhook are created there first, stored, and ours are removed from the
// old repository. Anything refused leaves the project exactly as it was.
func (s *Lifecycle) ChangeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (ChangeResult, error) {
	res, err := s.changeRepository(ctx, actorID, p, input, confirmUUID)
	if err != nil || res.Confirm != nil {
		return res, err
	}
	res.Project, err = s.store.Project(ctx, p.ID)
	return res, err
}

func (s *Lifecycle) changeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (ChangeResult, error) {
	named, err := repourl.Parse(input, s.hosts)
	var perr *repourl.Error
	if errors.As(err, &perr) {
		return ChangeResult{}, problem.Field("url", "%s", perr.Message)
	}
	if err != nil {
		return ChangeResult{}, err
	}
	var repo bitbucket.Repository
	err = s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		var err error
		repo, err = s.bb.Repository(ctx, token, named.Workspace, named.Slug)
		return err
	})
	switch {
	case len(bitbucket.MissingScopes(err)) > 0:
		return ChangeResult{}, scopeProblem(err, "look up "+named.FullName())
	case bitbucket.IsNotFound(err):
		return ChangeResult{}, problem.Field("url", "Bitbucket has no repository %s that %s can see. Check the URL, and that %s has access to it.",
			named.FullName(), p.OwnerName, p.OwnerName)
	case bitbucket.IsForbidden(err):
		return ChangeResult{}, problem.Field("url", "%s has no access to %s on Bitbucket, so Tether cannot use it.", p.OwnerName, named.FullName())
	case err != nil:
		return ChangeResult{}, bitbucketProblem(err, "look up "+named.FullName())
	}
	if repo.UUID == p.RepoUUID {
		if err := s.store.UpdateRepository(ctx, p.ID, toDB(repo), audit(p, actorID, "repository URL changed", p.FullName+" → "+repo.FullName)); err != nil {
			return ChangeResult{}, fmt.Errorf("projects: store new repository place: %w", err)
		}
		s.recheck(ctx, p.ID)
		return ChangeResult{}, nil
	}
	if confirmUUID != repo.UUID {
		return ChangeResult{Confirm: &repo}, nil
	}
	res, err := s.switchRepository(ctx, actorID, p, repo)
	if err != nil {
		return ChangeResult{}, err
	}
	s.recheck(ctx, p.ID)
	return res, nil
}

func toDB(r bitbucket.Repository) tether.Repository {
	return tether.Repository{UUID: r.UUID, Workspace: r.Workspace.Slug, Slug: r.Slug, FullName: r.FullName,
		CloneSSH: r.CloneSSH, HTMLURL: r.HTMLURL, Private: r.IsPrivate}
}

// switchRepository moves the project to another repository: new key and
// hook there first, stored, then ours taken off the old repository.
func (s *Lifecycle) switchRepository(ctx context.Context, actorID int64, p tether.Project, repo bitbucket.Repository) (ChangeResult, error) {
	defer s.locks.lock(p.ID)()
	res := ChangeResult{}
	o := order{project: p, actor: actorID, owner: p.OwnerID, to: repoPlace(repo), key: true, hook: true, keep: "Nothing was changed.",
		done: "The project now uses " + repo.FullName + ".", its: "the old",
		keyRefused: problem.Field("url", "%s needs admin rights on %s to use it: Tether adds a deploy key and a webhook there. Nothing was changed.", p.OwnerName, repo.FullName)}
	err := s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		old, err := s.inForce(ctx, o, "the project moved to "+repo.FullName)
		if err != nil {
			return err
		}
		res.Warning, err = s.parts.replace(ctx, token, o, old, func(m made) error {
			to := toDB(repo)
			err := s.store.ChangeParts(ctx, p.ID, tether.PartsChange{Repository: &to, Key: m.key, Hook: m.hook, Leftovers: old,
				Audit: []tether.Audit{audit(p, actorID, "repository URL changed", p.FullName+" → "+repo.FullName+" (a different repository: new deploy key and webhook)")}})
			if errors.Is(err, tether.ErrRepositoryTaken) {
				return problem.Field("url", "%s already has its own project in Tether.", repo.FullName)
			}
			if err != nil {
				return fmt.Errorf("projects: store switched repository: %w", err)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return ChangeResult{}, err
	}
	res.Switched = true
	if res.Warning != "" {
		res.Warning = o.done + " " + res.Warning
	}
	return res, nil
}
