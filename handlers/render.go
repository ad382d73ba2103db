package handlers

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"tether/internal/problem"
	"tether/views"
)

// isHTMX reports whether htmx sent the request.
func isHTMX(r *http.Request) bool { return r.Header.Get("HX-Request") == "true" }

// wantsFragment is the one render rule: an htmx request that is not
// boosted, not a history restore and not a full-page request gets the
// fragment; everything else gets the whole page.
func wantsFragment(r *http.Request) bool {
	return isHTMX(r) &&
		r.Header.Get("HX-Boosted") == "" &&
		r.Header.Get("HX-History-Restore-Request") == "" &&
		r.Header.Get("HX-Request-Type") != "full"
}

// render writes page, or fragment when the request wants one (and fragment
// is not nil). It renders into a buffer first, so a failed render still
// becomes a clean error page.
func render(c echo.Context, status int, page, fragment templ.Component) error {
	c.Response().Header().Add("Vary", "HX-Request")
	comp := page
	if fragment != nil && wantsFragment(c.Request()) {
		comp = fragment
	}
	return renderComponent(c, status, comp)
}

// renderPart answers with part, a piece of the page at pageURL for htmx to
// swap in place (a badge, a section, an action's outcome). Any other
// request — the part's URL opened in a tab, a form posted without
// JavaScript — is sent to the whole page (303 See Other), where outcome,
// if it says anything, is shown as the page's notice. Like render, the
// answer varies on HX-Request. A part that asks Bitbucket calls
// renderPart with a nil part before asking, so a request that is sent
// away spends nothing of anyone's budget.
func (h *Handlers) renderPart(c echo.Context, status int, part templ.Component, pageURL string, outcome views.Notice) error {
	c.Response().Header().Add("Vary", "HX-Request")
	if !wantsFragment(c.Request()) {
		if outcome.Message != "" {
			h.setFlash(c, outcome)
		}
		return c.Redirect(http.StatusSeeOther, pageURL)
	}
	return renderComponent(c, status, part)
}

// renderComponent writes comp; only render, renderPart and the error
// handler call it.
func renderComponent(c echo.Context, status int, comp templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := comp.Render(views.WithCSRF(c.Request().Context(), csrfToken(c)), buf); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// page returns what every full page needs.
func (h *Handlers) page(c echo.Context, title, nav string) views.Page {
	v := viewer(c)
	p := views.Page{
		Title: title, User: currentUser(c), CSRF: csrfToken(c),
		Demo: h.cfg.Demo, DemoURL: h.cfg.DemoURL, DemoLeftovers: h.cfg.DemoLeftovers, Nav: nav,
		Org: v.Org, Orgs: v.Memberships, Admin: v.Admin(),
	}
	if v.Admin() && h.deprecations != nil {
		p.Deprecations = h.deprecations.Active()
	}
	if f, ok := h.connections.ClientFault(); ok && v.Admin() {
		p.ClientFault = f.Reason
	}
	if p.User != nil {
		p.Flash = h.takeFlash(c)
	}
	return p
}

// statusOf maps an error to the status and the message a person may see.
func statusOf(err error) (int, string) {
	if p, ok := problem.As(err); ok {
		switch p.Kind {
		case problem.Invalid:
			return http.StatusUnprocessableEntity, p.Message
		case problem.NotFound:
			return http.StatusNotFound, p.Message
		case problem.Forbidden:
			return http.StatusForbidden, p.Message
		case problem.Conflict:
			return http.StatusConflict, p.Message
		case problem.Unauthenticated:
			return http.StatusUnauthorized, p.Message
		case problem.Unavailable:
			return http.StatusBadGateway, p.Message
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg, ok := he.Message.(string)
		if !ok || he.Code >= 500 {
			msg = http.StatusText(he.Code)
		}
		if he.Code == http.StatusNotFound {
			msg = "There is nothing at this address."
		}
		return he.Code, msg
	}
	return http.StatusInternalServerError, "Something went wrong on our side. Please try again."
}

// actionOf is the fix a problem offers beside its message, if any.
func actionOf(err error) string {
	if p, ok := problem.As(err); ok {
		return p.Action
	}
	return ""
}

// returnTarget is the page an htmx request came from (HX-Current-URL), for
// coming back to it after Grant access; the account page otherwise.
func returnTarget(c echo.Context) string {
	if u, err := url.Parse(c.Request().Header.Get("HX-Current-URL")); err == nil && u.Path != "" {
		return localTarget(u.Path, "/account")
	}
	return "/account"
}

// handleError is Echo's one error handler: it logs server errors, and
// answers with a page, or with a fragment that lands in the htmx target.
func (h *Handlers) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := statusOf(err)
	switch {
	case status >= 500 && isProblem(err):
		// Bitbucket unreachable, rate limiting or refusing for now: the
		// person was told; an operator sees it, but nothing is broken here.
		h.log.Warn("request failed", "method", c.Request().Method, "route", c.Path(), "err", err)
	case status >= 500:
		h.log.Error("request failed", "method", c.Request().Method, "route", c.Path(), "err", err)
	}
	var rerr error
	switch {
	case c.Path() == webhookRoute:
		rerr = c.String(status, msg) // Bitbucket reads plain text
	case wantsFragment(c.Request()) && actionOf(err) != "":
		rerr = renderComponent(c, status, views.ProblemFragment(msg, actionOf(err), returnTarget(c)))
	case wantsFragment(c.Request()):
		rerr = renderComponent(c, status, views.ErrorFragment(msg))
	default:
		rerr = renderComponent(c, status, views.ErrorPage(h.page(c, "Error", ""), status, msg, actionOf(err)))
	}
	if rerr != nil {
		h.log.Error("render error page", "err", rerr)
	}
}
