package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"tether/db"
	"tether/health"
	"tether/problem"
	"tether/projects"
	"tether/views"
)

// Projects manages projects and their deploy keys.
type Projects interface {
	List(ctx context.Context, userID int64) ([]db.Project, error)
	Get(ctx context.Context, userID, projectID int64) (db.Project, error)
	Repositories(ctx context.Context, userID int64, search string, fresh bool) ([]projects.Choice, error)
	Create(ctx context.Context, userID int64, fullName string) (db.Project, error)
	Key(ctx context.Context, p db.Project) (db.DeployKey, error)
	RegenerateKey(ctx context.Context, p db.Project) (projects.RegenerateResult, error)
}

// Health reads and runs project health checks.
type Health interface {
	Badge(ctx context.Context, p db.Project, part string, kick bool) (health.Badge, error)
	Check(ctx context.Context, p db.Project) error
}

func (h *Handlers) projectList(c echo.Context) error {
	ctx := c.Request().Context()
	list, err := h.projects.List(ctx, currentUser(c).ID)
	if err != nil {
		return err
	}
	rows := make([]views.ProjectRow, 0, len(list))
	for _, p := range list {
		b, err := h.health.Badge(ctx, p, db.PartDeployKey, false)
		if err != nil {
			return err
		}
		rows = append(rows, views.ProjectRow{Project: p, Key: b})
	}
	return render(c, http.StatusOK, views.ProjectsPage(h.page(c, "Projects", "projects"), rows), nil)
}

func (h *Handlers) newProject(c echo.Context) error {
	search := c.QueryParam("q")
	choices, err := h.projects.Repositories(c.Request().Context(), currentUser(c).ID, search, false)
	listErr := ""
	if err != nil {
		if !isProblem(err) {
			return err
		}
		_, listErr = statusOf(err)
	}
	return render(c, http.StatusOK, views.NewProjectPage(h.page(c, "New project", "projects"), search, choices, listErr), nil)
}

// isProblem reports whether err is a problem meant for people; other
// errors go to the error handler.
func isProblem(err error) bool {
	_, ok := problem.As(err)
	return ok
}

// repositoryChoices is the picker's search, swapped in place.
func (h *Handlers) repositoryChoices(c echo.Context) error {
	choices, err := h.projects.Repositories(c.Request().Context(), currentUser(c).ID, c.QueryParam("q"), c.QueryParam("fresh") != "")
	if err != nil {
		status, msg := statusOf(err)
		if !isProblem(err) {
			return err
		}
		return renderComponent(c, status, views.RepositoryChoices(csrfToken(c), nil, msg))
	}
	return renderComponent(c, http.StatusOK, views.RepositoryChoices(csrfToken(c), choices, ""))
}

func (h *Handlers) createProject(c echo.Context) error {
	p, err := h.projects.Create(c.Request().Context(), currentUser(c).ID, c.FormValue("repository"))
	if err != nil {
		return err
	}
	to := "/projects/" + strconv.FormatInt(p.ID, 10)
	if isHTMX(c.Request()) {
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(http.StatusCreated)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// project loads the project in the URL for the signed-in person; anyone
// else gets a plain 404.
func (h *Handlers) project(c echo.Context) (db.Project, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return db.Project{}, problem.New(problem.NotFound, "There is no such project.")
	}
	return h.projects.Get(c.Request().Context(), currentUser(c).ID, id)
}

func (h *Handlers) projectPage(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	key, err := h.keyView(c, p, true)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ProjectPage(h.page(c, p.Name, "projects"), views.ProjectView{Project: p, Key: key}), nil)
}

func (h *Handlers) keyView(c echo.Context, p db.Project, kick bool) (views.KeyView, error) {
	ctx := c.Request().Context()
	b, err := h.health.Badge(ctx, p, db.PartDeployKey, kick)
	if err != nil {
		return views.KeyView{}, err
	}
	k, err := h.projects.Key(ctx, p)
	if err != nil {
		return views.KeyView{}, err
	}
	return views.KeyView{ProjectID: p.ID, Badge: b, PublicKey: k.PublicKey, Fingerprint: k.Fingerprint}, nil
}

// deployKeyRow is the badge poll: stored state only.
func (h *Handlers) deployKeyRow(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	v, err := h.keyView(c, p, true)
	if err != nil {
		return err
	}
	return h.renderKeyRow(c, http.StatusOK, p, v)
}

func (h *Handlers) renderKeyRow(c echo.Context, status int, p db.Project, v views.KeyView) error {
	page := views.ProjectPage(h.page(c, p.Name, "projects"), views.ProjectView{Project: p, Key: v})
	return render(c, status, page, views.DeployKeyRow(v))
}

// checkDeployKey is "Check now": it waits for Bitbucket.
func (h *Handlers) checkDeployKey(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	if err := h.health.Check(c.Request().Context(), p); err != nil {
		return err
	}
	v, err := h.keyView(c, p, false)
	if err != nil {
		return err
	}
	return h.renderKeyRow(c, http.StatusOK, p, v)
}

// regenerateKey replaces the deploy key and shows the outcome in the row.
func (h *Handlers) regenerateKey(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	res, rerr := h.projects.RegenerateKey(c.Request().Context(), p)
	v, err := h.keyView(c, p, false)
	if err != nil {
		return err
	}
	status := http.StatusOK
	switch {
	case rerr != nil:
		if !isProblem(rerr) {
			return rerr
		}
		status, v.Message = statusOf(rerr)
		v.MessageKind = "error"
	case res.Warning != "":
		v.Message, v.MessageKind = res.Warning, "warning"
	default:
		v.Message, v.MessageKind = "A new deploy key is in force; the old one was removed from Bitbucket.", "ok"
	}
	return h.renderKeyRow(c, status, p, v)
}
