package handlers

import (
	"maps"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"tether/views"
)

// question is what a destructive action asks before it acts: its words
// (from views, where the form's hx-confirm reads them too), the word of
// the button that was pressed, what it acts on (a project's or an
// organization's name, said above the question), and the page the action
// belongs to, where Cancel goes back, with that page's navigation entry.
type question struct {
	text, button, subject, cancel, nav string
}

// asker gives a route's question from what the route's middleware loaded
// (the project, the viewer) and its parameters; never words from the
// request.
type asker func(c echo.Context) (question, error)

// confirmFirst makes a destructive action ask before it acts, with or
// without JavaScript. htmx asks the form's hx-confirm itself, so an htmx
// request (HX-Request) goes straight on to the action, as does a form
// posted with confirmed=yes. Any other post — the form sent by a browser
// without JavaScript — changes nothing and is answered 200 with
// views.ConfirmPage: the question, and a form posting the same fields
// (the CSRF token renewed) to the same action with confirmed=yes, beside
// Cancel. Route middleware runs after its groups' (routes.go): the CSRF
// check and the route's authorization come first, so a person is only
// asked about what they may do, and the question names only what they
// may see.
func (h *Handlers) confirmFirst(ask asker) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if isHTMX(r) || r.PostFormValue(views.ConfirmedField) == "yes" {
				return next(c)
			}
			q, err := ask(c)
			if err != nil {
				return err
			}
			return render(c, http.StatusOK, views.ConfirmPage(h.page(c, q.button, q.nav), views.Confirmation{
				Question: q.text, Button: q.button, Subject: q.subject, Cancel: q.cancel, Action: r.URL.Path, Fields: carried(r),
			}), nil)
		}
	}
}

// carried is the posted form's fields (parsed by the CSRF check) in name
// order, as hidden inputs for the confirmed form: all but the CSRF token,
// which the page renders afresh, and confirmed, which it adds.
func carried(r *http.Request) []views.Hidden {
	var out []views.Hidden
	for _, name := range slices.Sorted(maps.Keys(r.PostForm)) {
		if name == csrfField || name == views.ConfirmedField {
			continue
		}
		for _, v := range r.PostForm[name] {
			out = append(out, views.Hidden{Name: name, Value: v})
		}
	}
	return out
}

// regenerateQuestion is Regenerate's, for a project's health row. Pressed
// on the troubleshooting checklist (from=checklist), Cancel goes back
// there.
func (h *Handlers) regenerateQuestion(pt part) asker {
	return func(c echo.Context) (question, error) {
		p, err := h.project(c)
		if err != nil {
			return question{}, err
		}
		q := question{text: views.RegenerateQuestion(pt.slug), button: "Regenerate", subject: p.Name, cancel: views.ProjectURL(p.ID), nav: "projects"}
		if c.Request().PostFormValue("from") == "checklist" {
			q.cancel, q.nav = "/troubleshooting", "troubleshooting"
		}
		return q, nil
	}
}

// deleteQuestion is Delete project's: it names the project.
func (h *Handlers) deleteQuestion(c echo.Context) (question, error) {
	p, err := h.project(c)
	if err != nil {
		return question{}, err
	}
	return question{text: views.DeleteQuestion(p), button: "Delete project", subject: p.Name, cancel: views.ProjectURL(p.ID), nav: "projects"}, nil
}

// rehomeQuestion is Re-home to me's.
func (h *Handlers) rehomeQuestion(c echo.Context) (question, error) {
	p, err := h.project(c)
	if err != nil {
		return question{}, err
	}
	return question{text: views.RehomeQuestion, button: "Re-home to me", subject: p.Name, cancel: views.ProjectURL(p.ID), nav: "projects"}, nil
}

// removeQuestion is Remove's (Leave on one's own row), naming the member
// of the viewer's organization (orgs.Member: someone else is a 404); with
// force, it is Remove anyway's, asked after the Team page listed what the
// member backs.
func (h *Handlers) removeQuestion(c echo.Context) (question, error) {
	v := viewer(c)
	m, err := h.orgs.Member(c.Request().Context(), v.Org.ID, memberParam(c))
	if err != nil {
		return question{}, err
	}
	you := m.UserID == v.UserID
	q := question{text: views.RemoveQuestion(you, m.Name, v.Org.Name), button: "Remove", subject: v.Org.Name, cancel: "/team", nav: "team"}
	switch {
	case c.Request().PostFormValue("force") != "":
		q.text, q.button = views.RemoveAnywayQuestion, "Remove anyway"
	case you:
		q.button = "Leave"
	}
	return q, nil
}

// removeChannelQuestion is Remove's on an alert channel.
func removeChannelQuestion(c echo.Context) (question, error) {
	return question{text: views.RemoveChannelQuestion, button: "Remove", subject: viewer(c).Org.Name, cancel: "/team", nav: "team"}, nil
}

// disconnectQuestion is Disconnect's, on the Account page.
func disconnectQuestion(echo.Context) (question, error) {
	return question{text: views.DisconnectQuestion, button: "Disconnect", cancel: "/account", nav: "account"}, nil
}
