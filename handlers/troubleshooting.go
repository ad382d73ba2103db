package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/internal/troubleshooting"
	"tether/views"
)

func (h *Handlers) troubleshooting(c echo.Context) error {
	return render(c, http.StatusOK, views.TroubleshootingPage(h.page(c, "Troubleshooting", "troubleshooting")), nil)
}

// troubleshootingChecks runs the checklist against Bitbucket now.
func (h *Handlers) troubleshootingChecks(c echo.Context) error {
	if !wantsFragment(c.Request()) {
		return h.renderPart(c, http.StatusOK, nil, "/troubleshooting", views.Notice{}) // before asking Bitbucket
	}
	v := viewer(c)
	r, err := h.troubleshooter.Run(c.Request().Context(), troubleshooting.Viewer{UserID: currentUser(c).ID, OrgID: v.Org.ID, Admin: v.Admin()})
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.Checklist(v.Admin(), r), "/troubleshooting", views.Notice{})
}
