package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/views"
)

func (h *Handlers) troubleshooting(c echo.Context) error {
	return render(c, http.StatusOK, views.TroubleshootingPage(h.page(c, "Troubleshooting", "troubleshooting")), nil)
}

// troubleshootingChecks runs the checklist against Bitbucket now.
func (h *Handlers) troubleshootingChecks(c echo.Context) error {
	r, err := h.troubleshooter.Run(c.Request().Context(), currentUser(c).ID, viewer(c).Org.ID)
	if err != nil {
		return err
	}
	return renderComponent(c, http.StatusOK, views.Checklist(csrfToken(c), r))
}
