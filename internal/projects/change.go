package projects

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
}

// MovedURL is the web URL of the name a moved repository has now, for
// "Update URL".
func (s *Service) MovedURL(p tether.Project) string {
	return strings.TrimRight(s.hosts.WebURL, "/") + "/" + p.MovedTo
}

// ChangeRepository points the project at the repository a pasted URL names,
// resolved on Bitbucket with the owner's connection. The same repository
// (same UUID: a rename or move) just gets its new place stored. A different
// one is only taken when confirmUUID is its UUID: then a new deploy key and
// webhook are created there first, stored, and ours are removed from the
// old repository when it is still reachable. Anything refused leaves the
// project exactly as it was.
func (s *Service) ChangeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (ChangeResult, error) {
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

// recheck runs the checks on the project as now stored.
func (s *Service) recheck(ctx context.Context, projectID int64) {
	p, err := s.store.Project(ctx, projectID)
	if err == nil {
		err = s.checker.Check(ctx, p)
	}
	if err != nil {
		s.log.Warn("health check after change", "project_id", projectID, "err", err)
	}
}

// switchRepository moves the project to another repository: new key and
// hook there first, stored, then ours removed from the old repository.
func (s *Service) switchRepository(ctx context.Context, actorID int64, p tether.Project, repo bitbucket.Repository) (ChangeResult, error) {
	var res ChangeResult
	oldKey, _ := s.store.ActiveDeployKey(ctx, p.ID)
	oldHook, _ := s.store.ActiveWebhook(ctx, p.ID)
	err := s.conns.Do(ctx, p.OwnerID, func(ctx context.Context, token string) error {
		in, err := s.addIntegration(ctx, token, repo, p.HookToken, problem.Field("url",
			"%s needs admin rights on %s to use it: Tether adds a deploy key and a webhook there. Nothing was changed.", p.OwnerName, repo.FullName))
		if err != nil {
			return err
		}
		err = s.store.SwitchRepository(ctx, p.ID, toDB(repo), in.key, in.hook,
			audit(p, actorID, "repository URL changed", p.FullName+" → "+repo.FullName+" (a different repository: new deploy key and webhook)"))
		if err != nil {
			s.undo(ctx, token, in)
			if errors.Is(err, tether.ErrRepositoryTaken) {
				return problem.Field("url", "%s already has its own project in Tether.", repo.FullName)
			}
			return fmt.Errorf("projects: store switched repository: %w", err)
		}
		res.Switched = true
		res.Warning = s.removeFromOld(ctx, token, p, oldKey, oldHook)
		return nil
	})
	return res, err
}

// removeFromOld takes our key and hook off the repository the project no
// longer uses, when it is still reachable; it says what it could not do.
func (s *Service) removeFromOld(ctx context.Context, token string, p tether.Project, key tether.DeployKey, hook tether.Webhook) string {
	old, err := s.bb.RepositoryByUUID(ctx, token, p.Workspace, p.RepoUUID)
	if err != nil {
		if bitbucket.IsNotFound(err) || bitbucket.IsForbidden(err) {
			return ""
		}
		return fmt.Sprintf("Tether could not reach %s to remove its old deploy key and webhook there; remove them on Bitbucket.", p.FullName)
	}
	return s.removeOld(ctx, token, old, key, hook)
}
