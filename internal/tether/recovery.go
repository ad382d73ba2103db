package tether

import "time"

// Workflow triggers.
const (
	TriggerPush        = "push"
	TriggerPullRequest = "pull_request"
	// TriggerRecovered: started by an admin for a branch that changed while
	// deliveries were not arriving (a broken webhook, Tether down).
	TriggerRecovered = "recovered"
)

// BranchHead is where a branch of a repository points on Bitbucket.
type BranchHead struct {
	Name        string
	Commit      string // full hash
	Message     string
	Author      string
	CommittedAt time.Time
}

// MissedBranch is a branch whose head has no workflow: it changed while
// deliveries were not arriving.
type MissedBranch struct {
	ProjectID int64
	BranchHead
	FoundAt time.Time
	Why     string // what made Tether compare, for people
}

// RecoveryCheck is a pending comparison of a project's branch heads with
// its workflows.
type RecoveryCheck struct {
	ProjectID int64
	Why       string
	DueAt     time.Time
	Attempts  int
}

// Deprecation is a Bitbucket API retirement Tether ran into: a 410 Gone
// naming a change (e.g. CHANGE-2770).
type Deprecation struct {
	Change    string // "CHANGE-2770"
	Message   string // Bitbucket's message
	Method    string
	Path      string // the endpoint, with names and ids replaced by {…}
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int
}
