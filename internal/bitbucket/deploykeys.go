package bitbucket

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

// DeployKey is a read-only SSH key registered on a repository.
type DeployKey struct {
	ID        int
	Key       string // the public key, without its comment
	Label     string
	Comment   string // the comment part of the key as uploaded
	CreatedOn time.Time
	LastUsed  *time.Time // nil if never used
}

type wireDeployKey struct {
	ID        int       `json:"id"`
	Key       string    `json:"key"`
	Label     string    `json:"label"`
	Comment   string    `json:"comment"`
	CreatedOn timestamp `json:"created_on"`
	LastUsed  timestamp `json:"last_used"`
}

func (w wireDeployKey) deployKey() DeployKey {
	k := DeployKey{ID: w.ID, Key: w.Key, Label: w.Label, Comment: w.Comment, CreatedOn: w.CreatedOn.Time}
	if !w.LastUsed.IsZero() {
		t := w.LastUsed.Time
		k.LastUsed = &t
	}
	return k
}

func deployKeysPath(workspace, slug string) string {
	return apiPath("repositories", workspace, slug, "deploy-keys")
}

// DeployKeys lists the repository's deploy keys.
func (c *Client) DeployKeys(ctx context.Context, accessToken, workspace, slug string) ([]DeployKey, error) {
	keys, err := listAll[wireDeployKey](ctx, c, "GET /repositories/{workspace}/{repo_slug}/deploy-keys", accessToken, deployKeysPath(workspace, slug), nil)
	if err != nil {
		return nil, err
	}
	out := make([]DeployKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.deployKey())
	}
	return out, nil
}

// DeployKey fetches one deploy key by id.
func (c *Client) DeployKey(ctx context.Context, accessToken, workspace, slug string, id int) (DeployKey, error) {
	var w wireDeployKey
	if _, err := c.call(ctx, "GET /repositories/{workspace}/{repo_slug}/deploy-keys/{key_id}", deployKeysPath(workspace, slug)+"/"+strconv.Itoa(id), nil, accessToken, nil, &w); err != nil {
		return DeployKey{}, err
	}
	return w.deployKey(), nil
}

// CreateDeployKey registers authorizedKey (an authorized_keys line) on the
// repository under label. slug may be the repository's "{uuid}", which
// Bitbucket accepts in place of the slug on every /repositories/{workspace}/
// {repo_slug} path. An answer without the key's id is an *IncompleteError:
// it does not say what was created.
func (c *Client) CreateDeployKey(ctx context.Context, accessToken, workspace, slug, authorizedKey, label string) (DeployKey, error) {
	in := struct {
		Key   string `json:"key"`
		Label string `json:"label"`
	}{authorizedKey, label}
	var w wireDeployKey
	path := deployKeysPath(workspace, slug)
	if _, err := c.call(ctx, "POST /repositories/{workspace}/{repo_slug}/deploy-keys", path, nil, accessToken, in, &w); err != nil {
		return DeployKey{}, err
	}
	if w.ID <= 0 {
		return DeployKey{}, &IncompleteError{Method: http.MethodPost, Path: path, Missing: "id"}
	}
	return w.deployKey(), nil
}

// DeleteDeployKey removes a deploy key from the repository.
func (c *Client) DeleteDeployKey(ctx context.Context, accessToken, workspace, slug string, id int) error {
	_, err := c.call(ctx, "DELETE /repositories/{workspace}/{repo_slug}/deploy-keys/{key_id}", deployKeysPath(workspace, slug)+"/"+strconv.Itoa(id), nil, accessToken, nil, nil)
	return err
}
