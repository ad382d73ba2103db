package views

import "tether/internal/tether"

// The questions Tether's destructive actions ask before they act (the
// forms' hx-confirm), each in one place.
const (
	DisconnectQuestion    = "Disconnect Bitbucket? Tether forgets its tokens, and projects set up through this connection stop working until you grant access again."
	RemoveChannelQuestion = "Remove this channel? Alerts stop going there."
	RehomeQuestion        = "Re-home this project to you? Tether creates a new deploy key and webhook with your Bitbucket connection, then removes the old ones."
	RemoveAnywayQuestion  = "Remove anyway? Their projects will show that the person backing them left."
)

// RegenerateQuestion is what Regenerate asks for a project's health row,
// by the row's slug ("deploy-key" or "webhook"), on the project page and
// on the troubleshooting checklist alike.
func RegenerateQuestion(slug string) string {
	if slug == "webhook" {
		return "Regenerate the webhook? Tether creates a new webhook with a new secret, then removes the old one."
	}
	return "Regenerate the deploy key? Tether adds a new key to the repository, then removes the old one."
}

// DeleteQuestion is what Delete project asks: it names the project and
// what leaves Bitbucket.
func DeleteQuestion(p tether.Project) string {
	return "Delete the project " + p.Name + "? Tether removes its deploy key and webhook from " + p.FullName +
		" and forgets its workflows and deliveries."
}

// RemoveQuestion is what Remove asks, or Leave on one's own row (you):
// name is the member's, org the organization's.
func RemoveQuestion(you bool, name, org string) string {
	if you {
		return "Leave " + org + "? You lose access to its projects until someone invites you again."
	}
	return "Remove " + name + " from " + org + "?"
}
