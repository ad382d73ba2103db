package handlers

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"tether/internal/pages"
	"tether/internal/problem"
	"tether/internal/projects"
	"tether/internal/tether"
	"tether/internal/webhooks"
	"tether/views"
)

// Projects manages projects: the picker, Create and Delete, and reading
// one project for the route.
type Projects interface {
	Get(ctx context.Context, userID, projectID int64) (tether.Project, string, error)
	Repositories(ctx context.Context, userID int64, search string, fresh bool) (projects.Listing, error)
	Create(ctx context.Context, orgID, userID int64, fullName string) (tether.Project, error)
	Activity(ctx context.Context, p tether.Project) (projects.Activity, error)
	MovedURL(p tether.Project) string
	Delete(ctx context.Context, actorID int64, p tether.Project) (string, error)
}

// Receiver takes webhook deliveries.
type Receiver interface {
	Receive(ctx context.Context, token string, h http.Header, body io.Reader) webhooks.Answer
}

// part describes one health row of the project page; dbPart names it to
// internal/pages (its Regenerate calls projects.RegenerateKey or
// projects.RegenerateWebhook). What its Regenerate asks first is
// views.RegenerateQuestion(slug).
type part struct {
	slug, title, dbPart string
	done                string // what a successful Regenerate says
}

var (
	deployKeyPart = part{
		slug: "deploy-key", title: "Deploy Key", dbPart: tether.PartDeployKey,
		done: "A new deploy key is in force; the old one was removed from Bitbucket.",
	}
	webhookPart = part{
		slug: "webhook", title: "Webhook", dbPart: tether.PartWebhook,
		done: "A new webhook is in force; the old one was removed from Bitbucket.",
	}
	parts = []part{deployKeyPart, webhookPart}
)

// projectList is the Projects page: pages.Projects.
func (h *Handlers) projectList(c echo.Context) error {
	list, err := h.pages.Projects(c.Request().Context(), viewer(c).Org.ID)
	if err != nil {
		return err
	}
	rows := make([]views.ProjectRow, 0, len(list))
	for _, r := range list {
		rows = append(rows, views.ProjectRow{Project: r.Project, Key: r.Key, Webhook: r.Webhook})
	}
	return render(c, http.StatusOK, views.ProjectsPage(h.page(c, "Projects", "projects"), rows), nil)
}

func (h *Handlers) newProject(c echo.Context) error {
	search := c.QueryParam("q")
	// Refresh list, pressed without JavaScript, reloads the page with fresh.
	list, err := h.projects.Repositories(c.Request().Context(), currentUser(c).ID, search, c.QueryParam("fresh") != "")
	listErr := ""
	if err != nil {
		if !isProblem(err) {
			return err
		}
		_, listErr = statusOf(err)
	}
	return render(c, http.StatusOK, views.NewProjectPage(h.page(c, "New project", "projects"), search, list, listErr), nil)
}

// isProblem reports whether err is a problem meant for people; other
// errors go to the error handler.
func isProblem(err error) bool {
	_, ok := problem.As(err)
	return ok
}

// repositoryChoices is the picker's search, swapped in place.
func (h *Handlers) repositoryChoices(c echo.Context) error {
	page := "/projects/new?" + url.Values{"q": {c.QueryParam("q")}}.Encode()
	if !wantsFragment(c.Request()) {
		return h.renderPart(c, http.StatusOK, nil, page, views.Notice{}) // before asking Bitbucket
	}
	list, err := h.projects.Repositories(c.Request().Context(), currentUser(c).ID, c.QueryParam("q"), c.QueryParam("fresh") != "")
	if err != nil {
		if !isProblem(err) {
			return err
		}
		status, msg := statusOf(err)
		return h.renderPart(c, status, views.RepositoryChoices(c.QueryParam("q"), projects.Listing{}, msg), page, views.Notice{})
	}
	return h.renderPart(c, http.StatusOK, views.RepositoryChoices(c.QueryParam("q"), list, ""), page, views.Notice{})
}

func (h *Handlers) createProject(c echo.Context) error {
	p, err := h.projects.Create(c.Request().Context(), viewer(c).Org.ID, currentUser(c).ID, c.FormValue("repository"))
	if pr, ok := problem.As(err); ok && !isHTMX(c.Request()) {
		// Posted without JavaScript: back to the picker, where the person
		// pressed Create, with what went wrong (htmx shows it in place).
		h.setFlash(c, views.Notice{Kind: "error", Message: pr.Message})
		return c.Redirect(http.StatusSeeOther, "/projects/new")
	}
	if err != nil {
		return err
	}
	return redirect(c, http.StatusCreated, "/projects/"+strconv.FormatInt(p.ID, 10), landing)
}

const (
	projectKey = "project"
	roleKey    = "project_role"
)

// loadProject puts the project in the URL, and the person's role in its
// organization, in the context. Anyone outside the organization gets a
// plain 404 that says nothing about the project, on every project route.
func (h *Handlers) loadProject(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil {
			return projects.ErrNoProject
		}
		p, role, err := h.projects.Get(c.Request().Context(), currentUser(c).ID, id)
		if err != nil {
			return err
		}
		c.Set(projectKey, p)
		c.Set(roleKey, role)
		return next(c)
	}
}

// requireProjectAdmin lets only admins of the project's organization on.
func (h *Handlers) requireProjectAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Get(roleKey) != tether.RoleAdmin {
			return problem.New(problem.Forbidden, "Only admins of this project's organization can do this.")
		}
		return next(c)
	}
}

// project is the project loadProject found.
func (h *Handlers) project(c echo.Context) (tether.Project, error) {
	p, ok := c.Get(projectKey).(tether.Project)
	if !ok {
		return tether.Project{}, projects.ErrNoProject
	}
	return p, nil
}

func projectAdmin(c echo.Context) bool { return c.Get(roleKey) == tether.RoleAdmin }

func (h *Handlers) projectPage(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	v, err := h.projectView(c, p)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ProjectPage(h.page(c, p.Name, "projects"), v), nil)
}

// projectView reads everything the project page shows, from the store
// (pages.Project).
func (h *Handlers) projectView(c echo.Context, p tether.Project) (views.ProjectView, error) {
	pg, err := h.pages.Project(c.Request().Context(), p, pageViewer(c))
	if err != nil {
		return views.ProjectView{}, err
	}
	v := views.ProjectView{Project: p, Admin: projectAdmin(c), Repository: h.repoViewOf(c, p, pg.MovedURL),
		Backing: backingViewOf(c, p, pg.Backing), Missed: missedViewOf(c, p, pg.Missed), Activity: activityOf(p, pg.Activity),
		Parts: partViewsOf(c, p, pg.Parts)}
	return v, nil
}

// pageViewer is the person looking, as internal/pages needs them.
func pageViewer(c echo.Context) pages.Viewer {
	return pages.Viewer{UserID: currentUser(c).ID, Admin: projectAdmin(c)}
}

// partViewsOf shows the rows of a project's page in the page's order.
func partViewsOf(c echo.Context, p tether.Project, rows []pages.Part) []views.Part {
	var out []views.Part
	for _, pt := range parts {
		for _, row := range rows {
			if row.Name == pt.dbPart {
				out = append(out, partViewOf(c, p, pt, row))
			}
		}
	}
	return out
}

func backingViewOf(c echo.Context, p tether.Project, b projects.Backing) views.BackingView {
	return views.BackingView{
		ProjectID: p.ID, OwnerName: b.OwnerName, Username: b.Username, Warnings: b.Warnings,
		CanRehome: b.CanRehome, Grant: b.Grant,
	}
}

func (h *Handlers) activity(c echo.Context, p tether.Project) (views.Activity, error) {
	a, err := h.projects.Activity(c.Request().Context(), p)
	return activityOf(p, a), err
}

func activityOf(p tether.Project, a projects.Activity) views.Activity {
	return views.Activity{ProjectID: p.ID, Workflows: a.Workflows, Deliveries: a.Deliveries, LastAccepted: a.LastAccepted, Refusals: a.Refusals}
}

// partViewOf shows a row as the person looking may act on it.
func partViewOf(c echo.Context, p tether.Project, pt part, row pages.Part) views.Part {
	v := views.Part{ProjectID: p.ID, Slug: pt.slug, Title: pt.title, Badge: row.Badge, Admin: projectAdmin(c),
		Owner: currentUser(c).ID == p.OwnerID}
	switch pt.dbPart {
	case tether.PartDeployKey:
		if k := row.Key; k.PublicKey != "" {
			v.Facts = []views.Fact{
				{Label: "Fingerprint", Value: k.Fingerprint, TestID: "fingerprint", Code: true},
				{Label: "Public key", Value: k.PublicKey, TestID: "public-key", Code: true},
			}
		}
	case tether.PartWebhook:
		v.Facts = []views.Fact{{Label: "URL", Value: row.HookURL, TestID: "hook-url", Code: true}}
		if w := row.Hook; w.UUID != "" {
			v.Facts = append(v.Facts, views.Fact{Label: "Hook", Value: "{" + w.UUID + "}", TestID: "hook-uuid", Code: true},
				views.Fact{Label: "Events", Value: strings.Join(w.Events, ", "), TestID: "hook-events"})
		}
	}
	return v
}

// renderHealthRow answers with a Deploy Key or Webhook row (renderPart).
func (h *Handlers) renderHealthRow(c echo.Context, status int, p tether.Project, v views.Part) error {
	return h.renderPart(c, status, views.HealthRow(v), views.ProjectURL(p.ID), views.Notice{Kind: v.MessageKind, Message: v.Message})
}

// healthRow is a row's poll (pages.Part): stored state only. It marks the
// project watched, so the background schedule looks at it first and more
// often; it never waits for Bitbucket.
func (h *Handlers) healthRow(pt part) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := h.project(c)
		if err != nil {
			return err
		}
		row, err := h.pages.Part(c.Request().Context(), p, pt.dbPart, true)
		if err != nil {
			return err
		}
		return h.renderHealthRow(c, http.StatusOK, p, partViewOf(c, p, pt, row))
	}
}

// checkPart is "Check now" (pages.CheckNow): it waits for Bitbucket.
// Presses in quick succession, by anyone, share one check.
func (h *Handlers) checkPart(pt part) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := h.project(c)
		if err != nil {
			return err
		}
		row, err := h.pages.CheckNow(c.Request().Context(), p, pt.dbPart)
		if err != nil {
			return err
		}
		// In place the row shows what the check found; on the page a
		// plain post lands on, the notice says it.
		return h.renderPart(c, http.StatusOK, views.HealthRow(partViewOf(c, p, pt, row)), views.ProjectURL(p.ID),
			views.CheckedNotice(pt.title, row.Badge))
	}
}

// regeneratePart is Regenerate (pages.Regenerate: projects.RegenerateKey
// or projects.RegenerateWebhook): it replaces the key or hook and shows
// the outcome in place.
func (h *Handlers) regeneratePart(pt part) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := h.project(c)
		if err != nil {
			return err
		}
		row, res, rerr := h.pages.Regenerate(c.Request().Context(), currentUser(c).ID, p, pt.dbPart)
		v := partViewOf(c, p, pt, row)
		status, err := outcome(rerr, res.Warning, pt.done, &v.Message, &v.MessageKind)
		if err != nil {
			return err
		}
		if c.FormValue("from") == "checklist" {
			// Pressed on the troubleshooting checklist without
			// JavaScript, it comes back there with the outcome.
			return h.renderPart(c, status, views.HealthRow(v), "/troubleshooting", views.Notice{Kind: v.MessageKind, Message: v.Message})
		}
		return h.renderHealthRow(c, status, p, v)
	}
}

// projectActivity is the workflows and deliveries poll.
func (h *Handlers) projectActivity(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	a, err := h.activity(c, p)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.ActivitySection(a), views.ProjectURL(p.ID), views.Notice{})
}

// receiveWebhook answers Bitbucket's deliveries: plain text, a status that
// tells Bitbucket whether to retry.
func (h *Handlers) receiveWebhook(c echo.Context) error {
	a := h.receiver.Receive(c.Request().Context(), c.Param("token"), c.Request().Header, c.Request().Body)
	h.metrics.Delivery(a.Status)
	return c.String(a.Status, a.Message)
}

func (h *Handlers) repoView(c echo.Context, p tether.Project) views.RepoView {
	return h.repoViewOf(c, p, h.projects.MovedURL(p))
}

func (h *Handlers) repoViewOf(c echo.Context, p tether.Project, movedURL string) views.RepoView {
	return views.RepoView{Project: p, MovedURL: movedURL, Admin: projectAdmin(c)}
}

// repositorySection renders the Repository section alone (Cancel).
func (h *Handlers) repositorySection(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.RepositorySection(h.repoView(c, p)), views.ProjectURL(p.ID), views.Notice{})
}

// changeRepository is Change (and Update URL) (pages.ChangeRepository:
// projects.ChangeRepository): it resolves the URL on Bitbucket and shows
// the outcome, and the fresh health rows, in place.
func (h *Handlers) changeRepository(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	typed := c.FormValue("url")
	ch, cerr := h.pages.ChangeRepository(c.Request().Context(), currentUser(c).ID, p, typed, c.FormValue("confirm"))
	p, res := ch.Project, ch.ChangeResult
	if c.FormValue("from") == "checklist" {
		return h.checklistOutcome(c, p, res, cerr)
	}
	v := h.repoViewOf(c, p, ch.MovedURL)
	v.URL = typed
	status := http.StatusOK
	switch {
	case cerr != nil:
		pr, ok := problem.As(cerr)
		if !ok {
			return cerr
		}
		status, _ = statusOf(cerr)
		if pr.Field == "url" {
			v.Error = pr.Message
		} else {
			v.Notice, v.NoticeKind = pr.Message, "error"
		}
	case res.Confirm != nil:
		v.Confirm = res.Confirm
	default:
		v = h.repoViewOf(c, p, ch.MovedURL)
		v.Renamed = true
		v.Notice, v.NoticeKind = "The project now uses "+p.FullName+" and is named after it. Deploy key and webhook were checked again.", "ok"
		if res.Warning != "" {
			v.Notice, v.NoticeKind = res.Warning, "warning"
		}
		v.Refreshed = partViewsOf(c, p, ch.Parts)
	}
	if v.Confirm != nil && !wantsFragment(c.Request()) {
		// Posted without JavaScript, the question must be on the page
		// that answers (a redirect would lose it): the project page with
		// the section asking, whose Use … posts and Cancel is a link.
		pv, err := h.projectView(c, p)
		if err != nil {
			return err
		}
		pv.Repository = v
		return render(c, http.StatusOK, views.ProjectPage(h.page(c, p.Name, "projects"), pv), nil)
	}
	said := views.Notice{Kind: v.NoticeKind, Message: v.Notice}
	if v.Error != "" {
		said = views.Notice{Kind: "error", Message: v.Error}
	}
	return h.renderPart(c, status, views.RepositorySection(v), views.ProjectURL(p.ID), said)
}

// checklistOutcome is Update URL's answer on the troubleshooting page: a
// line in place of the step, where the person pressed it.
func (h *Handlers) checklistOutcome(c echo.Context, p tether.Project, res projects.ChangeResult, cerr error) error {
	n := views.Notice{Kind: "ok", Message: "The project now uses " + p.FullName + " and is named after it. Press Check again to walk the checklist with it."}
	status := http.StatusOK
	switch {
	case cerr != nil:
		if !isProblem(cerr) {
			return cerr
		}
		status, n.Message = statusOf(cerr)
		n.Kind = "error"
	case res.Confirm != nil:
		n = views.Notice{Kind: "warning", Message: "That URL names another repository; use Change on the project page to switch to it."}
	case res.Warning != "":
		n = views.Notice{Kind: "warning", Message: res.Warning}
	}
	return h.renderPart(c, status, views.NoticeLine(n, "repository-notice"), "/troubleshooting", n)
}

// movedBanner is the poll of the moved/renamed banner: stored state only.
func (h *Handlers) movedBanner(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.MovedBanner(h.repoView(c, p)), views.ProjectURL(p.ID), views.Notice{})
}

// rehome is Re-home to me (pages.Rehome: projects.Rehome): the acting
// admin's connection backs the project from now on; the outcome and
// fresh badges show in place.
func (h *Handlers) rehome(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	rh, rerr := h.pages.Rehome(c.Request().Context(), p, pageViewer(c))
	p = rh.Project
	b := backingViewOf(c, p, rh.Backing)
	status, err := outcome(rerr, rh.Warning, "Re-homed: the new deploy key and webhook act with your Bitbucket connection.", &b.Message, &b.MessageKind)
	if err != nil {
		return err
	}
	b.Refreshed = partViewsOf(c, p, rh.Parts)
	return h.renderPart(c, status, views.BackingSection(b), views.ProjectURL(p.ID), views.Notice{Kind: b.MessageKind, Message: b.Message})
}

// deleteProject removes the project and goes back to the list.
func (h *Handlers) deleteProject(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	warning, err := h.projects.Delete(c.Request().Context(), currentUser(c).ID, p)
	if err != nil {
		return err
	}
	done := views.Notice{Kind: "ok", Message: "The project " + p.Name + " was deleted; its deploy key and webhook were removed from " + p.FullName + "."}
	if warning != "" {
		// Said where they pressed Delete: what is left on Bitbucket. It
		// takes the whole page, so nothing of the project polls on.
		h.log.Warn("project deleted with leftovers on Bitbucket", "project_id", p.ID, "warning", warning)
		c.Response().Header().Set("HX-Retarget", "#main")
		c.Response().Header().Set("HX-Reswap", "innerHTML")
		return h.renderPart(c, http.StatusOK, views.ProjectDeleted(p.Name, warning), landing, views.Notice{Kind: "warning", Message: warning})
	}
	h.setFlash(c, done)
	return redirect(c, http.StatusOK, landing, landing)
}

// outcome turns the result of an action into the message shown in place:
// the problem's message (with its status), the warning, or done. Errors
// not meant for people are returned for the error handler.
func outcome(actErr error, warning, done string, message, kind *string) (int, error) {
	switch {
	case actErr != nil:
		if !isProblem(actErr) {
			return 0, actErr
		}
		status, msg := statusOf(actErr)
		*message, *kind = msg, "error"
		return status, nil
	case warning != "":
		*message, *kind = warning, "warning"
	default:
		*message, *kind = done, "ok"
	}
	return http.StatusOK, nil
}
