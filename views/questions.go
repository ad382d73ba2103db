package views

import (
	"strings"

	"tether/internal/tether"
)

// The questions Tether's destructive actions ask before they act. Each is
// asked in one of two places: by htmx, from the form's hx-confirm, when
// scripts run; by ConfirmPage when a browser without them posts the form
// (handlers' confirmFirst). Both read it from here, so the two never say
// different things.
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

// Confirmation is the page a destructive form posted without JavaScript
// answers with: the question htmx would have asked, and a form that posts
// the same action again, confirmed.
type Confirmation struct {
	Question string // one of the questions above
	Button   string // the word of the button that was pressed: "Regenerate", "Delete project", …
	Subject  string // what the action acts on, said above the question ("acme/api"); "" says nothing
	Cancel   string // the page the action belongs to, where Cancel goes
	Action   string // where the form posted, and the confirmed form posts
	Fields   []Hidden
}

// Hidden is one of the posted form's fields, carried over as a hidden
// input.
type Hidden struct{ Name, Value string }

// ConfirmedField is the hidden field a confirmed form adds (value "yes").
const ConfirmedField = "confirmed"

// questionParts splits a question into what it asks, for the heading, and
// what it explains, for the paragraph under it: "Regenerate the deploy
// key?" and "Tether adds a new key …". A question that only asks has no
// explanation.
func questionParts(q string) (ask, explain string) {
	if i := strings.Index(q, "? "); i >= 0 {
		return q[:i+1], q[i+2:]
	}
	return q, ""
}
