package handlers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"tether/internal/connections"
	"tether/internal/tether"
	"tether/views"
)

func (h *Handlers) account(c echo.Context) error {
	conn, err := h.connectionView(c, false)
	if err != nil {
		return err
	}
	notice := map[string]string{
		"connected": "Bitbucket is connected.",
		"denied":    "You cancelled on Bitbucket, so nothing changed.",
	}[c.QueryParam("bitbucket")]
	return render(c, http.StatusOK, views.AccountPage(h.page(c, "Account", "account"), conn, notice), nil)
}

// bitbucketStatus is the badge poll: it renders what is stored and, when
// that is stale, starts a check in the background for the next poll.
func (h *Handlers) bitbucketStatus(c echo.Context) error {
	conn, err := h.connectionView(c, true)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.AccountPage(h.page(c, "Account", "account"), conn, ""), views.Connection(conn))
}

// checkBitbucket is "Check now": it waits for Bitbucket's answer.
func (h *Handlers) checkBitbucket(c echo.Context) error {
	u := currentUser(c)
	if _, err := h.connections.Check(c.Request().Context(), u.ID); err != nil && !errors.Is(err, tether.ErrNotFound) {
		return err
	}
	return h.bitbucketStatus(c)
}

func (h *Handlers) disconnectBitbucket(c echo.Context) error {
	if err := h.connections.Disconnect(c.Request().Context(), currentUser(c).ID); err != nil {
		return err
	}
	if !isHTMX(c.Request()) {
		return redirect(c, http.StatusOK, "/account", "/account")
	}
	return h.bitbucketStatus(c)
}

// connectionView reads the stored connection into what the page shows.
func (h *Handlers) connectionView(c echo.Context, poll bool) (views.ConnectionView, error) {
	u := currentUser(c)
	v := views.ConnectionView{
		CSRF:              csrfToken(c),
		AuthorizationsURL: h.cfg.BitbucketURL + "/account/settings/app-authorizations/",
	}
	if f, ok := h.connections.ClientFault(); ok {
		v.ClientFault = f.Reason
	}
	ident, err := h.connections.Identity(c.Request().Context(), u.ID)
	if errors.Is(err, tether.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	started := poll && h.connections.CheckIfStale(ident)
	grant := connections.Describe(ident.Scopes)
	v.Linked = true
	v.Connected = ident.Status == tether.Connected
	v.Username, v.DisplayName = ident.Username, ident.DisplayName
	v.Reason = ident.StatusReason
	v.Notice = ident.CheckError
	v.ConnectedAt, v.VerifiedAt = ident.ConnectedAt, ident.VerifiedAt
	v.Allows = grant.Allows
	for _, m := range grant.Missing {
		v.Missing = append(v.Missing, views.MissingScope{Scope: m.Scope, Breaks: m.Breaks})
	}
	v.Checking = started || h.connections.Checking(u.ID)
	return v, nil
}
