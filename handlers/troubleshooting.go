package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/internal/troubleshooting"
	"tether/views"
)

// troubleshooting is the Troubleshooting page. Opened, it asks Bitbucket
// nothing: htmx then loads the checklist in place (troubleshootingChecks).
// With run set — Check or Check again pressed without JavaScript, a GET
// form — it runs the checklist and answers with it on the page.
func (h *Handlers) troubleshooting(c echo.Context) error {
	var report *troubleshooting.Report
	if c.QueryParam("run") != "" {
		r, err := h.runChecks(c)
		if err != nil {
			return err
		}
		report = &r
	}
	return render(c, http.StatusOK, views.TroubleshootingPage(h.page(c, "Troubleshooting", "troubleshooting"), viewer(c).Admin(), report), nil)
}

// troubleshootingChecks runs the checklist against Bitbucket now, for htmx
// to swap in place. Opened directly it is sent to the page before asking
// Bitbucket, so a stray visit spends nothing of the person's budget.
func (h *Handlers) troubleshootingChecks(c echo.Context) error {
	if !wantsFragment(c.Request()) {
		return h.renderPart(c, http.StatusOK, nil, "/troubleshooting", views.Notice{}) // before asking Bitbucket
	}
	r, err := h.runChecks(c)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.Checklist(viewer(c).Admin(), r), "/troubleshooting", views.Notice{})
}

// runChecks walks the checklist for the person looking, with their
// Bitbucket connection.
func (h *Handlers) runChecks(c echo.Context) (troubleshooting.Report, error) {
	v := viewer(c)
	return h.troubleshooter.Run(c.Request().Context(), troubleshooting.Viewer{UserID: currentUser(c).ID, OrgID: v.Org.ID, Admin: v.Admin()})
}
