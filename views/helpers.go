package views

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"tether/internal/health"
	"tether/internal/projects"
	"tether/internal/tether"
	"tether/internal/troubleshooting"
)

func csrfHeader(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

func statusTitle(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Not found"
	case http.StatusForbidden:
		return "Not allowed"
	case http.StatusUnauthorized:
		return "Please log in"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// Unreachable, rate limiting, or refusing for now: the message
		// below says which.
		return "Bitbucket could not do this just now"
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return "That did not work"
}

func valueUnlessPassword(f Form, name, typ string) string {
	if typ == "password" {
		return ""
	}
	return f.Value(name)
}

func stepNumber(i int) string { return strconv.Itoa(i+1) + "." }

// withNext adds next (a local path the handlers checked) to a login or
// sign-up link, so the person comes back to where they were going.
func withNext(path, next string) string {
	if next == "" {
		return path
	}
	return path + "?" + url.Values{"next": {next}}.Encode()
}

// ProjectURL is the address of project id's page.
func ProjectURL(id int64) string { return "/projects/" + strconv.FormatInt(id, 10) }

// pollTrigger polls every 10 s, and once more soon while a check runs so
// its result shows without waiting a whole interval.
func pollTrigger(checking bool) string {
	if checking {
		return "load delay:1s, every 10s"
	}
	return "every 10s"
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func refLabel(w tether.Workflow) string {
	switch w.Trigger {
	case tether.TriggerPullRequest:
		return "pull request from " + w.RefName
	case tether.TriggerRecovered:
		return w.RefType + " " + w.RefName + " (recovered: missed while deliveries were not arriving)"
	}
	return w.RefType + " " + w.RefName
}

// regeneratePart is the row a step's Regenerate button acts on.
func regeneratePart(s troubleshooting.Step) string {
	if s.Action == "regenerate-webhook" {
		return "webhook"
	}
	return s.Name
}

// places are the pages Tether's messages name, and where each is. A
// message that names one links to it (Prose), so "grant access again on
// your account page" is one click from being done.
var places = []struct{ phrase, href string }{
	{"your account page", "/account"},
	{"the troubleshooting checklist", "/troubleshooting"},
	{"the Team page", "/team"},
	{"the Audit log", "/team/audit"},
}

// segment is a run of message text, linked when Href is set.
type segment struct{ Text, Href string }

// segments splits a message at the places it names.
func segments(s string) []segment {
	var out []segment
	for s != "" {
		at, which := -1, -1
		for i, p := range places {
			if j := strings.Index(s, p.phrase); j >= 0 && (at < 0 || j < at) {
				at, which = j, i
			}
		}
		if at < 0 {
			out = append(out, segment{Text: s})
			break
		}
		if at > 0 {
			out = append(out, segment{Text: s[:at]})
		}
		p := places[which]
		out = append(out, segment{Text: p.phrase, Href: p.href})
		s = s[at+len(p.phrase):]
	}
	return out
}

func noticeIcon(kind string) string {
	switch kind {
	case "ok":
		return "✓"
	case "error", "warning":
		return "⚠"
	}
	return "ℹ"
}

func gone(g bool, word string) string {
	if g {
		return word
	}
	return ""
}

// auditSummary says how many entries there are and how many this page
// shows, e.g. "1 entry matches this filter; 1 on this page."
func auditSummary(total, onPage int, filtered bool) string {
	s := plural(total, "entry", "entries")
	switch {
	case filtered && total == 1:
		s += " matches this filter"
	case filtered:
		s += " match this filter"
	default:
		s += " in all"
	}
	return s + "; " + strconv.Itoa(onPage) + " on this page."
}

// DemoLeftoversNote says what a demo restarted on an old data folder means
// for its projects: the emulator lives in memory.
func DemoLeftoversNote(n int) string {
	verb := " show"
	if n == 1 {
		verb = " shows"
	}
	return "The demo Bitbucket lives in memory and started afresh: " + plural(n, "project", "projects") +
		" from an earlier run" + verb + " Invalid until you grant access again and Regenerate, or stop Tether and delete its data folder to start over."
}

// otherRole is the role a Make … button gives.
func otherRole(role string) string {
	if role == tether.RoleAdmin {
		return tether.RoleMember
	}
	return tether.RoleAdmin
}

// youOr is "you" for the viewer and the name for anyone else.
func youOr(you bool, name string) string {
	if you {
		return "you"
	}
	return name
}

// plural is "1 project" or "2 projects": count and noun, agreeing.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// notAdmin counts the picker's repositories the person cannot administer.
func notAdmin(choices []projects.Choice) int {
	n := 0
	for _, c := range choices {
		if !c.Admin {
			n++
		}
	}
	return n
}

// choiceSummary counts the picker's repositories and those the person
// administers.
func choiceSummary(choices []projects.Choice) string {
	admin := 0
	for _, c := range choices {
		if c.Admin {
			admin++
		}
	}
	return plural(len(choices), "repository", "repositories") + "; you administer " + strconv.Itoa(admin) + "."
}

func roleWord(role string) string {
	if role == tether.RoleAdmin {
		return "Admin"
	}
	return "Member"
}

// memberStatus is a member's connection for the badge ("" means never
// connected, shown as Not Connected).
func memberStatus(s string) string {
	if s == tether.Connected {
		return "connected"
	}
	return "not_connected"
}

// syncWithPoll is the hx-sync of every action inside a part of the page
// that polls itself (marked data-poll): the action takes the part's
// request slot, cancelling a poll in flight, and a poll that comes due
// while the action runs is dropped. So a slow Regenerate keeps its
// working indicator and its outcome is not overwritten by an older state.
const syncWithPoll = "closest [data-poll]:replace"

// CheckedNotice says what Check now found, for a page reached without
// htmx (where the row itself is not swapped in place): the row's title,
// its status in the badge's word, and why when it is not valid.
func CheckedNotice(title string, b health.Badge) Notice {
	switch b.Status {
	case tether.Valid:
		return Notice{Kind: "ok", Message: title + " checked with Bitbucket just now: Valid."}
	case tether.Invalid:
		return Notice{Kind: "warning", Message: title + " checked with Bitbucket just now: Invalid: " + b.Reason + "."}
	case tether.Unknown:
		return Notice{Kind: "warning", Message: title + " could not be checked just now: " + b.Detail}
	default:
		return Notice{Kind: "ok", Message: title + " is being checked with Bitbucket; the page shows the result when it is in."}
	}
}

// ConnectionCheckedNotice says what Check now on the Account page found,
// for the page a plain post lands on, in the Bitbucket row's words: the
// badge's word, why it is Not Connected, or why the check gave no verdict.
func ConnectionCheckedNotice(v ConnectionView) Notice {
	const title = "Bitbucket connection"
	switch {
	case v.Connected && v.Notice != "":
		return Notice{Kind: "warning", Message: title + " could not be checked just now: " + v.Notice + "."}
	case v.Connected:
		return Notice{Kind: "ok", Message: title + " checked just now: Connected."}
	case v.Linked && v.Reason != "":
		return Notice{Kind: "warning", Message: title + " checked just now: Not Connected: " + v.Reason + "."}
	default:
		return Notice{Kind: "warning", Message: title + " checked just now: Not Connected."}
	}
}
