package tether

import (
	"time"
)

// Project is a CI project tied to one Bitbucket repository.
type Project struct {
	ID    int64
	OrgID int64
	// Name is what people call the project: its repository's full name,
	// following it through renames and moves (Update URL, Change).
	Name      string
	OwnerID   int64 // whose Bitbucket connection Tether acts with
	OwnerName string
	RepoUUID  string
	Workspace string
	RepoSlug  string
	FullName  string
	CloneSSH  string
	HTMLURL   string
	Private   bool
	HookToken string // the random last segment of the webhook URL
	MovedTo   string // the full name Bitbucket now has, when it differs
	CreatedAt time.Time
}

// DeployKey is the key Tether registered on a project's repository.
type DeployKey struct {
	ID             int64
	ProjectID      int64
	BitbucketKeyID int
	PublicKey      string // authorized_keys line
	Fingerprint    string // SHA256:…
	PrivateKey     []byte // OpenSSH PEM; sealed in the table, never shown
	State          string // active | retiring
	CreatedAt      time.Time
}

// Repository is where a project's repository lives on Bitbucket.
type Repository struct {
	UUID, Workspace, Slug, FullName, CloneSSH, HTMLURL string
	Private                                            bool
}

// PartsChange is one change of a project's deploy key and webhook, stored
// in one transaction: Regenerate (Key or Hook), Change to another
// repository (Repository, both parts), Re-home (OwnerID, both parts).
type PartsChange struct {
	Key        *DeployKey  // the new key in force; the one it replaces is forgotten
	Hook       *Webhook    // the new hook in force; the one it replaces retires
	Repository *Repository // the repository the project uses from now on
	OwnerID    int64       // whose connection backs the project from now on; 0 keeps it
	Leftovers  []Leftover  // what the change lets go of on Bitbucket
	Audit      []Audit
}
