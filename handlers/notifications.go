package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"tether/internal/alerts"
	"tether/internal/problem"
	"tether/internal/tether"
	"tether/views"
)

// Alerts manages where an organization's alerts go and shows what was
// sent.
type Alerts interface {
	Settings(ctx context.Context, orgID int64) (alerts.Settings, error)
	AddEmail(ctx context.Context, a alerts.Actor, backer bool) error
	AddWebhook(ctx context.Context, a alerts.Actor, url, secret string) (string, error)
	Remove(ctx context.Context, a alerts.Actor, channelID int64) error
	SendTest(ctx context.Context, a alerts.Actor, orgName string, channelID int64) (alerts.TestResult, error)
	Outbox(ctx context.Context, orgID int64) ([]tether.Alert, error)
}

// Deprecations lists the Bitbucket APIs retired under Tether.
type Deprecations interface {
	Active() []tether.Deprecation
}

func actor(c echo.Context) alerts.Actor {
	return alerts.Actor{UserID: currentUser(c).ID, OrgID: viewer(c).Org.ID}
}

// notificationsView reads the Notifications section; nil for members.
func (h *Handlers) notificationsView(c echo.Context) (*views.NotificationsView, error) {
	if !viewer(c).Admin() {
		return nil, nil
	}
	s, err := h.alerts.Settings(c.Request().Context(), viewer(c).Org.ID)
	if err != nil {
		return nil, err
	}
	return notificationsViewOf(c, s), nil
}

func notificationsViewOf(c echo.Context, s alerts.Settings) *views.NotificationsView {
	return &views.NotificationsView{Settings: s, Errors: map[string]string{}, CSRF: csrfToken(c)}
}

// notificationsOutcome re-renders the section with the outcome of an
// action in place: a refusal on its field or as a message, with its status.
func (h *Handlers) notificationsOutcome(c echo.Context, actErr error, edit func(*views.NotificationsView)) error {
	v, err := h.notificationsView(c)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if actErr != nil {
		p, ok := problem.As(actErr)
		if !ok {
			return actErr
		}
		status, _ = statusOf(actErr)
		if p.Field != "" {
			v.Errors[p.Field] = p.Message
		} else {
			v.Message, v.MessageKind = p.Message, "error"
		}
	}
	if edit != nil {
		edit(v)
	}
	if !wantsFragment(c.Request()) {
		// Without htmx the whole Team page answers, as for the team's own
		// actions: a signing secret Tether made is shown this once.
		tv, err := h.teamView(c)
		if err != nil {
			return err
		}
		tv.Notifications = v
		return render(c, status, views.TeamPage(h.page(c, "Team", "team"), tv), nil)
	}
	return h.renderPart(c, status, views.NotificationsSection(*v), "/team", views.Notice{})
}

func (h *Handlers) alertChannels(c echo.Context) error {
	v, err := h.notificationsView(c)
	if err != nil {
		return err
	}
	return h.renderPart(c, http.StatusOK, views.AlertChannels(v.Settings), "/team", views.Notice{})
}

func (h *Handlers) addEmailChannel(c echo.Context) error {
	err := h.alerts.AddEmail(c.Request().Context(), actor(c), c.FormValue("backer") != "")
	return h.notificationsOutcome(c, err, func(v *views.NotificationsView) {
		if err == nil {
			v.Message, v.MessageKind = "E-mail is on: alerts go to the admins. Press Send test to check it arrives.", "ok"
		}
	})
}

func (h *Handlers) addWebhookChannel(c echo.Context) error {
	typed := c.FormValue("url")
	secret, err := h.alerts.AddWebhook(c.Request().Context(), actor(c), typed, c.FormValue("secret"))
	return h.notificationsOutcome(c, err, func(v *views.NotificationsView) {
		if err != nil {
			v.URL = typed
			return
		}
		v.Message, v.MessageKind = "Webhook added. Press Send test to check it arrives.", "ok"
		v.NewSecret = secret
	})
}

func channelParam(c echo.Context) int64 {
	id, _ := strconv.ParseInt(c.Param("channel"), 10, 64)
	return id
}

func (h *Handlers) testChannel(c echo.Context) error {
	res, err := h.alerts.SendTest(c.Request().Context(), actor(c), viewer(c).Org.Name, channelParam(c))
	return h.notificationsOutcome(c, err, func(v *views.NotificationsView) {
		switch {
		case err != nil:
		case res.Demo:
			v.Message, v.MessageKind = "Demo mode: the test message is in the Outbox; nothing was sent.", "warning"
		case res.Error != "":
			v.Message, v.MessageKind = "The test message was not delivered: "+res.Error, "error"
		default:
			v.Message, v.MessageKind = "Test message sent.", "ok"
		}
	})
}

func (h *Handlers) removeChannel(c echo.Context) error {
	err := h.alerts.Remove(c.Request().Context(), actor(c), channelParam(c))
	return h.notificationsOutcome(c, err, func(v *views.NotificationsView) {
		if err == nil {
			v.Message, v.MessageKind = "Channel removed.", "ok"
		}
	})
}

func (h *Handlers) outbox(c echo.Context) error {
	list, err := h.alerts.Outbox(c.Request().Context(), viewer(c).Org.ID)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.OutboxPage(h.page(c, "Outbox", "team"), views.OutboxView{Alerts: list, Demo: h.cfg.Demo}), nil)
}
