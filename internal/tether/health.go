package tether

import "time"

// Parts of a project's integration whose health is checked.
const (
	PartDeployKey = "deploy_key"
	PartWebhook   = "webhook"
)

// PartName is how messages name a part: "deploy key" or "webhook".
func PartName(part string) string {
	if part == PartWebhook {
		return "webhook"
	}
	return "deploy key"
}

// Health statuses.
const (
	Valid   = "valid"
	Invalid = "invalid"
	Unknown = "unknown" // could not check: never shown as invalid
)

// Health is the last check of one part of a project.
type Health struct {
	ProjectID int64
	Part      string
	Status    string
	Reason    string // short, stable: e.g. "removed from the repository"
	Detail    string // what was found, for people
	CheckedAt time.Time
	Since     time.Time // when the status last changed
}

// Reasons, short and stable: tests, monitors and the troubleshooting page
// key on them.
const (
	ReasonKeyRemoved    = "removed from the repository"
	ReasonOAuthRevoked  = "OAuth permissions revoked"
	ReasonOwnerNoAccess = "owner no longer has access to the repository"
	ReasonKeyDiffers    = "key on Bitbucket differs from ours"
	ReasonSSHDenied     = "SSH Permission denied (publickey)"
	ReasonSSHRefused    = "refused over SSH" // Bitbucket's reason is in the detail
	ReasonScopeMissing  = "the grant lacks a permission"
	ReasonCouldNotCheck = "could not check"
	ReasonNoDeployKey   = "no deploy key"
	ReasonHookDeleted   = "deleted on Bitbucket"
	ReasonHookInactive  = "deactivated"
	ReasonHookWrongURL  = "points at the wrong URL"
	ReasonHookNoPush    = "repo:push missing"
	ReasonHookNoSecret  = "no secret"
	ReasonNoWebhook     = "no webhook"
)
