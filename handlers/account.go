package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/internal/connections"
	"tether/views"
)

// account is the Account page (connections.Status).
func (h *Handlers) account(c echo.Context) error {
	st, err := h.connections.Status(c.Request().Context(), currentUser(c).ID, false)
	if err != nil {
		return err
	}
	notice := map[string]string{
		"connected": "Bitbucket is connected.",
		"denied":    "You cancelled on Bitbucket, so nothing changed.",
	}[c.QueryParam("bitbucket")]
	return render(c, http.StatusOK, views.AccountPage(h.page(c, "Account", "account"), h.connectionView(c, st), notice), nil)
}

// bitbucketStatus is the badge poll (connections.Status): it renders what
// is stored and, when that is stale, starts a check in the background for
// the next poll. Opened directly it is sent to the Account page before
// anything starts.
func (h *Handlers) bitbucketStatus(c echo.Context) error {
	if !wantsFragment(c.Request()) {
		return h.renderPart(c, http.StatusOK, nil, "/account", views.Notice{})
	}
	st, err := h.connections.Status(c.Request().Context(), currentUser(c).ID, true)
	if err != nil {
		return err
	}
	return h.renderConnection(c, st)
}

// checkBitbucket is "Check now" (connections.CheckNow): it waits for
// Bitbucket's answer. In place the row shows what the check found; a
// plain post is sent back to the Account page, which says it once.
func (h *Handlers) checkBitbucket(c echo.Context) error {
	st, err := h.connections.CheckNow(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	conn := h.connectionView(c, st)
	return h.renderPart(c, http.StatusOK, views.Connection(conn), "/account", views.ConnectionCheckedNotice(conn))
}

// disconnectBitbucket is Disconnect (connections.Disconnect).
func (h *Handlers) disconnectBitbucket(c echo.Context) error {
	st, err := h.connections.Disconnect(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	if !isHTMX(c.Request()) {
		return redirect(c, http.StatusOK, "/account", "/account")
	}
	return h.renderConnection(c, st)
}

// renderConnection answers htmx with the Bitbucket row (renderPart: the
// Account page for anyone else).
func (h *Handlers) renderConnection(c echo.Context, st connections.Status) error {
	return h.renderPart(c, http.StatusOK, views.Connection(h.connectionView(c, st)), "/account", views.Notice{})
}

// connectionView shows the stored connection as the page does.
func (h *Handlers) connectionView(c echo.Context, st connections.Status) views.ConnectionView {
	v := views.ConnectionView{
		AuthorizationsURL: h.cfg.BitbucketURL + "/account/settings/app-authorizations/",
		ClientFault:       st.ClientFault,
		Linked:            st.Linked,
		Connected:         st.Connected,
		Username:          st.Username,
		DisplayName:       st.DisplayName,
		Reason:            st.Reason,
		Notice:            st.CheckError,
		ConnectedAt:       st.ConnectedAt,
		VerifiedAt:        st.VerifiedAt,
		Checking:          st.Checking,
		Allows:            st.Grant.Allows,
	}
	for _, m := range st.Grant.Missing {
		v.Missing = append(v.Missing, views.MissingScope{Scope: m.Scope, Breaks: m.Breaks})
	}
	return v
}
