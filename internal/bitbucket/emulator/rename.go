package emulator

import "fmt"

// Renames and moves keep a repository's UUID, deploy keys and hooks; only
// its path changes, so the old path answers 404 while lookups by UUID keep
// working, as on Bitbucket.

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
	w.Slug = newSlug
	return nil
}
