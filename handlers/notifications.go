package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"tether/internal/alerts"
	"tether/internal/pages"
	"tether/internal/problem"
	"tether/internal/tether"
	"tether/views"
)

// Alerts manages where an organization's alerts go and shows what was
// sent.
type Alerts interface {
	Settings(ctx context.Context, orgID int64) (alerts.Settings, error)
	Outbox(ctx context.Context, orgID int64) ([]tether.Alert, error)
}

// Deprecations lists the Bitbucket APIs retired under Tether.
type Deprecations interface {
	Active() []tether.Deprecation
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
	return &views.NotificationsView{Settings: s, Errors: map[string]string{}}
}

// notificationsOutcome re-renders the section, as the action's answer t
// has it, with the outcome of an action in place: a refusal on its field
// or as a message, with its status.
func (h *Handlers) notificationsOutcome(c echo.Context, t pages.Team, actErr error, edit func(*views.NotificationsView)) error {
	var s alerts.Settings
	if t.Notifications != nil {
		s = *t.Notifications
	}
	v := notificationsViewOf(c, s)
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
	if actErr == nil && v.NewSecret == "" {
		// As for the team's own actions (teamOutcome): a plain post lands
		// on the Team page with the outcome said once.
		return h.renderPart(c, status, views.NotificationsSection(*v), "/team", views.Notice{Kind: v.MessageKind, Message: v.Message})
	}
	if !wantsFragment(c.Request()) {
		// Without htmx the whole Team page answers: a signing secret
		// Tether made is shown this once, a refusal beside what was typed.
		tv := teamViewOf(c, t)
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

// addEmailChannel turns e-mail alerts on (pages.AddEmailChannel:
// alerts.AddEmail).
func (h *Handlers) addEmailChannel(c echo.Context) error {
	t, err := h.pages.AddEmailChannel(c.Request().Context(), viewer(c), c.FormValue("backer") != "")
	return h.notificationsOutcome(c, t, err, func(v *views.NotificationsView) {
		if err == nil {
			v.Message, v.MessageKind = "E-mail is on: alerts go to the admins. Press Send test to check it arrives.", "ok"
		}
	})
}

// addWebhookChannel adds an alert webhook (pages.AddWebhookChannel:
// alerts.AddWebhook).
func (h *Handlers) addWebhookChannel(c echo.Context) error {
	typed := c.FormValue("url")
	t, secret, err := h.pages.AddWebhookChannel(c.Request().Context(), viewer(c), typed, c.FormValue("secret"))
	return h.notificationsOutcome(c, t, err, func(v *views.NotificationsView) {
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

// testChannel is Send test (pages.TestChannel: alerts.SendTest).
func (h *Handlers) testChannel(c echo.Context) error {
	t, res, err := h.pages.TestChannel(c.Request().Context(), viewer(c), channelParam(c))
	return h.notificationsOutcome(c, t, err, func(v *views.NotificationsView) {
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

// removeChannel is Remove on a channel (pages.RemoveChannel: alerts.Remove).
func (h *Handlers) removeChannel(c echo.Context) error {
	t, err := h.pages.RemoveChannel(c.Request().Context(), viewer(c), channelParam(c))
	return h.notificationsOutcome(c, t, err, func(v *views.NotificationsView) {
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
