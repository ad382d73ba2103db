package views

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
		return "Bitbucket could not be reached"
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

func projectURL(id int64) string { return "/projects/" + strconv.FormatInt(id, 10) }

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
