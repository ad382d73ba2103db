package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

// Renames and moves keep a repository's UUID, deploy keys and hooks; only
// its path changes, so a read of the old path answers 404 while lookups by
// UUID keep working, and a write to the old path (POST, PUT, DELETE) is
// answered with the redirect Bitbucket sends for a moved repository: 301
// Moved Permanently to the same resource at the repository's new place
// (writeRedirect).

// RenameRepository changes a repository's slug (and name).
func (e *Emulator) RenameRepository(fullName, newSlug string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.renameRepo(fullName, newSlug)
}

func (e *Emulator) renameRepo(fullName, newSlug string) error {
	r := e.repoByFullName(fullName)
	if r == nil {
		return fmt.Errorf("no repository %s", fullName)
	}
	if !validSlug(newSlug) {
		return fmt.Errorf("invalid repository slug %q", newSlug)
	}
	if e.repoByName(r.ws, newSlug) != nil {
		return fmt.Errorf("%s/%s already exists", r.ws.Slug, newSlug)
	}
	r.formerNames = append(r.formerNames, r.fullName())
	r.slug, r.name = newSlug, newSlug
	return nil
}

// MoveRepository transfers a repository to another workspace, created if
// needed. Access then follows the new workspace's membership.
func (e *Emulator) MoveRepository(fullName, newWorkspace string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.moveRepo(fullName, newWorkspace)
}

func (e *Emulator) moveRepo(fullName, newWorkspace string) error {
	r := e.repoByFullName(fullName)
	if r == nil {
		return fmt.Errorf("no repository %s", fullName)
	}
	if !validSlug(newWorkspace) {
		return fmt.Errorf("invalid workspace slug %q", newWorkspace)
	}
	w := e.workspaceBySlug(newWorkspace)
	if w == nil {
		w = e.addWorkspace(newWorkspace, newWorkspace)
	}
	if e.repoByName(w, r.slug) != nil {
		return fmt.Errorf("%s/%s already exists", newWorkspace, r.slug)
	}
	r.formerNames = append(r.formerNames, r.fullName())
	r.ws = w
	return nil
}

// RenameWorkspace changes a workspace's slug; its repositories follow.
func (e *Emulator) RenameWorkspace(oldSlug, newSlug string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.renameWorkspace(oldSlug, newSlug)
}

func (e *Emulator) renameWorkspace(oldSlug, newSlug string) error {
	w := e.workspaceBySlug(oldSlug)
	if w == nil {
		return fmt.Errorf("no workspace %s", oldSlug)
	}
	if !validSlug(newSlug) {
		return fmt.Errorf("invalid workspace slug %q", newSlug)
	}
	if e.workspaceBySlug(newSlug) != nil {
		return fmt.Errorf("workspace %s already exists", newSlug)
	}
	for _, r := range e.repos {
		if r.ws == w {
			r.formerNames = append(r.formerNames, r.fullName())
		}
	}
	w.Slug = newSlug
	return nil
}

// formerRepo is the repository a path addressed before it moved: wsID is
// a former workspace slug of it and repoID its former slug or its
// "{uuid}". nil when the path was never one of a repository's.
func (e *Emulator) formerRepo(wsID, repoID string) *repo {
	for _, r := range e.repos {
		for _, old := range r.formerNames {
			ws, slug, _ := strings.Cut(old, "/")
			if ws == wsID && (slug == repoID || strings.HasPrefix(repoID, "{") && strings.EqualFold(repoID, r.uuid)) {
				return r
			}
		}
	}
	return nil
}

// writeRedirect answers a write to a former path of r: 301 to the same
// resource under r's current place, keeping a "{uuid}" repository segment
// as the request had it.
func (c *apiCall) writeRedirect(r *repo) reply {
	segs := strings.Split(strings.TrimPrefix(c.r.URL.EscapedPath(), "/"), "/")
	// segs: "2.0", "repositories", workspace, repo, the rest.
	segs[2] = seg(r.ws.Slug)
	if !strings.HasPrefix(c.p["repo"], "{") {
		segs[3] = seg(r.slug)
	}
	return reply{status: http.StatusMovedPermanently, location: c.s.base + "/" + strings.Join(segs, "/")}
}
