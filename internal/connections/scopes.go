package connections

import (
	"slices"
	"strings"
)

// Required are the OAuth scopes Tether's features depend on, with what
// breaks without each, in the words shown on the account page.
var Required = []struct{ Scope, Breaks string }{
	{"account", "Tether cannot check that the connection still works"},
	{"email", "sign-up cannot read your confirmed e-mail address"},
	{"repository", "Tether cannot list your repositories"},
	{"repository:admin", "Tether cannot add or check deploy keys"},
	{"webhook", "Tether cannot create or check webhooks, so pushes will not start workflows"},
}

// Missing is a required scope the grant lacks.
type Missing struct{ Scope, Breaks string }

// Grant says in words what a set of granted scopes allows.
type Grant struct {
	Allows  string // e.g. "public and private repositories (administer), webhooks"
	Missing []Missing
}

// implied lists, for each scope, the scopes it includes (Bitbucket's
// scopes are hierarchical: repository:admin includes repository).
var implied = map[string][]string{
	"repository:admin":  {"repository"},
	"repository:write":  {"repository"},
	"repository:delete": {"repository"},
	"pullrequest:write": {"pullrequest", "repository:write", "repository"},
	"pullrequest":       {"repository"},
	"webhook":           {},
}

func expand(scopes []string) []string {
	out := slices.Clone(scopes)
	for _, s := range scopes {
		out = append(out, implied[s]...)
	}
	return out
}

// Describe explains scopes. An empty list means the server did not report
// them; then nothing is called missing.
func Describe(scopes []string) Grant {
	if len(scopes) == 0 {
		return Grant{Allows: "access as granted on Bitbucket (the scopes were not reported)"}
	}
	all := expand(scopes)
	has := func(s string) bool { return slices.Contains(all, s) }
	var parts []string
	switch {
	case has("repository:admin"):
		parts = append(parts, "public and private repositories, including their deploy keys and settings")
	case has("repository:write"):
		parts = append(parts, "public and private repositories (read and write)")
	case has("repository"):
		parts = append(parts, "public and private repositories (read)")
	}
	if has("webhook") {
		parts = append(parts, "webhooks")
	}
	if has("pullrequest") {
		parts = append(parts, "pull requests")
	}
	if has("account") {
		parts = append(parts, "your account details")
	}
	if has("email") {
		parts = append(parts, "your e-mail address")
	}
	g := Grant{Allows: strings.Join(parts, ", ")}
	if g.Allows == "" {
		g.Allows = "no repository access"
	}
	for _, r := range Required {
		if !has(r.Scope) {
			g.Missing = append(g.Missing, Missing(r))
		}
	}
	return g
}
