// Package troubleshooting walks the checklist a person follows when "my
// repositories aren't showing" or "my pushes stopped starting workflows":
// is Bitbucket connected, are repositories visible, and (per project) is
// the deploy key valid, is the webhook healthy, when did the last delivery
// arrive. Each failed step says what it means and what to do.
package troubleshooting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/projects"
	"tether/internal/tether"
)

// State of a step.
const (
	OK      = "ok"
	Failed  = "failed"
	Unknown = "unknown" // could not be checked now
	Skipped = "skipped" // an earlier step failed
)

// Step is one line of the checklist.
type Step struct {
	Name   string // stable id, e.g. "connection"
	Title  string
	State  string
	Detail string   // what was found
	Fix    string   // what to do, for a failed or unknown step
	Action string   // which fix button to show: "grant", "regenerate", "update-url" or ""
	URL    string   // for "update-url": the repository's new URL
	Items  []string // e.g. the first repository names
}

// Report is the whole checklist.
type Report struct {
	Steps    []Step
	Projects []ProjectReport
}

// ProjectReport is the checklist of one project.
type ProjectReport struct {
	Project tether.Project
	Steps   []Step
}

// Connections is the part of the connections service the checklist uses.
type Connections interface {
	Check(ctx context.Context, userID int64) (tether.Identity, error)
}

// Projects lists the repositories and projects a person sees and what
// their webhooks brought in.
type Projects interface {
	Repositories(ctx context.Context, userID int64, search string, fresh bool) (projects.Listing, error)
	List(ctx context.Context, orgID int64) ([]tether.Project, error)
	Activity(ctx context.Context, p tether.Project) (projects.Activity, error)
	Reload(ctx context.Context, p tether.Project) (tether.Project, error)
	MovedURL(p tether.Project) string
}

// Health runs and reads project checks.
type Health interface {
	CheckNow(ctx context.Context, p tether.Project) error
	Result(ctx context.Context, projectID int64, part string) (tether.Health, error)
}

// Service runs the checklist.
type Service struct {
	log      *slog.Logger
	conns    Connections
	projects Projects
	health   Health
}

// New returns the troubleshooting service.
func New(log *slog.Logger, conns Connections, projects Projects, health Health) *Service {
	return &Service{log: log, conns: conns, projects: projects, health: health}
}

// shown is how many repository names the checklist lists.
const shown = 5

// Run walks the checklist for a person and the projects of the
// organization they look at, asking Bitbucket live.
func (s *Service) Run(ctx context.Context, userID, orgID int64) (Report, error) {
	conn := s.connection(ctx, userID)
	repos := Step{Name: "repositories", Title: "Repositories are visible"}
	if conn.State != OK {
		repos.State, repos.Detail = Skipped, "Checked once Bitbucket is connected."
	} else {
		repos = s.repositories(ctx, userID, repos)
	}
	r := Report{Steps: []Step{conn, repos}}
	list, err := s.projects.List(ctx, orgID)
	if err != nil {
		return Report{}, err
	}
	for _, p := range list {
		r.Projects = append(r.Projects, s.project(ctx, p))
	}
	return r, nil
}

// project checks one project now and turns each part's health into a step.
func (s *Service) project(ctx context.Context, p tether.Project) ProjectReport {
	// As "Check now": a check that started seconds ago answers, so
	// reloading the checklist, or several people opening it, costs one.
	if err := s.health.CheckNow(ctx, p); err != nil {
		s.log.Warn("troubleshooting: project check", "project_id", p.ID, "err", err)
	}
	if fresh, err := s.projects.Reload(ctx, p); err == nil {
		p = fresh
	}
	pr := ProjectReport{Project: p}
	pr.Steps = append(pr.Steps,
		s.repositoryStep(p),
		s.partStep(ctx, p, tether.PartDeployKey, Step{Name: "deploy-key", Title: "Deploy key is valid"}, "the key"),
		s.partStep(ctx, p, tether.PartWebhook, Step{Name: "webhook", Title: "Webhook is healthy"}, "the webhook"),
		s.deliveryStep(ctx, p))
	return pr
}

// repositoryStep reports a move or rename Tether detected, with the fix.
func (s *Service) repositoryStep(p tether.Project) Step {
	st := Step{Name: "repository", Title: "Repository is where Tether expects it"}
	if p.MovedTo == "" {
		st.State, st.Detail = OK, fmt.Sprintf("%s is at the stored URL.", p.FullName)
		return st
	}
	st.State = Failed
	st.Detail = fmt.Sprintf("This repository was moved/renamed to %s on Bitbucket.", p.MovedTo)
	st.Fix, st.Action, st.URL = "Update URL: Tether stores the new place and checks the deploy key and webhook again.", "update-url", s.projects.MovedURL(p)
	return st
}

// partStep turns a part's recorded health into a step.
func (s *Service) partStep(ctx context.Context, p tether.Project, part string, st Step, what string) Step {
	h, err := s.health.Result(ctx, p.ID, part)
	switch {
	case err != nil:
		st.State, st.Detail, st.Fix = Unknown, "Not checked yet.", "Check again in a minute."
	case h.Status == tether.Valid:
		st.State, st.Detail = OK, h.Detail
	case h.Status == tether.Unknown:
		st.State, st.Detail, st.Fix = Unknown, h.Detail, "Nothing is known to be broken; check again in a minute."
	default:
		st.State, st.Detail = Failed, h.Reason+": "+h.Detail
		st.Fix, st.Action = fix(h.Reason, p, what)
	}
	return st
}

// fix says what to do about an invalid part, and which button does it.
func fix(reason string, p tether.Project, what string) (string, string) {
	switch reason {
	case "OAuth permissions revoked":
		return fmt.Sprintf("%s must grant Tether access to Bitbucket again; %s itself may be fine.", p.OwnerName, what), "grant"
	case "owner no longer has access to the repository":
		return fmt.Sprintf("Give %s admin access to %s on Bitbucket again, then check again.", p.OwnerName, p.FullName), ""
	case tether.ReasonScopeMissing:
		return fmt.Sprintf("%s must grant Tether access again, with the permission Bitbucket named.", p.OwnerName), "grant"
	case tether.ReasonSSHRefused:
		return "Do what Bitbucket's reason above asks on Bitbucket (for example add Tether's address to the workspace's IP allowlist), then check again; a new key would be refused the same way.", ""
	default:
		return fmt.Sprintf("Regenerate %s: Tether creates a new one on the repository first, then removes the old one.", what), "regenerate"
	}
}

// deliveryStep says whether pushes reach Tether: when the last delivery
// was accepted, or why the latest ones were refused.
func (s *Service) deliveryStep(ctx context.Context, p tether.Project) Step {
	st := Step{Name: "delivery", Title: "Pushes reach Tether"}
	a, err := s.projects.Activity(ctx, p)
	if err != nil {
		s.log.Error("troubleshooting: deliveries", "project_id", p.ID, "err", err)
		st.State, st.Detail = Unknown, "Could not read the deliveries."
		return st
	}
	var refused *tether.Refusal
	if len(a.Refusals) > 0 && a.Refusals[0].LastSeen.After(a.LastAccepted) {
		refused = &a.Refusals[0]
	}
	switch {
	case refused != nil:
		st.State = Failed
		st.Detail = fmt.Sprintf("The latest delivery (%s) was refused: %s.", refused.LastSeen.UTC().Format("2 Jan 15:04 UTC"), refused.Reason)
		st.Fix, st.Action = "Regenerate the webhook so Bitbucket signs deliveries with a secret Tether knows.", "regenerate-webhook"
	case a.LastAccepted.IsZero():
		st.State = Unknown
		st.Detail = "No delivery received yet."
		st.Fix = "Push a commit to the repository; a workflow should appear on the project page within seconds."
	default:
		st.State = OK
		st.Detail = fmt.Sprintf("The last delivery was accepted at %s.", a.LastAccepted.UTC().Format("2 Jan 2006 15:04 UTC"))
	}
	return st
}

func (s *Service) connection(ctx context.Context, userID int64) Step {
	st := Step{Name: "connection", Title: "Bitbucket is connected"}
	ident, err := s.conns.Check(ctx, userID)
	switch {
	case errors.Is(err, tether.ErrNotFound):
		st.State, st.Detail = Failed, "Your Tether account is not connected to Bitbucket."
		st.Fix, st.Action = "Grant access so Tether can read your repositories, add deploy keys and create webhooks.", "grant"
	case err != nil:
		s.log.Error("troubleshooting: connection check", "user_id", userID, "err", err)
		st.State, st.Detail, st.Fix = Unknown, "Could not check the connection.", "Try again in a minute."
	case ident.Status != tether.Connected:
		st.State = Failed
		st.Detail = fmt.Sprintf("Not connected: %s.", ident.StatusReason)
		st.Fix, st.Action = "Grant access again. Until then Tether cannot reach your repositories, and projects set up through this connection cannot be checked or repaired.", "grant"
	case ident.CheckError != "":
		st.State, st.Detail = Unknown, fmt.Sprintf("Connected as @%s, but %s.", ident.Username, ident.CheckError)
		st.Fix = "Bitbucket did not answer just now. Nothing is wrong on your side yet; check again in a minute."
	default:
		st.State, st.Detail = OK, fmt.Sprintf("Connected as @%s; the grant was verified just now.", ident.Username)
		if g := connections.Describe(ident.Scopes); len(g.Missing) > 0 {
			st.State = Failed
			st.Detail = fmt.Sprintf("Connected as @%s, but the grant lacks %s: %s.", ident.Username, g.Missing[0].Scope, g.Missing[0].Breaks)
			st.Fix, st.Action = "The OAuth consumer must include the missing permissions; then grant access again.", "grant"
		}
	}
	return st
}

func (s *Service) repositories(ctx context.Context, userID int64, st Step) Step {
	// The picker's listing answers when it is seconds old: "Check again"
	// pressed again and again lists every workspace once.
	list, err := s.projects.Repositories(ctx, userID, "", true)
	repos := list.Choices
	switch {
	case errors.Is(err, connections.ErrNotConnected):
		st.State, st.Detail = Failed, "Bitbucket refused the connection while listing repositories."
		st.Fix, st.Action = "Grant access again.", "grant"
	case bitbucket.IsForbidden(err):
		st.State, st.Detail = Failed, "Bitbucket refused to list repositories: the grant lacks the repository permission."
		st.Fix, st.Action = "Grant access with repository permissions.", "grant"
	case bitbucket.IsTransient(err):
		st.State, st.Detail, st.Fix = Unknown, "Could not reach Bitbucket to list repositories.", "Bitbucket did not answer just now; check again in a minute."
	case err != nil:
		s.log.Error("troubleshooting: list repositories", "user_id", userID, "err", err)
		st.State, st.Detail, st.Fix = Unknown, "Bitbucket answered in a way Tether did not expect.", "Check again in a minute."
	case len(repos) == 0 && len(list.Unread) > 0:
		st.State, st.Detail = Failed, "Tether could not read "+unreadList(list.Unread)+"."
		st.Fix = "Each workspace's answer is Bitbucket's; fix what it names on Bitbucket (its access controls, your membership), then check again."
		if !slices.ContainsFunc(list.Unread, func(u projects.Unread) bool { return !u.Transient }) {
			st.State, st.Fix = Unknown, "Bitbucket did not answer just now; check again in a minute."
		}
		if slices.ContainsFunc(list.Unread, func(u projects.Unread) bool { return u.Grant }) {
			st.Fix, st.Action = "Grant access again, with the permission Bitbucket named.", "grant"
		}
	case len(repos) == 0:
		st.State = Failed
		st.Detail = "Tether sees no repositories in any workspace you belong to."
		st.Fix = "Check on Bitbucket that you are a member of the workspace that holds your repositories, or that you were given access to them."
	default:
		st.State = OK
		st.Detail = fmt.Sprintf("%d %s across your workspaces.", len(repos), plural(len(repos), "repository", "repositories"))
		for i, r := range repos {
			if i == shown {
				break
			}
			st.Items = append(st.Items, r.FullName)
		}
		if len(list.Unread) > 0 {
			st.Detail += " Tether could not read " + unreadList(list.Unread) + "."
			st.Fix = "The other workspaces are listed; fix what Bitbucket names for the ones it refused, then check again."
		}
	}
	return st
}

// unreadList names the workspaces not read and why, in one sentence.
func unreadList(unread []projects.Unread) string {
	parts := make([]string, len(unread))
	for i, u := range unread {
		parts[i] = "the workspace " + u.Workspace + " (" + u.Reason + ")"
	}
	return strings.Join(parts, "; ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
