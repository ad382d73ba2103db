package bitbucket

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Hook is a repository webhook subscription.
type Hook struct {
	UUID        string // "{…}"
	URL         string
	Description string
	Active      bool
	Events      []string // e.g. "repo:push"
	SecretSet   bool     // Bitbucket never returns the secret itself
	CreatedAt   time.Time
}

// HookInput is what Tether sends to create or update a hook.
type HookInput struct {
	Description, URL string
	Active           bool
	Events           []string
	// Secret signs deliveries. Empty means "none" on create and "leave
	// unchanged" on update: Bitbucket keeps the secret when it is omitted.
	Secret string
}

type wireHook struct {
	UUID        string    `json:"uuid"`
	URL         string    `json:"url"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	Events      []string  `json:"events"`
	SecretSet   bool      `json:"secret_set"`
	CreatedAt   timestamp `json:"created_at"`
}

func (w wireHook) hook() Hook {
	return Hook{
		UUID:        w.UUID,
		URL:         w.URL,
		Description: w.Description,
		Active:      w.Active,
		Events:      w.Events,
		SecretSet:   w.SecretSet,
		CreatedAt:   w.CreatedAt.Time,
	}
}

func (in HookInput) body() any {
	return struct {
		Description string   `json:"description"`
		URL         string   `json:"url"`
		Active      bool     `json:"active"`
		Events      []string `json:"events"`
		Secret      string   `json:"secret,omitempty"`
	}{in.Description, in.URL, in.Active, in.Events, in.Secret}
}

func hooksPath(workspace, slug string) string {
	return apiPath("repositories", workspace, slug, "hooks")
}

// hookPath addresses one hook; uuid may come with or without braces and is
// always sent as %7B…%7D.
func hookPath(workspace, slug, uuid string) string {
	return apiPath("repositories", workspace, slug, "hooks", "{"+strings.TrimSuffix(strings.TrimPrefix(uuid, "{"), "}")+"}")
}

// Hooks lists the repository's webhooks.
func (c *Client) Hooks(ctx context.Context, accessToken, workspace, slug string) ([]Hook, error) {
	hooks, err := listAll[wireHook](ctx, c, "GET /repositories/{workspace}/{repo_slug}/hooks", accessToken, hooksPath(workspace, slug), nil)
	if err != nil {
		return nil, err
	}
	out := make([]Hook, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, h.hook())
	}
	return out, nil
}

// Hook fetches one webhook by uuid.
func (c *Client) Hook(ctx context.Context, accessToken, workspace, slug, uuid string) (Hook, error) {
	var w wireHook
	if _, err := c.call(ctx, "GET /repositories/{workspace}/{repo_slug}/hooks/{uid}", hookPath(workspace, slug, uuid), nil, accessToken, nil, &w); err != nil {
		return Hook{}, err
	}
	return w.hook(), nil
}

// CreateHook subscribes a webhook on the repository (slug may be the
// repository's "{uuid}"). An answer without the hook's uuid is an
// *IncompleteError: it does not say what was created.
func (c *Client) CreateHook(ctx context.Context, accessToken, workspace, slug string, in HookInput) (Hook, error) {
	var w wireHook
	path := hooksPath(workspace, slug)
	if _, err := c.call(ctx, "POST /repositories/{workspace}/{repo_slug}/hooks", path, nil, accessToken, in.body(), &w, in.Secret); err != nil {
		return Hook{}, err
	}
	if strings.Trim(w.UUID, "{} ") == "" {
		return Hook{}, &IncompleteError{Method: http.MethodPost, Path: path, Missing: "uuid"}
	}
	return w.hook(), nil
}

// UpdateHook replaces a webhook's settings.
func (c *Client) UpdateHook(ctx context.Context, accessToken, workspace, slug, uuid string, in HookInput) (Hook, error) {
	var w wireHook
	if _, err := c.call(ctx, "PUT /repositories/{workspace}/{repo_slug}/hooks/{uid}", hookPath(workspace, slug, uuid), nil, accessToken, in.body(), &w, in.Secret); err != nil {
		return Hook{}, err
	}
	return w.hook(), nil
}

// DeleteHook removes a webhook.
func (c *Client) DeleteHook(ctx context.Context, accessToken, workspace, slug, uuid string) error {
	_, err := c.call(ctx, "DELETE /repositories/{workspace}/{repo_slug}/hooks/{uid}", hookPath(workspace, slug, uuid), nil, accessToken, nil, nil)
	return err
}
