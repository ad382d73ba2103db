package projects

import (
	"context"

	"tether/internal/bitbucket"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// integration is a deploy key and a webhook just created on a repository,
// ready to store.
type integration struct {
	repo bitbucket.Repository
	key  tether.DeployKey
	hook tether.Webhook
}

// addIntegration creates a new deploy key on repo, then a webhook sending
// to the hook URL ending in hookToken. If the webhook fails the key is
// taken off again, so nothing is left behind. A 401 is returned as it is
// (connections.Do refreshes the token and tries again); keyForbidden is
// what a refused key (403) means to the caller.
func (s *Service) addIntegration(ctx context.Context, token string, repo bitbucket.Repository, hookToken string, keyForbidden error) (integration, error) {
	key, err := deploykeys.Generate(repo.FullName)
	if err != nil {
		return integration{}, err
	}
	remote, err := s.bb.CreateDeployKey(ctx, token, repo.Workspace.Slug, repo.Slug, key.Public, deploykeys.Label(repo.FullName))
	switch {
	case bitbucket.IsUnauthorized(err):
		return integration{}, err
	case len(bitbucket.MissingScopes(err)) > 0:
		return integration{}, scopeProblem(err, "add a deploy key to "+repo.FullName)
	case bitbucket.IsForbidden(err):
		return integration{}, keyForbidden
	case err != nil:
		return integration{}, bitbucketProblem(err, "add a deploy key to "+repo.FullName)
	}
	secret := randomToken()
	hook, err := s.bb.CreateHook(ctx, token, repo.Workspace.Slug, repo.Slug, s.hookInput(repo.FullName, hookToken, secret))
	if err != nil {
		s.undoKey(ctx, token, repo.Workspace.Slug, repo.Slug, remote.ID)
		if bitbucket.IsUnauthorized(err) {
			return integration{}, err
		}
		return integration{}, hookProblem(err, repo.FullName, "Nothing was changed.")
	}
	return integration{
		repo: repo,
		key:  tether.DeployKey{BitbucketKeyID: remote.ID, PublicKey: key.Public, Fingerprint: key.Fingerprint, PrivateKey: key.Private},
		hook: tether.Webhook{UUID: hook.UUID, URL: hook.URL, Events: hook.Events, Secret: secret},
	}, nil
}

// undo takes a just-created key and webhook off the repository again, when
// storing them failed.
func (s *Service) undo(ctx context.Context, token string, in integration) {
	s.undoKey(ctx, token, in.repo.Workspace.Slug, in.repo.Slug, in.key.BitbucketKeyID)
	s.undoHook(ctx, token, in.repo.Workspace.Slug, in.repo.Slug, in.hook.UUID)
}
