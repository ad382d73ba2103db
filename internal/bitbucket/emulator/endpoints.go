package emulator

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

func apiUser(c *apiCall) reply { return ok(c.e.userJSON(c.s, c.user)) }

func apiUserEmails(c *apiCall) reply {
	values := []any{}
	if c.user.Email != "" {
		values = append(values, map[string]any{
			"type":         "email",
			"email":        c.user.Email,
			"is_primary":   true,
			"is_confirmed": true,
			"links":        map[string]any{"self": href(c.s.api() + "/user/emails/" + seg(c.user.Email))},
		})
	}
	return c.page(values)
}

// memberOf reports whether username can see the workspace in
// /user/workspaces: a member, or someone given access to one of its
// repositories.
func (e *Emulator) memberOf(username string, w *workspace) (member, admin bool) {
	if admin, ok := w.members[username]; ok {
		return true, admin
	}
	for _, r := range e.repos {
		if r.ws == w && r.perms[username] != "" {
			return true, false
		}
	}
	return false, false
}

func apiUserWorkspaces(c *apiCall) reply {
	adminOnly := c.r.URL.Query().Get("administrator")
	values := []any{}
	for _, w := range c.e.workspaces {
		member, admin := c.e.memberOf(c.user.Username, w)
		if !member || (adminOnly != "" && (adminOnly == "true") != admin) {
			continue
		}
		values = append(values, workspaceAccessJSON(c.s, w, admin))
	}
	return c.page(values)
}

func noWorkspace(id string) reply {
	return fail(http.StatusNotFound, "No workspace with identifier '"+id+"'.")
}

func apiUserWorkspacePermission(c *apiCall) reply {
	w := c.e.workspaceByID(c.p["workspace"])
	if w == nil {
		return noWorkspace(c.p["workspace"])
	}
	member, admin := c.e.memberOf(c.user.Username, w)
	if !member {
		return noWorkspace(c.p["workspace"])
	}
	return ok(workspaceAccessJSON(c.s, w, admin))
}

func apiUsers(c *apiCall) reply {
	id := c.p["user"]
	for _, u := range c.e.users {
		if u.Username == id || strings.EqualFold(u.UUID, id) || u.AccountID == id {
			return ok(c.e.userJSON(c.s, u))
		}
	}
	return fail(http.StatusNotFound, id+" not found")
}

func apiWorkspace(c *apiCall) reply {
	w := c.e.workspaceByID(c.p["workspace"])
	if w == nil {
		return noWorkspace(c.p["workspace"])
	}
	return ok(workspaceJSON(c.s, w))
}

// roleMinimum is the permission each role= value of the repository list
// requires.
var roleMinimum = map[string]int{"member": permRead, "contributor": permWrite, "admin": permAdmin, "owner": permAdmin}

func apiRepositories(c *apiCall) reply {
	w := c.e.workspaceByID(c.p["workspace"])
	if w == nil {
		return noWorkspace(c.p["workspace"])
	}
	q := c.r.URL.Query()
	role := q.Get("role")
	minPerm, known := roleMinimum[role]
	if role != "" && !known {
		return fail(http.StatusBadRequest, "Invalid role: "+role)
	}
	var match predicate
	if f := q.Get("q"); f != "" {
		var err error
		if match, err = parseBBQL(f); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
	}
	var list []*repo
	for _, r := range c.e.repos {
		if r.ws != w {
			continue
		}
		if role == "" && !c.e.canRead(c.user.Username, r) || role != "" && c.e.permission(c.user.Username, r) < minPerm {
			continue
		}
		if match != nil {
			keep, err := match(repoField(r))
			if err != nil {
				return fail(http.StatusBadRequest, err.Error())
			}
			if !keep {
				continue
			}
		}
		list = append(list, r)
	}
	if s := q.Get("sort"); s != "" {
		if err := sortRepos(list, s); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
	}
	values := make([]any, 0, len(list))
	for _, r := range list {
		values = append(values, c.e.repoJSON(c.s, r, c.user.Username))
	}
	return c.page(values)
}

// repoField exposes the repository fields BBQL filters and sorts on.
func repoField(r *repo) fieldFunc {
	return func(name string) (any, bool) {
		switch name {
		case "name":
			return r.name, true
		case "slug":
			return r.slug, true
		case "full_name":
			return r.fullName(), true
		case "uuid":
			return r.uuid, true
		case "is_private":
			return r.private, true
		case "description", "language", "website":
			return "", true
		case "scm":
			return "git", true
		case "workspace.slug", "owner.username":
			return r.ws.Slug, true
		case "workspace.uuid", "owner.uuid":
			return r.ws.UUID, true
		case "project.key":
			return "PROJ", true
		case "mainbranch.name":
			return r.mainbranch, true
		case "created_on":
			return fmtTime(r.created), true
		case "updated_on":
			return fmtTime(r.updated), true
		}
		return nil, false
	}
}

func sortRepos(list []*repo, by string) error {
	field, desc := strings.CutPrefix(by, "-")
	if _, ok := repoField(&repo{ws: &workspace{}})(field); !ok {
		return fmt.Errorf("Invalid sort field: %s", field)
	}
	key := func(r *repo) string {
		v, _ := repoField(r)(field)
		return strings.ToLower(fmt.Sprint(v))
	}
	slices.SortStableFunc(list, func(a, b *repo) int {
		n := strings.Compare(key(a), key(b))
		if desc {
			return -n
		}
		return n
	})
	return nil
}

// lookupRepo resolves the {workspace}/{repo} of the path to a repository the
// caller can read; Bitbucket answers 404, not 403, for repositories the user
// cannot see.
func (c *apiCall) lookupRepo() (*repo, *reply) {
	r := c.e.repoByPath(c.p["workspace"], c.p["repo"])
	if r == nil && c.r.Method != http.MethodGet {
		if moved := c.e.formerRepo(c.p["workspace"], c.p["repo"]); moved != nil && c.e.canRead(c.user.Username, moved) {
			rep := c.writeRedirect(moved)
			return nil, &rep
		}
	}
	if r == nil || !c.e.canRead(c.user.Username, r) {
		rep := fail(http.StatusNotFound, "Repository "+c.p["workspace"]+"/"+c.p["repo"]+" not found")
		return nil, &rep
	}
	return r, nil
}

func apiRepository(c *apiCall) reply {
	r, rep := c.lookupRepo()
	if rep != nil {
		return *rep
	}
	return ok(c.e.repoJSON(c.s, r, c.user.Username))
}
