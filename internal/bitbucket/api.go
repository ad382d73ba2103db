package bitbucket

import (
	"cmp"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"
)

// User is the Bitbucket account behind an access token.
type User struct {
	UUID        string // "{…}"
	AccountID   string // Atlassian account id
	Username    string
	Nickname    string
	DisplayName string
	HTMLURL     string // links.html.href, the profile page
}

// Workspace is a Bitbucket workspace (the owner part of "acme/api").
type Workspace struct {
	UUID, Slug, Name string
}

// Repository is a Bitbucket repository as Tether needs it.
type Repository struct {
	UUID, Name, Slug, FullName string
	Workspace                  Workspace
	IsPrivate                  bool
	CloneSSH, CloneHTTPS       string // links.clone[name=ssh|https]
	HTMLURL                    string // links.html.href
	UpdatedOn                  time.Time
	// Admin is whether the requesting user administers the repository. Only
	// RepositoriesWithAdmin sets it; everywhere else it is false.
	Admin bool
}

type link struct {
	Href string `json:"href"`
}

// timestamp is a time.Time that tolerates null, "" and odd formats: one
// unreadable display timestamp must not make a whole listing fail.
type timestamp struct{ time.Time }

func (t *timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil || s == "" {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return nil
}

type wireUser struct {
	UUID        string `json:"uuid"`
	AccountID   string `json:"account_id"`
	Username    string `json:"username"`
	Nickname    string `json:"nickname"`
	DisplayName string `json:"display_name"`
	Links       struct {
		HTML link `json:"html"`
	} `json:"links"`
}

type wireWorkspace struct {
	UUID string `json:"uuid"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

func (w wireWorkspace) workspace() Workspace {
	return Workspace{UUID: w.UUID, Slug: w.Slug, Name: w.Name}
}

type wireRepository struct {
	UUID      string        `json:"uuid"`
	Name      string        `json:"name"`
	Slug      string        `json:"slug"`
	FullName  string        `json:"full_name"`
	Workspace wireWorkspace `json:"workspace"`
	IsPrivate bool          `json:"is_private"`
	UpdatedOn timestamp     `json:"updated_on"`
	Links     struct {
		Clone []struct {
			Name string `json:"name"`
			Href string `json:"href"`
		} `json:"clone"`
		HTML link `json:"html"`
	} `json:"links"`
}

func (w wireRepository) repository() Repository {
	r := Repository{
		UUID:      w.UUID,
		Name:      w.Name,
		Slug:      w.Slug,
		FullName:  w.FullName,
		Workspace: w.Workspace.workspace(),
		IsPrivate: w.IsPrivate,
		HTMLURL:   w.Links.HTML.Href,
		UpdatedOn: w.UpdatedOn.Time,
	}
	// Older answers (and some recorded ones) lack "workspace" or "slug";
	// full_name is always "workspace/slug".
	if ws, slug, ok := strings.Cut(w.FullName, "/"); ok {
		if r.Workspace.Slug == "" {
			r.Workspace.Slug = ws
		}
		if r.Slug == "" {
			r.Slug = slug
		}
	}
	for _, c := range w.Links.Clone {
		switch c.Name {
		case "ssh":
			r.CloneSSH = c.Href
		case "https":
			r.CloneHTTPS = c.Href
		}
	}
	return r
}

// CurrentUser returns the token's user (GET /user) and the scopes granted
// to the token, from the X-OAuth-Scopes header (nil if absent).
func (c *Client) CurrentUser(ctx context.Context, accessToken string) (User, []string, error) {
	var w wireUser
	hdr, err := c.call(ctx, "GET /user", "/user", nil, accessToken, nil, &w)
	if err != nil {
		return User{}, nil, err
	}
	u := User{
		UUID:        w.UUID,
		AccountID:   w.AccountID,
		Username:    w.Username,
		Nickname:    w.Nickname,
		DisplayName: w.DisplayName,
		HTMLURL:     w.Links.HTML.Href,
	}
	var scopes []string
	if v := hdr.Values("X-OAuth-Scopes"); v != nil {
		scopes = []string{}
		for _, s := range strings.Split(strings.Join(v, ","), ",") {
			if s = strings.TrimSpace(s); s != "" {
				scopes = append(scopes, s)
			}
		}
	}
	return u, scopes, nil
}

// PrimaryEmail returns the user's primary, confirmed e-mail address, or ""
// if there is none (GET /user/emails; needs the email scope).
func (c *Client) PrimaryEmail(ctx context.Context, accessToken string) (string, error) {
	emails, err := listAll[struct {
		Email     string `json:"email"`
		Primary   bool   `json:"is_primary"`
		Confirmed bool   `json:"is_confirmed"`
	}](ctx, c, "GET /user/emails", accessToken, "/user/emails", nil)
	if err != nil {
		return "", err
	}
	for _, e := range emails {
		if e.Primary && e.Confirmed {
			return e.Email, nil
		}
	}
	return "", nil
}

// Workspaces lists the workspaces the user can access (GET /user/workspaces,
// CHANGE-3022; the older GET /workspaces answers 410 since CHANGE-2770).
func (c *Client) Workspaces(ctx context.Context, accessToken string) ([]Workspace, error) {
	access, err := listAll[struct {
		Workspace wireWorkspace `json:"workspace"`
	}](ctx, c, "GET /user/workspaces", accessToken, "/user/workspaces", nil)
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(access))
	for _, a := range access {
		out = append(out, a.Workspace.workspace())
	}
	return out, nil
}

// WorkspaceRepositories lists a workspace's repositories on which the user
// has at least role ("member", "contributor", "admin", "owner"; "" for no
// filter), optionally only those whose name contains nameContains.
func (c *Client) WorkspaceRepositories(ctx context.Context, accessToken, workspace, role, nameContains string) ([]Repository, error) {
	q := url.Values{"pagelen": {"100"}}
	if role != "" {
		q.Set("role", role)
	}
	if nameContains != "" {
		q.Set("q", `name ~ "`+bbqlEscaper.Replace(nameContains)+`"`)
	}
	repos, err := listAll[wireRepository](ctx, c, "GET /repositories/{workspace}", accessToken, apiPath("repositories", workspace), q)
	if err != nil {
		return nil, err
	}
	out := make([]Repository, 0, len(repos))
	for _, r := range repos {
		out = append(out, r.repository())
	}
	return out, nil
}

// bbqlEscaper escapes a value for a double-quoted BBQL string literal.
var bbqlEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// Unread is a workspace whose repositories could not be listed, and
// Bitbucket's answer (or the budget's refusal) for it.
type Unread struct {
	Workspace Workspace
	Err       error
}

// PartialError is a listing that read some workspaces but not all: each
// answer decides its own workspace only. Unread says which were not read
// and why, in the order Bitbucket listed them.
type PartialError struct{ Unread []Unread }

func (e *PartialError) Error() string {
	names := make([]string, len(e.Unread))
	for i, u := range e.Unread {
		names[i] = u.Workspace.Slug + ": " + u.Err.Error()
	}
	return "bitbucket: some workspaces could not be listed: " + strings.Join(names, "; ")
}

// Repositories lists every repository the user has role on, across all of
// their workspaces (the cross-workspace GET /repositories is gone since
// CHANGE-2770), deduplicated by UUID and sorted by full name. It costs one
// call for GET /user/workspaces plus one per page of each workspace.
//
// One workspace answering an error (its access controls' 403, a 404, a
// 5xx) does not decide the others: their repositories come back with a
// *PartialError naming the workspaces not read. Once the budget holds a
// call back the remaining workspaces are not asked, and are unread too.
// Only listing the workspaces themselves failing, the context ending, or
// every workspace answering 401 (a token no longer valid, for
// connections.Do to refresh) fails the whole listing.
func (c *Client) Repositories(ctx context.Context, accessToken, role string) ([]Repository, error) {
	return c.repositories(ctx, accessToken, role, false)
}

// RepositoriesWithAdmin lists what Repositories(…, "member") lists, with
// Admin set on the repositories the user administers. A repository listing
// carries no permission of the caller's, and GET
// /user/permissions/repositories went with CHANGE-2770; the supported way
// (Atlassian's answer on the Bitbucket community forum, "Replacements for
// deprecated user-scoped permission endpoints") is the role filter: a
// repository listed by GET /repositories/{workspace}?role=admin is one the
// user administers. That is one more paged call per workspace that lists
// any repository: 1 + Σ (member pages + admin pages) calls in all.
func (c *Client) RepositoriesWithAdmin(ctx context.Context, accessToken string) ([]Repository, error) {
	return c.repositories(ctx, accessToken, "member", true)
}

func (c *Client) repositories(ctx context.Context, accessToken, role string, markAdmin bool) ([]Repository, error) {
	workspaces, err := c.Workspaces(ctx, accessToken)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{} // UUID → index in out
	var out []Repository
	var unread []Unread
	var held error // the budget's refusal, once it refused
	// list lists one workspace's repositories for role; an error leaves
	// the workspace unread, and once the budget held a call back the
	// workspaces after it are not asked.
	list := func(ws Workspace, role string) ([]Repository, bool) {
		repos, err := c.WorkspaceRepositories(ctx, accessToken, ws.Slug, role, "")
		if _, deferred := Deferred(err); deferred {
			held = err
		}
		if err != nil {
			unread = append(unread, Unread{ws, err})
			return nil, false
		}
		return repos, true
	}
	for _, ws := range workspaces {
		if held != nil {
			unread = append(unread, Unread{ws, held})
			continue
		}
		repos, ok := list(ws, role)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !ok {
			continue
		}
		if markAdmin && len(repos) > 0 {
			admin, ok := list(ws, "admin")
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !ok {
				continue
			}
			administered := map[string]bool{}
			for _, r := range admin {
				administered[r.UUID] = true
			}
			for i := range repos {
				repos[i].Admin = administered[repos[i].UUID]
			}
		}
		for _, r := range repos {
			if i, ok := seen[r.UUID]; ok {
				out[i].Admin = out[i].Admin || r.Admin
				continue
			}
			seen[r.UUID] = len(out)
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Repository) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.FullName), strings.ToLower(b.FullName)), cmp.Compare(a.FullName, b.FullName))
	})
	if len(unread) == 0 {
		return out, nil
	}
	if len(out) == 0 && !slices.ContainsFunc(unread, func(u Unread) bool { return !IsUnauthorized(u.Err) }) {
		return nil, unread[0].Err
	}
	return out, &PartialError{Unread: unread}
}

// Repository fetches one repository by slug or by "{uuid}"; the latter
// finds it even after a rename or move within the workspace.
func (c *Client) Repository(ctx context.Context, accessToken, workspace, repoSlugOrUUID string) (Repository, error) {
	var w wireRepository
	if _, err := c.call(ctx, "GET /repositories/{workspace}/{repo_slug}", apiPath("repositories", workspace, repoSlugOrUUID), nil, accessToken, nil, &w); err != nil {
		return Repository{}, err
	}
	return w.repository(), nil
}

// RepositoryByUUID finds a repository by its UUID wherever it lives now:
// first under the workspace it was last seen in, then — after a move to
// another workspace or a workspace rename — with "{}" in place of the
// workspace, which Bitbucket accepts with a repository UUID.
func (c *Client) RepositoryByUUID(ctx context.Context, accessToken, lastWorkspace, uuid string) (Repository, error) {
	repo, err := c.Repository(ctx, accessToken, lastWorkspace, uuid)
	if IsNotFound(err) {
		repo, err = c.Repository(ctx, accessToken, "{}", uuid)
	}
	return repo, err
}
