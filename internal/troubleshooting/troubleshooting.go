// Package troubleshooting walks the checklist a person follows when "my
// repositories aren't showing" or "my pushes stopped starting workflows":
// is Bitbucket connected, are repositories visible, and (per project) is
// the deploy key valid, is the webhook healthy, when did the last delivery
// arrive. Each failed step says what it means and what to do; one cause
// gets one fix, in order: a step that depends on a failed earlier one
// says it waits on it instead of repeating the cause.
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
	Waiting = "waiting" // an earlier step must be fixed first
)

// Step is one line of the checklist.
type Step struct {
	Name    string // stable id, e.g. "connection"
	Title   string
	State   string
	Detail  string   // what was found
	Fix     string   // what to do, for a failed or unknown step
	Action  string   // which fix button to show: "grant", "regenerate", "regenerate-webhook", "update-url" or ""
	URL     string   // for "update-url": the repository's new URL
	Items   []string // e.g. the first repository names
	WaitsOn string   // for a waiting step: the earlier step, e.g. "Bitbucket connection"
}

// Names of the steps other steps wait on, as the page says them.
const (
	connectionLabel = "Bitbucket connection"
	webhookLabel    = "Webhook"
)

// wait makes st a step that waits on an earlier one; what was found so
// far, if anything, stays in its detail.
func wait(st Step, on string) Step {
	st.State, st.WaitsOn, st.Fix, st.Action, st.URL, st.Items = Waiting, on, "", "", "", nil
	return st
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

// Viewer is who walks the checklist: the person, the organization whose
// projects they look at, and whether they administer it (only admins get
// Regenerate and Update URL buttons).
type Viewer struct {
	UserID, OrgID int64
	Admin         bool
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

// Budget is each connection's API budget meter (bitbucket.Budget): until
// when a 429 pauses it.
type Budget interface {
	Usage(conn int64) bitbucket.Usage
}

// Service runs the checklist.
type Service struct {
	log      *slog.Logger
	conns    Connections
	projects Projects
	health   Health
	budget   Budget
}

// New returns the troubleshooting service.
func New(log *slog.Logger, conns Connections, projects Projects, health Health, budget Budget) *Service {
	return &Service{log: log, conns: conns, projects: projects, health: health, budget: budget}
}

// waitFix is what to do while Bitbucket cannot answer: wait out a 429's
// pause (until when, as every page says it), or check again soon.
func (s *Service) waitFix(userID int64, err error) string {
	until, limited := bitbucket.RateLimited(err)
	if !limited || until.IsZero() {
		until = s.budget.Usage(userID).PausedUntil
	}
	if !until.IsZero() {
		return "Bitbucket is rate limiting the connection this step uses; check again after " + bitbucket.WaitEnd(until) + "."
	}
	return "Bitbucket did not answer just now; check again in a minute."
}

// shown is how many repository names the checklist lists.
const shown = 5

// Run walks the checklist for a person and the projects of the
// organization they look at, asking Bitbucket live. Projects backed by the
// person's own connection are not checked while that connection fails:
// their steps wait on it, and no API call is spent on them.
func (s *Service) Run(ctx context.Context, v Viewer) (Report, error) {
	conn := s.connection(ctx, v.UserID)
	repos := Step{Name: "repositories", Title: "Repositories are visible"}
	if conn.State != OK {
		repos = wait(repos, connectionLabel)
	} else {
		repos = s.repositories(ctx, v.UserID, repos)
	}
	r := Report{Steps: []Step{conn, repos}}
	list, err := s.projects.List(ctx, v.OrgID)
	if err != nil {
		return Report{}, err
	}
	for _, p := range list {
		r.Projects = append(r.Projects, s.project(ctx, v, conn, p))
	}
	return r, nil
}

// project checks one project now and turns what was found into steps,
// the first cause first: the backing connection, the owner's access, the
// repository's place, then the deploy key, the webhook and deliveries.
func (s *Service) project(ctx context.Context, v Viewer, conn Step, p tether.Project) ProjectReport {
	pr := ProjectReport{Project: p}
	place := Step{Name: "repository", Title: "Repository is where Tether expects it"}
	key := Step{Name: "deploy-key", Title: "Deploy key is valid"}
	hook := Step{Name: "webhook", Title: "Webhook is healthy"}
	if p.OwnerID == v.UserID && conn.State != OK {
		pr.Steps = []Step{wait(place, connectionLabel), wait(key, connectionLabel), wait(hook, connectionLabel),
			s.deliveryStep(ctx, p, v, wait(hook, connectionLabel))}
		return pr
	}
	// As "Check now": a check that started seconds ago answers, so
	// reloading the checklist, or several people opening it, costs one.
	if err := s.health.CheckNow(ctx, p); err != nil {
		s.log.Warn("troubleshooting: project check", "project_id", p.ID, "err", err)
	}
	if fresh, err := s.projects.Reload(ctx, p); err == nil {
		p = fresh
		pr.Project = p
	}
	kh, kerr := s.health.Result(ctx, p.ID, tether.PartDeployKey)
	hh, herr := s.health.Result(ctx, p.ID, tether.PartWebhook)
	// What both parts depend on — the owner's connection and their access
	// to the repository — failed: one step says so, the rest wait on it.
	if kerr == nil && herr == nil && kh.Reason == hh.Reason && shared(kh.Reason) {
		cause := s.sharedStep(p, v, kh)
		pr.Steps = []Step{cause, wait(place, cause.Title), wait(key, cause.Title), wait(hook, cause.Title),
			s.deliveryStep(ctx, p, v, wait(hook, cause.Title))}
		return pr
	}
	place = s.repositoryStep(p, v, place, kh, hh, kerr == nil && herr == nil)
	key = partStep(p, v, key, kh, kerr, "the key", s.waitFix(p.OwnerID, nil))
	hook = partStep(p, v, hook, hh, herr, "the webhook", s.waitFix(p.OwnerID, nil))
	pr.Steps = []Step{place, key, hook, s.deliveryStep(ctx, p, v, hook)}
	return pr
}

// shared reports whether a reason comes from what both parts depend on.
func shared(reason string) bool {
	return reason == tether.ReasonOAuthRevoked || reason == tether.ReasonOwnerNoAccess
}

// sharedStep is the one step for a failure both parts share: the backing
// person's connection, or their access to the repository.
func (s *Service) sharedStep(p tether.Project, v Viewer, h tether.Health) Step {
	owner := p.OwnerName
	if p.OwnerID == v.UserID {
		owner = "your"
	} else {
		owner += "'s"
	}
	var st Step
	switch h.Reason {
	case tether.ReasonOAuthRevoked:
		st = Step{Name: "backing", Title: upperFirst(owner) + " Bitbucket connection", State: Failed,
			Detail: "The deploy key and webhook act with " + owner + " Bitbucket connection, and it is Not Connected, so Tether cannot check or repair them."}
		switch {
		case p.OwnerID == v.UserID:
			st.Fix, st.Action = "Grant access again.", "grant"
		case v.Admin:
			st.Fix = p.OwnerName + " must grant access again on their account page, or you can press Re-home to me on the project page so your connection backs it."
		default:
			st.Fix = p.OwnerName + " must grant access again on their account page, or an admin can re-home the project."
		}
	default:
		st = Step{Name: "access", Title: upperFirst(owner) + " access to the repository", State: Failed, Detail: h.Detail}
		st.Fix = fmt.Sprintf("Give %s admin access to %s on Bitbucket again, then check again.", p.OwnerName, p.FullName)
		if v.Admin && p.OwnerID != v.UserID {
			st.Fix += " Or press Re-home to me on the project page, if you administer the repository."
		}
	}
	return st
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// repositoryStep reports a move or rename Tether detected, with the fix;
// it is OK only when the last check found the repository (checked).
func (s *Service) repositoryStep(p tether.Project, v Viewer, st Step, key, hook tether.Health, checked bool) Step {
	if !checked || key.Status == tether.Unknown && hook.Status == tether.Unknown {
		st.State, st.Detail, st.Fix = Unknown, "Tether could not look the repository up on Bitbucket just now.", s.waitFix(p.OwnerID, nil)
		if checked && key.Detail != "" {
			st.Detail = key.Detail
		}
		return st
	}
	if p.MovedTo == "" {
		st.State, st.Detail = OK, fmt.Sprintf("%s is at the stored URL.", p.FullName)
		return st
	}
	st.State = Failed
	st.Detail = fmt.Sprintf("This repository was moved/renamed to %s on Bitbucket.", p.MovedTo)
	if v.Admin {
		st.Fix, st.Action, st.URL = "Update URL: Tether stores the new place and checks the deploy key and webhook again.", "update-url", s.projects.MovedURL(p)
	} else {
		st.Fix = "An admin of the organization can press Update URL on the project page."
	}
	return st
}

// partStep turns a part's recorded health into a step; wait is what to
// do while Bitbucket cannot answer (waitFix).
func partStep(p tether.Project, v Viewer, st Step, h tether.Health, err error, what, wait string) Step {
	switch {
	case err != nil:
		st.State, st.Detail, st.Fix = Unknown, "Not checked yet.", "Check again in a minute."
	case h.Status == tether.Valid:
		st.State, st.Detail = OK, h.Detail
	case h.Status == tether.Unknown:
		st.State, st.Detail, st.Fix = Unknown, h.Detail, "Nothing is known to be broken. "+wait
	default:
		st.State, st.Detail = Failed, h.Reason+": "+h.Detail
		st.Fix, st.Action = fix(h.Reason, p, what)
		if st.Action != "" && !v.Admin {
			st.Fix, st.Action = "An admin of the organization can press Regenerate on the project page.", ""
		}
	}
	return st
}

// fix says what to do about an invalid part, and which button does it.
func fix(reason string, p tether.Project, what string) (string, string) {
	switch reason {
	case tether.ReasonOAuthRevoked:
		return fmt.Sprintf("%s must grant Tether access to Bitbucket again; %s itself may be fine.", p.OwnerName, what), ""
	case tether.ReasonOwnerNoAccess:
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
// was accepted, or why the latest ones were refused. A refusal whose fix is
// the webhook's waits on the webhook step when that one is not OK.
func (s *Service) deliveryStep(ctx context.Context, p tether.Project, v Viewer, hook Step) Step {
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
		switch {
		case hook.State == Waiting:
			return wait(st, hook.WaitsOn)
		case hook.State != OK:
			return wait(st, webhookLabel)
		case v.Admin:
			st.Fix, st.Action = "Regenerate the webhook so Bitbucket signs deliveries with a secret Tether knows.", "regenerate-webhook"
		default:
			st.Fix = "An admin of the organization can press Regenerate on the webhook."
		}
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
		st.Fix = "Nothing is wrong on your side yet. " + s.waitFix(userID, nil)
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
		st.State, st.Detail, st.Fix = Unknown, "Could not reach Bitbucket to list repositories.", s.waitFix(userID, err)
	case err != nil:
		s.log.Error("troubleshooting: list repositories", "user_id", userID, "err", err)
		st.State, st.Detail, st.Fix = Unknown, "Bitbucket answered in a way Tether did not expect.", "Check again in a minute."
	case len(repos) == 0 && len(list.Unread) > 0:
		st.State, st.Detail = Failed, "Tether could not read "+unreadList(list.Unread)+"."
		st.Fix = "Each workspace's answer is Bitbucket's; fix what it names on Bitbucket (its access controls, your membership), then check again."
		if !slices.ContainsFunc(list.Unread, func(u projects.Unread) bool { return !u.Transient }) {
			st.State, st.Fix = Unknown, s.waitFix(userID, nil)
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
