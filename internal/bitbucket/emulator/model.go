package emulator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// User is a Bitbucket account.
type User struct {
	UUID        string // "{…}", with braces as Bitbucket writes it
	AccountID   string // Atlassian account id, "557058:…"
	Username    string
	DisplayName string
	Email       string // primary, confirmed
	Password    string // for the emulator's sign-in form
}

// Workspace is a Bitbucket workspace.
type Workspace struct{ UUID, Slug, Name string }

// Repository is a Bitbucket repository. Workspace is the workspace slug and
// FullName is "workspace/slug".
type Repository struct {
	UUID, Workspace, Slug, FullName string
	Private                         bool
}

// Repository permission levels, ordered so that comparisons read naturally.
const (
	permNone = iota
	permRead
	permWrite
	permAdmin
)

var permNames = map[string]int{"read": permRead, "write": permWrite, "admin": permAdmin}

func permName(p int) string {
	for n, v := range permNames {
		if v == p {
			return n
		}
	}
	return "none"
}

type user struct {
	User
	created time.Time
}

type workspace struct {
	Workspace
	created     time.Time
	projectUUID string
	members     map[string]bool // username → administrator
	refusal     reply           // what every API call on it answers (RefuseWorkspace); status 0 when none
}

type repo struct {
	uuid    string
	ws      *workspace
	slug    string
	name    string
	private bool
	created time.Time
	updated time.Time
	// mainbranch is the default branch, "main" as for new Bitbucket repositories.
	mainbranch string
	// perms are explicit per-user permissions; they override workspace
	// membership, and "" means the user was removed from the repository.
	perms map[string]string

	// formerNames are the full names the repository had before renames
	// and moves ("workspace/slug"): writes to them are redirected.
	formerNames []string

	keys  []*deployKey
	hooks []*Hook
	// sshRefusal, when set, is what the SSH endpoint writes on stderr
	// instead of serving the repository (RefuseSSH).
	sshRefusal string

	description string
	pulls       []*pullRequest  // pull requests into this repository
	nextPR      int             // the last pull request id given
	statuses    map[string]bool // "commit key" of the build statuses reported

	refs    map[string]string  // "refs/heads/main" → commit hash
	commits map[string]*commit // by hash
}

func (r *repo) fullName() string { return r.ws.Slug + "/" + r.slug }

func (r *repo) public() Repository {
	return Repository{UUID: r.uuid, Workspace: r.ws.Slug, Slug: r.slug, FullName: r.fullName(), Private: r.private}
}

// AddUser adds a user, or replaces the one with the same username, and
// returns it with UUID and AccountID filled in when they were empty.
func (e *Emulator) AddUser(u User) User {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addUser(u)
}

func (e *Emulator) addUser(u User) User {
	if old := e.userByName(u.Username); old != nil {
		if u.UUID == "" {
			u.UUID = old.UUID
		}
		if u.AccountID == "" {
			u.AccountID = old.AccountID
		}
		old.User = u
		return u
	}
	if u.UUID == "" {
		u.UUID = newUUID()
	}
	if u.AccountID == "" {
		u.AccountID = "557058:" + strings.Trim(newUUID(), "{}")
	}
	e.users = append(e.users, &user{User: u, created: time.Now()})
	return u
}

// AddWorkspace adds a workspace, or renames the existing one with that slug.
// A workspace whose slug is a username is that user's personal workspace and,
// as on Bitbucket, shares the user's UUID.
func (e *Emulator) AddWorkspace(slug, name string) Workspace {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addWorkspace(slug, name).Workspace
}

func (e *Emulator) addWorkspace(slug, name string) *workspace {
	if w := e.workspaceBySlug(slug); w != nil {
		w.Name = name
		return w
	}
	id := newUUID()
	if u := e.userByName(slug); u != nil && e.workspaceByUUID(u.UUID) == nil {
		id = u.UUID
	}
	w := &workspace{
		Workspace:   Workspace{UUID: id, Slug: slug, Name: name},
		created:     time.Now(),
		projectUUID: newUUID(),
		members:     map[string]bool{},
	}
	e.workspaces = append(e.workspaces, w)
	return w
}

// AddWorkspaceMember makes username a member (or an administrator) of the
// workspace, creating the workspace if needed.
func (e *Emulator) AddWorkspaceMember(workspace, username string, admin bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addWorkspace(workspace, workspace).members[username] = admin
}

// AddRepository adds a repository to a workspace (created if needed), or
// changes the visibility of the existing one.
func (e *Emulator) AddRepository(workspace, slug string, private bool) Repository {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addRepo(workspace, slug, private).public()
}

func (e *Emulator) addRepo(ws, slug string, private bool) *repo {
	w := e.workspaceBySlug(ws)
	if w == nil {
		w = e.addWorkspace(ws, ws)
	}
	if r := e.repoByName(w, slug); r != nil {
		r.private = private
		return r
	}
	now := time.Now()
	r := &repo{uuid: newUUID(), ws: w, slug: slug, name: slug, private: private, created: now, updated: now,
		mainbranch: "main", perms: map[string]string{}, refs: map[string]string{}, commits: map[string]*commit{}}
	// Every repository starts with one commit on its main branch, so the SSH
	// ref advertisement and the first push's "old" have something to show.
	author, raw := e.initialAuthor(w)
	c := r.newCommit("Initial commit\n", author, raw, nil)
	r.refs[branchRef(r.mainbranch)] = c.hash
	e.repos = append(e.repos, r)
	return r
}

// initialAuthor picks who made a new repository's first commit: the owner of
// a personal workspace, else its first administrator, else nobody known.
func (e *Emulator) initialAuthor(w *workspace) (*user, string) {
	u := e.userByUUID(w.UUID)
	if u == nil {
		var admins []string
		for name, admin := range w.members {
			if admin {
				admins = append(admins, name)
			}
		}
		slices.Sort(admins)
		for _, name := range admins {
			if u = e.userByName(name); u != nil {
				break
			}
		}
	}
	if u == nil {
		return nil, "Bitbucket emulator <emulator@localhost>"
	}
	return u, u.gitAuthor()
}

// gitAuthor is the user as a git author line, "Name <email>".
func (u *user) gitAuthor() string { return fmt.Sprintf("%s <%s>", u.DisplayName, u.Email) }

// SetRepoPermission gives username "read", "write" or "admin" on the
// repository fullName ("workspace/slug"), overriding what workspace
// membership gives; "" removes the user's access to that repository.
// Unknown repositories are ignored.
func (e *Emulator) SetRepoPermission(username, fullName, perm string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.setRepoPermission(username, fullName, perm)
}

func (e *Emulator) setRepoPermission(username, fullName, perm string) error {
	r := e.repoByFullName(fullName)
	if r == nil {
		return fmt.Errorf("no repository %s", fullName)
	}
	if _, ok := permNames[perm]; !ok && perm != "" {
		return fmt.Errorf("unknown permission %q", perm)
	}
	r.perms[username] = perm
	return nil
}

// permission is what username may do on r: an explicit repository
// permission wins, then workspace administrators get admin and members read.
func (e *Emulator) permission(username string, r *repo) int {
	if p, ok := r.perms[username]; ok {
		return permNames[p]
	}
	if admin, ok := r.ws.members[username]; ok {
		if admin {
			return permAdmin
		}
		return permRead
	}
	return permNone
}

func (e *Emulator) canRead(username string, r *repo) bool {
	return !r.private || e.permission(username, r) >= permRead
}

func (e *Emulator) userByName(name string) *user {
	for _, u := range e.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}

// workspaceBySlug finds a workspace by its slug (workspace ID) whatever
// the case it is written in: Bitbucket resolves workspace and repository
// slugs case-insensitively and answers with the canonical lower-case form
// (full_name, links, next pages), as clients that pass mixed case found
// (simstudioai/sim#6883; drone/drone#1351 splits on full_name for it).
func (e *Emulator) workspaceBySlug(slug string) *workspace {
	for _, w := range e.workspaces {
		if strings.EqualFold(w.Slug, slug) {
			return w
		}
	}
	return nil
}

func (e *Emulator) workspaceByUUID(id string) *workspace {
	for _, w := range e.workspaces {
		if strings.EqualFold(w.UUID, id) {
			return w
		}
	}
	return nil
}

// workspaceByID resolves a workspace path segment, which Bitbucket accepts
// as a slug or as a "{uuid}".
func (e *Emulator) workspaceByID(id string) *workspace {
	if strings.HasPrefix(id, "{") {
		return e.workspaceByUUID(id)
	}
	return e.workspaceBySlug(id)
}

// repoByName finds a workspace's repository by slug, case-insensitively
// (see workspaceBySlug).
func (e *Emulator) repoByName(w *workspace, slug string) *repo {
	for _, r := range e.repos {
		if r.ws == w && strings.EqualFold(r.slug, slug) {
			return r
		}
	}
	return nil
}

func (e *Emulator) repoByUUID(id string) *repo {
	for _, r := range e.repos {
		if strings.EqualFold(r.uuid, id) {
			return r
		}
	}
	return nil
}

func (e *Emulator) repoByFullName(fullName string) *repo {
	ws, slug, ok := strings.Cut(fullName, "/")
	if !ok {
		return nil
	}
	w := e.workspaceBySlug(ws)
	if w == nil {
		return nil
	}
	return e.repoByName(w, slug)
}

// repoByPath resolves the {workspace}/{repo_slug} pair of an API path. Either
// part may be a "{uuid}"; "{}" stands for "any workspace" when the repository
// is given by uuid.
func (e *Emulator) repoByPath(wsID, repoID string) *repo {
	if strings.HasPrefix(repoID, "{") {
		r := e.repoByUUID(repoID)
		if r == nil || wsID == "{}" || r.ws == e.workspaceByID(wsID) {
			return r
		}
		return nil
	}
	w := e.workspaceByID(wsID)
	if w == nil {
		return nil
	}
	return e.repoByName(w, repoID)
}

// seedDemo creates the demo world described in the package's brief: three
// people, a team workspace with enough repositories to need paging, and
// personal workspaces. Its UUIDs are the same on every start, so a demo
// restarted on the same data folder still knows its people and
// repositories (their keys, hooks and grants, held in memory, are gone).
func (e *Emulator) seedDemo() {
	for _, u := range []User{
		{Username: "alice", DisplayName: "Alice Liddell", Email: "alice@example.com", Password: "demo"},
		{Username: "bob", DisplayName: "Bob Builder", Email: "bob@example.com", Password: "demo"},
		{Username: "carol", DisplayName: "Carol Danvers", Email: "carol@example.com", Password: "demo"},
	} {
		u.UUID = demoUUID("user", u.Username)
		u.AccountID = "557058:" + strings.Trim(demoUUID("account", u.Username), "{}")
		e.addUser(u)
	}
	defer func() {
		for _, w := range e.workspaces {
			if e.userByUUID(w.UUID) == nil {
				w.UUID = demoUUID("workspace", w.Slug)
			}
			w.projectUUID = demoUUID("project", w.Slug)
		}
		for _, r := range e.repos {
			r.uuid = demoUUID("repository", r.fullName())
		}
	}()
	e.addWorkspace("acme", "Acme Inc")
	e.addWorkspace("alice", "Alice Liddell")
	e.addWorkspace("bob", "Bob Builder")
	e.workspaceBySlug("acme").members["alice"] = true
	e.workspaceBySlug("acme").members["bob"] = false
	e.workspaceBySlug("alice").members["alice"] = true
	e.workspaceBySlug("bob").members["bob"] = true

	e.addRepo("acme", "api", true)
	e.addRepo("acme", "web", false)
	e.addRepo("acme", "infra", true).perms["bob"] = ""
	e.addRepo("acme", "docs", false)
	for i := 1; i <= 24; i++ {
		e.addRepo("acme", fmt.Sprintf("service-%02d", i), true)
	}
	e.addRepo("alice", "dotfiles", false)
	e.addRepo("bob", "sandbox", true)
}

// demoUUID is a stable, Bitbucket-shaped UUID for a thing of the demo
// world, the same on every start.
func demoUUID(kind, name string) string {
	return "{" + uuid.NewSHA1(uuid.NameSpaceURL, []byte("tether-demo:"+kind+":"+name)).String() + "}"
}
