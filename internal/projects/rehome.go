package projects

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/problem"
	"tether/internal/tether"
)

// Rehome makes the acting admin the person whose Bitbucket connection backs
// the project: a new deploy key and webhook are created with their token
// first, stored, and then the old ones are removed (with their token, as
// an admin of the repository) when still there. If a step fails, what was
// in force stays in force.
func (s *Service) Rehome(ctx context.Context, actorID int64, p tether.Project) (RegenerateResult, error) {
	var res RegenerateResult
	if actorID == p.OwnerID {
		return res, problem.New(problem.Conflict, "Your connection already backs this project.")
	}
	oldKey, _ := s.store.ActiveDeployKey(ctx, p.ID)
	oldHook, _ := s.store.ActiveWebhook(ctx, p.ID)
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
		in, err := s.addIntegration(ctx, token, repo, p.HookToken, problem.New(problem.Forbidden,
			"Your Bitbucket account needs admin rights on %s to back this project. Nothing was changed.", repo.FullName))
		if err != nil {
			return err
		}
		err = s.store.RehomeProject(ctx, p.ID, actorID, in.key, in.hook, audit(p, actorID, "re-homed", "was backed by "+p.OwnerName))
		if err != nil {
			s.undo(ctx, token, in)
			return problem.Wrap(problem.Unavailable, err, "Tether could not store the new key and webhook, so they were removed from Bitbucket again. Nothing was changed; please try again.")
		}
		res.Warning = s.removeOld(ctx, token, repo, oldKey, oldHook)
		return nil
	})
	if err != nil {
		if errors.Is(err, connections.ErrNotConnected) {
			return res, problem.New(problem.Forbidden, "Your Bitbucket account is not connected. Grant access on your account page, then re-home.")
		}
		return res, bitbucketProblem(err, "re-home the project")
	}
	s.recheck(ctx, p.ID)
	return res, nil
}

// removeOld deletes a replaced key and hook from the repository; a thing
// already gone counts as removed. It says what it could not remove.
func (s *Service) removeOld(ctx context.Context, token string, repo bitbucket.Repository, key tether.DeployKey, hook tether.Webhook) string {
	var left []string
	if key.BitbucketKeyID != 0 {
		if err := s.bb.DeleteDeployKey(ctx, token, repo.Workspace.Slug, repo.Slug, key.BitbucketKeyID); err != nil && !bitbucket.IsNotFound(err) {
			left = append(left, fmt.Sprintf("deploy key %d", key.BitbucketKeyID))
		}
	}
	if hook.UUID != "" {
		if err := s.bb.DeleteHook(ctx, token, repo.Workspace.Slug, repo.Slug, hook.UUID); err != nil && !bitbucket.IsNotFound(err) {
			left = append(left, "webhook {"+hook.UUID+"}")
		}
	}
	if len(left) == 0 {
		return ""
	}
	return fmt.Sprintf("The new deploy key and webhook are in force, but Tether could not remove the old %s from %s; remove them on Bitbucket.",
		strings.Join(left, " and "), repo.FullName)
}

// Delete removes the project: its deploy key and webhook are taken off the
// repository (with the backing connection, else the acting admin's) and
// everything Tether kept of it is forgotten. It says what it could not
// remove from Bitbucket.
func (s *Service) Delete(ctx context.Context, actorID int64, p tether.Project) (string, error) {
	key, _ := s.store.ActiveDeployKey(ctx, p.ID)
	hook, _ := s.store.ActiveWebhook(ctx, p.ID)
	warning := fmt.Sprintf("Tether could not reach %s to remove its deploy key and webhook; remove them on Bitbucket.", p.FullName)
	for _, who := range []int64{p.OwnerID, actorID} {
		err := s.conns.Do(ctx, who, func(ctx context.Context, token string) error {
			repo, err := s.bb.RepositoryByUUID(ctx, token, p.Workspace, p.RepoUUID)
			if err != nil {
				return err
			}
			warning = s.removeOld(ctx, token, repo, key, hook)
			return nil
		})
		if err == nil {
			break
		}
	}
	entries := []tether.Audit{audit(p, actorID, "project deleted", p.FullName)}
	if warning == "" {
		entries = append(entries,
			audit(p, actorID, "deploy key removed", fmt.Sprintf("key %d from %s", key.BitbucketKeyID, p.FullName)),
			audit(p, actorID, "webhook removed", "{"+hook.UUID+"} from "+p.FullName))
	}
	err := s.store.DeleteProject(ctx, p.ID, entries...)
	return warning, err
}

// Backing says whose connection backs a project and what is wrong with it.
type Backing struct {
	OwnerName string
	Username  string   // their Bitbucket username, if connected once
	Connected bool     // their Bitbucket connection is Connected
	Warnings  []string // left the organization, Not Connected, lost access
}

// BackingOf reads who backs the project and warns about what breaks it.
// lostAccess is what the last health check found.
func (s *Service) BackingOf(ctx context.Context, p tether.Project, lostAccess bool) (Backing, error) {
	b := Backing{OwnerName: p.OwnerName}
	if _, err := s.store.Role(ctx, p.OrgID, p.OwnerID); errors.Is(err, tether.ErrNotFound) {
		b.Warnings = append(b.Warnings, p.OwnerName+" has left the organization, but the deploy key and webhook still act with their Bitbucket connection.")
	} else if err != nil {
		return b, err
	}
	ident, err := s.store.IdentityByUser(ctx, p.OwnerID)
	switch {
	case errors.Is(err, tether.ErrNotFound):
		b.Warnings = append(b.Warnings, p.OwnerName+" has no Bitbucket connection.")
	case err != nil:
		return b, err
	default:
		b.Username = ident.Username
		b.Connected = ident.Status == tether.Connected
		if !b.Connected {
			b.Warnings = append(b.Warnings, fmt.Sprintf("%s's Bitbucket connection is Not Connected (%s).", p.OwnerName, ident.StatusReason))
		}
	}
	if lostAccess {
		b.Warnings = append(b.Warnings, p.OwnerName+" no longer has admin access to "+p.FullName+" on Bitbucket.")
	}
	return b, nil
}
