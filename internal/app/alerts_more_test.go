package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"tether/internal/alerts"
	"tether/internal/app"
	"tether/internal/apptest"
	"tether/internal/bitbucket/emulator"
	"tether/internal/config"
)

// A failing chat server is retried with backoff, then given up; the Team
// page shows the channel failing with the reason, and a recovery of the
// server shows on the next alert. A 4xx is not retried.
func TestWebhookDeliveryRetriedAndFailureShown(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	ae.chat.answer(http.StatusBadGateway)
	ae.env.RunBackground()
	ae.env.Emulator.DeleteHook("alice/api", ae.env.Emulator.Hooks("alice/api")[0].UUID)
	ae.checkWebhook(t)
	// Two retries configured: three attempts in all, then failed.
	waitFor(t, 10*time.Second, "three attempts", func() bool { return len(ae.chat.requests()) == 3 })
	var box *apptest.Page
	waitFor(t, 5*time.Second, "the delivery given up", func() bool {
		box = ae.outbox(t)
		return box.Has(`[data-testid="delivery"][data-kind="webhook"][data-status="failed"]`)
	})
	if got := box.Text(`[data-kind="webhook"] [data-testid="delivery-error"]`); !strings.Contains(got, "answered 502") || strings.Contains(got, "hookPATHtoken") {
		t.Fatalf("delivery error %q", got)
	}
	ids := map[string]bool{}
	for _, r := range ae.chat.requests() {
		ids[r.header.Get(alerts.DeliveryHeader)] = true
		r.verified(t, ae.secret)
	}
	if len(ids) != 1 {
		t.Fatalf("retries carried %d different delivery ids", len(ids))
	}
	team := ae.c.Get("/team")
	row := team.Doc.Find(`[data-testid="channel"][data-kind="webhook"]`)
	if row.Find(`[data-status="failing"]`).Length() != 1 || !strings.Contains(row.Text(), "answered 502") {
		t.Fatalf("Team page channel row: %s", row.Text())
	}

	// A 404 is the URL's fault: given up at once.
	ae.chat.answer(http.StatusNotFound)
	before := len(ae.chat.requests())
	p := ae.c.HTMX(http.MethodPost, "/team/notifications/"+row.AttrOr("data-id", "")+"/test", team, nil)
	if !strings.Contains(p.Text(`[data-testid="notifications-message"]`), "answered 404") || len(ae.chat.requests()) != before+1 {
		t.Fatalf("Send test against a 404: %s", p.Text(`[data-testid="notifications-message"]`))
	}
	// Back up: Send test succeeds and the row says so.
	ae.chat.answer(http.StatusOK)
	p = ae.c.HTMX(http.MethodPost, "/team/notifications/"+row.AttrOr("data-id", "")+"/test", team, nil)
	if p.Text(`[data-testid="notifications-message"]`) != "Test message sent." ||
		p.Attr(`[data-testid="channel"][data-kind="webhook"] [data-testid="channel-status"]`, "data-status") != "ok" {
		t.Fatalf("Send test after recovery:\n%s", p.Text(`#notifications`))
	}
	if text, kind := ae.chat.requests()[len(ae.chat.requests())-1].verified(t, ae.secret); kind != "test" || !strings.Contains(text, "test from Tether") {
		t.Fatalf("test delivery %s %q", kind, text)
	}
	// Send test by e-mail arrives over STARTTLS.
	mailID := team.Attr(`[data-testid="channel"][data-kind="email"]`, "data-id")
	p = ae.c.HTMX(http.MethodPost, "/team/notifications/"+mailID+"/test", team, nil)
	if p.Text(`[data-testid="notifications-message"]`) != "Test message sent." || !strings.HasPrefix(ae.mail.Mail()[len(ae.mail.Mail())-1].Subject(), "Tether: test message") {
		t.Fatalf("e-mail test: %s", p.Text(`[data-testid="notifications-message"]`))
	}
}

// Without TETHER_ALERTS_ALLOW_PRIVATE, URLs for this machine or a private
// network are refused where they were typed, nothing is stored, and a
// member can neither see nor change the channels.
func TestWebhookURLsRefusedWhereTyped(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	team := c.Get("/team")
	for _, typed := range []string{"http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://localhost/hook", "https://10.0.0.8/hook",
		"https://[::1]/hook", "https://169.254.169.254/latest/meta-data", "http://chat.example.com/hook", "not a url"} {
		p := c.HTMX(http.MethodPost, "/team/notifications/webhooks", team, url.Values{"url": {typed}})
		if p.Status != http.StatusUnprocessableEntity || p.Text(`[data-testid="url-error"]`) == "" ||
			p.Attr(`#webhook-url`, "value") != typed || p.Attr(`#webhook-url`, "aria-invalid") != "true" {
			t.Errorf("%s: %d %q", typed, p.Status, p.Text(`[data-testid="url-error"]`))
		}
	}
	p := c.HTMX(http.MethodPost, "/team/notifications/webhooks", team, url.Values{"url": {"https://chat.example.com/hook"}, "secret": {"short"}})
	if p.Status != http.StatusUnprocessableEntity || p.Text(`[data-testid="secret-error"]`) == "" {
		t.Errorf("short secret: %d", p.Status)
	}
	p = c.HTMX(http.MethodPost, "/team/notifications/email", team, nil)
	if p.Status != http.StatusConflict || !strings.Contains(p.Text(`[data-testid="notifications-message"]`), "TETHER_SMTP_URL") {
		t.Errorf("e-mail without a mail server: %d %s", p.Status, p.Text(`[data-testid="notifications-message"]`))
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM alert_channels`); n != 0 {
		t.Fatalf("%d channels stored from refused input", n)
	}
	// A public https URL is taken; the secret Tether makes is shown once.
	p = c.HTMX(http.MethodPost, "/team/notifications/webhooks", team, url.Values{"url": {"https://chat.example.com/hooks/T1/abcdefTOKEN"}})
	secret := p.Attr(`[data-testid="new-secret"]`, "value")
	if p.Status != http.StatusOK || len(secret) < 32 || !strings.Contains(p.Text(`[data-testid="channel"]`), "https://chat.example.com/hooks/…OKEN") {
		t.Fatalf("public URL: %d\n%s", p.Status, p.Text("#notifications"))
	}
	if again := c.Get("/team"); strings.Contains(again.Body, secret) || strings.Contains(again.Body, "abcdefTOKEN") {
		t.Fatal("the secret or the URL's token is shown again")
	}
}

// Revoking the connection that backs a project is one incident, not one
// per part: a single alert, and a single recovery notice once connected.
func TestRevokedConnectionIsOneIncident(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	ae.checkWebhook(t)
	ae.env.RunBackground()
	ae.env.Emulator.RevokeAuthorization("alice", apptest.ClientID)
	ae.checkWebhook(t) // both parts turn invalid: OAuth permissions revoked
	waitFor(t, 10*time.Second, "the connection alert", func() bool { return len(ae.chat.requests()) >= 1 })
	time.Sleep(300 * time.Millisecond)
	box := ae.outbox(t)
	if n := box.Doc.Find(`[data-testid="alert"]`).Length(); n != 1 || box.Attr(`[data-testid="alert"]`, "data-subject") != "connection" {
		t.Fatalf("%d alerts after a revocation:\n%s", n, box.Text("main"))
	}
	// Granted again on the account page: one recovery notice.
	ae.c.Consent(ae.c.Submit(ae.c.Get("/account"), `form:has([data-testid="grant-access"])`, nil, ""), true)
	waitFor(t, 10*time.Second, "the recovery notice", func() bool { return len(ae.chat.requests()) == 2 })
	if _, kind := ae.chat.requests()[1].verified(t, ae.secret); kind != "recovered" {
		t.Fatalf("second alert is %s", kind)
	}
}

// Incidents are in the database: a second watcher (a restarted Tether)
// over the same store neither repeats an open incident's alert nor misses
// its recovery.
func TestIncidentsSurviveRestart(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	ae.env.Emulator.DeleteHook("alice/api", ae.env.Emulator.Hooks("alice/api")[0].UUID)
	ae.checkWebhook(t)
	ctx := context.Background()
	if err := ae.env.App.Alerts.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := alerts.New(slog.New(slog.NewTextHandler(io.Discard, nil)), ae.env.App.Store, alerts.Config{PublicURL: ae.env.URL})
	if err := restarted.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, ae.env)
	if n := count(t, db, `SELECT count(*) FROM alerts WHERE kind = 'broken'`); n != 1 {
		t.Fatalf("%d alerts after a restart, want 1", n)
	}
	ae.c.HTMX(http.MethodPost, ae.project.URL.Path+"/webhook/regenerate", ae.project, nil)
	if err := restarted.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ae.env.App.Alerts.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM alerts WHERE kind = 'recovered'`); n != 1 {
		t.Fatalf("%d recovery notices, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM recovery_checks`); n != 1 {
		t.Fatalf("%d comparisons scheduled after the repair, want 1", n)
	}
}

// After Tether was not running for longer than a few minutes, every
// project is compared once, paced one per tick; a quick restart compares
// nothing.
func TestRestartAfterDowntimeComparesEachProjectOnce(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{})
	create(t, c, "alice/api")
	create(t, c, "alice/site")
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	rec := env.App.Recovery
	ctx := context.Background()
	if err := rec.Started(ctx); err != nil { // first start: nothing to compare with
		t.Fatal(err)
	}
	// While "down": the hook is off, so the push never arrives.
	hook := env.Emulator.Hooks("alice/api")[0]
	env.Emulator.SetHookActive("alice/api", hook.UUID, false)
	res, err := env.Emulator.Push("alice/api", "hotfix", "Patch while Tether was down", "alice")
	if err != nil {
		t.Fatal(err)
	}
	env.Emulator.SetHookActive("alice/api", hook.UUID, true)

	db := rawDB(t, env)
	if err := rec.Started(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM recovery_checks`); n != 0 {
		t.Fatalf("a quick restart scheduled %d comparisons", n)
	}
	if _, err := writableDB(t, env).Exec(`UPDATE instance_state SET at = datetime('now', '-1 hour') WHERE name = 'up'`); err != nil {
		t.Fatal(err)
	}
	if err := rec.Started(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM recovery_checks`); n != 2 {
		t.Fatalf("%d comparisons scheduled after downtime, want 2", n)
	}
	for want := 1; want >= 0; want-- {
		if err := rec.RunDue(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM recovery_checks`); n != want {
			t.Fatalf("%d comparisons left, want %d (one per tick)", n, want)
		}
	}
	missed := c.Get("/projects/1")
	if missed.Attr(`[data-testid="missed"]`, "data-count") != "1" || missed.Attr(`[data-branch="hotfix"]`, "data-commit") != res.New ||
		!strings.Contains(missed.Text(`[data-testid="missed"]`), "Tether was not running") {
		t.Fatalf("project page:\n%s", missed.Text(`[data-testid="missed"]`))
	}
	if site := c.Get("/projects/2"); site.Attr(`[data-testid="missed"]`, "data-count") != "0" {
		t.Fatal("a project nobody pushed to offers missed workflows")
	}
	// A member sees the notice but not the button, and may not press it.
	if p := c.Get("/projects/1"); !p.Has(`[data-testid="start-missed"]`) {
		t.Fatal("the admin is not offered Start missed workflows")
	}
}

// Bitbucket retiring an endpoint (410 Gone with CHANGE-nnnn) is recorded
// once, logged once, counted every time, and shown to admins as a banner
// naming the change and the endpoint — to admins only.
func TestDeprecationBannerForAdmins(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	tm.join(t, tm.invite(t))
	tm.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/user/workspaces", Status: http.StatusGone})
	for range 2 {
		tm.alice.Get("/projects/new")
	}
	page := tm.alice.Get("/projects")
	banner := page.Doc.Find(`[data-testid="deprecation"]`)
	if banner.Length() != 1 || banner.AttrOr("data-change", "") != "CHANGE-2770" ||
		!strings.Contains(banner.Text(), "GET /2.0/user/workspaces") || !strings.Contains(banner.Text(), "410 Gone") {
		t.Fatalf("banner: %q", banner.Text())
	}
	if tm.bob.Get("/projects").Has(`[data-testid="deprecation-banner"]`) {
		t.Fatal("a member sees the deprecation banner")
	}
	if n := strings.Count(tm.env.Logs.String(), "Bitbucket retired an API Tether uses"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
	if n := count(t, rawDB(t, tm.env), `SELECT count FROM deprecations WHERE change = 'CHANGE-2770'`); n != 2 {
		t.Fatalf("recorded %d answers, want 2", n)
	}
	if got := tm.env.App.Deprecations.Counts()["CHANGE-2770"]; got != 2 {
		t.Fatalf("counter %d, want 2", got)
	}
	families, err := tm.env.App.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, f := range families {
		if f.GetName() != "tether_bitbucket_deprecated_responses_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == "CHANGE-2770" && m.GetCounter().GetValue() == 2 {
				counted = true
			}
		}
	}
	if !counted {
		t.Fatal("tether_bitbucket_deprecated_responses_total{change=\"CHANGE-2770\"} is not 2")
	}
	if s, _ := keyStatus(tm.alice.Get(tm.id)); s == "invalid" {
		t.Fatal("a deprecation made a project invalid")
	}
}

// In demo mode nothing leaves Tether: an alert is in the Outbox with where
// it would have gone, and the chat server configured is never called.
func TestDemoModeKeepsAlertsInTheOutbox(t *testing.T) {
	t.Parallel()
	chat := startReceiver(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{"TETHER_PUBLIC_URL": base, "TETHER_DATA_DIR": t.TempDir(), "TETHER_ALERTS_ALLOW_PRIVATE": "true"}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.Health.Coalesce = 0 // Check now right after creating the project checks again
	srv := &httptest.Server{Listener: ln, Config: a.Server()}
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })
	env := &apptest.Env{T: t, URL: base, Emulator: a.Emulator, App: a}
	env.AddUser("dora")
	env.Emulator.AddRepository("dora", "shop", true)
	c := env.Client()
	c.SignUpWithBitbucket("dora")
	project := create(t, c, "dora/shop")
	team := c.Get("/team")
	if !team.Has(`[data-testid="notifications-demo"]`) {
		t.Fatal("the Notifications section does not say it is the demo")
	}
	c.HTMX(http.MethodPost, "/team/notifications/webhooks", team, url.Values{"url": {chat.URL}, "secret": {"demo-secret-0123456789"}})
	p := c.HTMX(http.MethodPost, "/team/notifications/email", team, nil)
	apptest.MustStatus(t, p, http.StatusOK)

	env.Emulator.DeleteHook("dora/shop", env.Emulator.Hooks("dora/shop")[0].UUID)
	c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil)
	if err := a.Alerts.Watch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Alerts.SendDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	box := c.Get("/team/outbox")
	alert := box.Doc.Find(`[data-testid="alert"]`)
	if alert.Length() != 1 || !strings.Contains(alert.Text(), "dora/shop") || !strings.Contains(alert.Text(), "deleted on Bitbucket") ||
		alert.Find(`[data-testid="delivery"][data-status="demo"]`).Length() != 2 || !strings.Contains(alert.Text(), "dora@example.com") {
		t.Fatalf("Outbox:\n%s", box.Text("main"))
	}
	tp := c.HTMX(http.MethodPost, "/team/notifications/"+c.Get("/team").Attr(`[data-testid="channel"][data-kind="webhook"]`, "data-id")+"/test", team, nil)
	if !strings.Contains(tp.Text(`[data-testid="notifications-message"]`), "Demo mode") {
		t.Fatalf("Send test in demo: %s", tp.Text(`[data-testid="notifications-message"]`))
	}
	if n := len(chat.requests()); n != 0 {
		t.Fatalf("demo mode sent %d requests", n)
	}
	if log := c.Get("/team/audit"); !log.Has(`[data-action="alert recorded"]`) {
		t.Fatal("the audit log does not record the alert")
	}
}

// "Could not check" is never an incident: Bitbucket failing or rate
// limiting Tether alerts nobody, and does not close an open incident.
func TestCouldNotCheckNeverAlerts(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	ae.env.Emulator.FailAPI(emulator.Failure{Status: http.StatusServiceUnavailable})
	if s := ae.checkWebhook(t); s != "unknown" {
		t.Fatalf("webhook %s while Bitbucket fails", s)
	}
	ctx := context.Background()
	if err := ae.env.App.Alerts.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, ae.env)
	if n := count(t, db, `SELECT count(*) FROM alerts`); n != 0 {
		t.Fatalf("%d alerts for 'could not check'", n)
	}
	ae.env.Emulator.ClearFailures()
	ae.env.Emulator.DeleteHook("alice/api", ae.env.Emulator.Hooks("alice/api")[0].UUID)
	ae.checkWebhook(t)
	ae.env.App.Alerts.Watch(ctx)
	ae.env.Emulator.FailAPI(emulator.Failure{Status: http.StatusTooManyRequests})
	if s := ae.checkWebhook(t); s != "unknown" {
		t.Fatalf("webhook %s while rate limited", s)
	}
	ae.env.App.Alerts.Watch(ctx)
	if n := count(t, db, `SELECT count(*) FROM alert_incidents WHERE closed_at IS NULL`); n != 1 {
		t.Fatalf("%d open incidents after 'could not check', want the one still open", n)
	}
	if n := count(t, db, `SELECT count(*) FROM alerts`); n != 1 {
		t.Fatalf("%d alerts, want only the break", n)
	}
}

// While an incident stays open it is alerted again once per Reminder (a
// day in production), never more often.
func TestReminderAtMostOncePerPeriod(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	ae.env.App.Alerts.Reminder = 400 * time.Millisecond
	ae.env.Emulator.DeleteHook("alice/api", ae.env.Emulator.Hooks("alice/api")[0].UUID)
	ae.checkWebhook(t)
	ctx := context.Background()
	reminders := func() int {
		return count(t, rawDB(t, ae.env), `SELECT count(*) FROM alerts WHERE kind = 'reminder'`)
	}
	for range 3 {
		ae.env.App.Alerts.Watch(ctx)
	}
	if n := reminders(); n != 0 {
		t.Fatalf("%d reminders right away", n)
	}
	time.Sleep(450 * time.Millisecond)
	for range 3 {
		ae.env.App.Alerts.Watch(ctx)
	}
	if n := reminders(); n != 1 {
		t.Fatalf("%d reminders after one period, want 1", n)
	}
	text := ae.outbox(t).Text(`[data-kind="reminder"] [data-testid="alert-title"]`)
	if !strings.Contains(text, "still invalid — deleted on Bitbucket") {
		t.Fatalf("reminder %q", text)
	}
}
