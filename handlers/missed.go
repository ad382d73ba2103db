package handlers

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/internal/tether"
	"tether/views"
)

// Recovery offers and starts the workflows missed while deliveries were
// not arriving.
type Recovery interface {
	Missed(ctx context.Context, p tether.Project) ([]tether.MissedBranch, error)
}

func (h *Handlers) missedView(c echo.Context, p tether.Project) (views.MissedView, error) {
	missed, err := h.recovery.Missed(c.Request().Context(), p)
	return missedViewOf(c, p, missed), err
}

func missedViewOf(c echo.Context, p tether.Project, missed []tether.MissedBranch) views.MissedView {
	return views.MissedView{ProjectID: p.ID, Branches: missed, Admin: projectAdmin(c)}
}

// missed is the poll of the missed-workflows section: stored state only.
func (h *Handlers) missed(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	v, err := h.missedView(c, p)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.MissedSection(v), views.ProjectURL(p.ID), views.Notice{})
}

// startMissed is Start missed workflows (pages.StartMissed:
// recovery.StartMissed): the outcome shows in place and the workflows
// list is swapped with the fresh one.
func (h *Handlers) startMissed(c echo.Context) error {
	p, err := h.project(c)
	if err != nil {
		return err
	}
	st, serr := h.pages.StartMissed(c.Request().Context(), currentUser(c).ID, p)
	v := missedViewOf(c, p, st.Missed)
	status, err := outcome(serr, "", startedSaying(len(st.Workflows)), &v.Message, &v.MessageKind)
	if err != nil {
		return err
	}
	a := activityOf(p, st.Activity)
	v.Activity = &a
	return h.renderPart(c, status, views.MissedSection(v), views.ProjectURL(p.ID), views.Notice{Kind: v.MessageKind, Message: v.Message})
}

// startedSaying says how many recovered workflows Start missed workflows
// started.
func startedSaying(n int) string {
	if n == 1 {
		return "Started 1 workflow, marked recovered."
	}
	return fmt.Sprintf("Started %d workflows, marked recovered.", n)
}
