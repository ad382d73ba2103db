package emulator

import (
	"net"
	"net/url"
	"strings"
)

// The JSON objects below copy the shapes of Bitbucket's answers (see
// shared/bitbucket/recorded): maps rather than structs because most of each
// object is links, and because clients decode them by field name anyway.

func href(u string) map[string]string { return map[string]string{"href": u} }

// seg escapes one path segment; "{uuid}" identifiers become "%7B…%7D" as in
// Bitbucket's own links.
func seg(s string) string { return url.PathEscape(s) }

func avatarURL(s site, name string) string { return s.base + "/account/" + seg(name) + "/avatar/32/" }

// userJSON is a full user object, as GET /2.0/user answers.
func (e *Emulator) userJSON(s site, u *user) map[string]any {
	api, name := s.api(), seg(u.Username)
	return map[string]any{
		"type":           "user",
		"username":       u.Username,
		"nickname":       u.Username,
		"display_name":   u.DisplayName,
		"uuid":           u.UUID,
		"account_id":     u.AccountID,
		"account_status": "active",
		"website":        nil,
		"location":       nil,
		"is_staff":       false,
		"created_on":     fmtTime(u.created),
		"links": map[string]any{
			"self":         href(api + "/users/" + name),
			"html":         href(s.base + "/" + name + "/"),
			"avatar":       href(avatarURL(s, u.Username)),
			"repositories": href(api + "/repositories/" + name),
			"hooks":        href(api + "/users/" + name + "/hooks"),
			"followers":    href(api + "/users/" + name + "/followers"),
			"following":    href(api + "/users/" + name + "/following"),
			"snippets":     href(api + "/snippets/" + name),
		},
	}
}

// userRef is the short user object embedded in other objects (owner, actor,
// commit author).
func userRef(s site, u *user) map[string]any {
	name := seg(u.Username)
	return map[string]any{
		"type":         "user",
		"username":     u.Username,
		"nickname":     u.Username,
		"display_name": u.DisplayName,
		"uuid":         u.UUID,
		"account_id":   u.AccountID,
		"links": map[string]any{
			"self":   href(s.api() + "/users/" + name),
			"html":   href(s.base + "/" + name + "/"),
			"avatar": href(avatarURL(s, u.Username)),
		},
	}
}

func (e *Emulator) userByUUID(id string) *user {
	for _, u := range e.users {
		if strings.EqualFold(u.UUID, id) {
			return u
		}
	}
	return nil
}

// ownerJSON is a repository's owner: the user for a personal workspace, the
// team otherwise, as Bitbucket still reports it.
func (e *Emulator) ownerJSON(s site, w *workspace) map[string]any {
	if u := e.userByUUID(w.UUID); u != nil {
		return userRef(s, u)
	}
	return map[string]any{
		"type":         "team",
		"username":     w.Slug,
		"display_name": w.Name,
		"uuid":         w.UUID,
		"links": map[string]any{
			"self":   href(s.api() + "/teams/" + seg(w.Slug)),
			"html":   href(s.base + "/" + seg(w.Slug) + "/"),
			"avatar": href(avatarURL(s, w.Slug)),
		},
	}
}

func workspaceLinks(s site, w *workspace) map[string]any {
	slug := seg(w.Slug)
	return map[string]any{
		"self":   href(s.api() + "/workspaces/" + slug),
		"html":   href(s.base + "/" + slug + "/"),
		"avatar": href(avatarURL(s, w.Slug)),
	}
}

// workspaceRef is the workspace object embedded in repositories.
func workspaceRef(s site, w *workspace, typ string) map[string]any {
	return map[string]any{
		"type":  typ,
		"uuid":  w.UUID,
		"slug":  w.Slug,
		"name":  w.Name,
		"links": workspaceLinks(s, w),
	}
}

func workspaceJSON(s site, w *workspace) map[string]any {
	o := workspaceRef(s, w, "workspace")
	o["is_private"] = false
	o["created_on"] = fmtTime(w.created)
	links := o["links"].(map[string]any)
	api := s.api()
	slug := seg(w.Slug)
	links["members"] = href(api + "/workspaces/" + slug + "/members")
	links["projects"] = href(api + "/workspaces/" + slug + "/projects")
	links["repositories"] = href(api + "/repositories/" + slug)
	links["hooks"] = href(api + "/workspaces/" + slug + "/hooks")
	return o
}

func workspaceAccessJSON(s site, w *workspace, admin bool) map[string]any {
	return map[string]any{
		"type":          "workspace_access",
		"administrator": admin,
		"workspace":     workspaceRef(s, w, "workspace_base"),
		"links": map[string]any{
			"self": href(s.api() + "/user/workspaces/" + seg(w.Slug) + "/permission"),
		},
	}
}

// defaultProject stands for the project every repository now belongs to.
func projectJSON(s site, w *workspace) map[string]any {
	slug := seg(w.Slug)
	return map[string]any{
		"type": "project",
		"key":  "PROJ",
		"uuid": w.projectUUID,
		"name": "Untitled project",
		"links": map[string]any{
			"self":   href(s.api() + "/workspaces/" + slug + "/projects/PROJ"),
			"html":   href(s.base + "/" + slug + "/workspace/projects/PROJ"),
			"avatar": href(s.base + "/account/user/" + slug + "/projects/PROJ/avatar/32"),
		},
	}
}

func repoPath(r *repo) string { return seg(r.ws.Slug) + "/" + seg(r.slug) }

// repoRef is the short repository object embedded in hooks, keys and
// webhook payloads.
func repoRef(s site, r *repo) map[string]any {
	return map[string]any{
		"type":      "repository",
		"name":      r.name,
		"full_name": r.fullName(),
		"uuid":      r.uuid,
		"links": map[string]any{
			"self":   href(s.api() + "/repositories/" + repoPath(r)),
			"html":   href(s.base + "/" + repoPath(r)),
			"avatar": href(avatarURL(s, r.ws.Slug)),
		},
	}
}

// repoJSON is a full repository object as GET /2.0/repositories/{ws}/{slug}
// answers; viewer is the username put in the https clone URL.
func (e *Emulator) repoJSON(s site, r *repo, viewer string) map[string]any {
	api := s.api() + "/repositories/" + repoPath(r)
	o := repoRef(s, r)
	links := o["links"].(map[string]any)
	for _, l := range []string{"watchers", "commits", "hooks", "forks", "downloads", "pullrequests"} {
		links[l] = href(api + "/" + l)
	}
	links["source"] = href(api + "/src")
	links["branches"] = href(api + "/refs/branches")
	links["tags"] = href(api + "/refs/tags")
	links["clone"] = []map[string]string{
		{"name": "https", "href": e.httpsClone(s, r, viewer)},
		{"name": "ssh", "href": e.sshClone(s, r)},
	}
	o["slug"] = r.slug
	o["is_private"] = r.private
	o["scm"] = "git"
	o["website"] = ""
	o["description"] = ""
	o["language"] = ""
	o["has_wiki"] = false
	o["has_issues"] = false
	o["fork_policy"] = "no_public_forks"
	if !r.private {
		o["fork_policy"] = "allow_forks"
	}
	o["size"] = 1116345
	o["created_on"] = fmtTime(r.created)
	o["updated_on"] = fmtTime(r.updated)
	o["mainbranch"] = map[string]string{"type": "branch", "name": r.mainbranch}
	o["owner"] = e.ownerJSON(s, r.ws)
	o["workspace"] = workspaceRef(s, r.ws, "workspace")
	o["project"] = projectJSON(s, r.ws)
	o["parent"] = nil
	return o
}

func (e *Emulator) httpsClone(s site, r *repo, viewer string) string {
	u, err := url.Parse(s.base)
	if err != nil {
		return s.base + "/" + repoPath(r) + ".git"
	}
	if viewer != "" {
		u.User = url.User(viewer)
	}
	return strings.TrimRight(u.String(), "/") + "/" + repoPath(r) + ".git"
}

// sshClone is the SSH clone URL: Bitbucket's scp-like form when the SSH
// server is on port 22, the ssh:// form otherwise because the scp-like form
// cannot carry a port.
func (e *Emulator) sshClone(s site, r *repo) string {
	host := e.sshHost(s)
	if h, port, err := net.SplitHostPort(host); err == nil {
		if port != "22" {
			return "ssh://git@" + host + "/" + r.fullName() + ".git"
		}
		host = h
	}
	return "git@" + host + ":" + r.fullName() + ".git"
}

// sshHost is where clients reach the SSH endpoint: the running SSH server,
// or the web host when there is none.
func (e *Emulator) sshHost(s site) string {
	if e.ssh.ln != nil {
		return e.ssh.ln.Addr().String()
	}
	if u, err := url.Parse(s.base); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "localhost"
}
