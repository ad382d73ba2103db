package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/alerts"
	"tether/internal/apptest"
)

// hookReceiver is a chat server's incoming webhook on 127.0.0.1: it keeps
// every request, and answers with status (200 unless set).
type hookReceiver struct {
	*httptest.Server
	URL    string // with a token in the path, as Slack's have
	mu     sync.Mutex
	got    []received
	status int
}

type received struct {
	header http.Header
	body   []byte
}

func startReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	r.URL = r.Server.URL + "/services/T0TETHER/B0ALERTS/hookPATHtoken7Qx9"
	return r
}

func (r *hookReceiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func (r *hookReceiver) answer(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

// text decodes a delivery's Slack "text" and Tether's kind, after checking
// its signature the way the Notifications section tells receivers to.
func (r received) verified(t *testing.T, secret string) (text, kind string) {
	t.Helper()
	ts, sig := r.header.Get(alerts.TimestampHeader), r.header.Get(alerts.SignatureHeader)
	if !alerts.Verify([]byte(secret), ts, sig, r.body, time.Now(), 5*time.Minute) {
		t.Fatalf("delivery signature %q (timestamp %q) does not verify", sig, ts)
	}
	var p struct {
		Text   string `json:"text"`
		Tether struct {
			Kind string `json:"kind"`
		} `json:"tether"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("delivery body %s: %v", r.body, err)
	}
	return p.Text, p.Tether.Kind
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alertEnv is a Tether whose background work runs fast, with a mail
// server and a chat webhook receiver on 127.0.0.1 (so private addresses
// are allowed), alice's project alice/api and both channels set up.
type alertEnv struct {
	env     *apptest.Env
	c       *apptest.Client
	project *apptest.Page
	mail    *apptest.MailServer
	chat    *hookReceiver
	secret  string
}

func startAlertEnv(t *testing.T) *alertEnv {
	t.Helper()
	mail := apptest.StartMailServer(t)
	env, c := withRepo(t, apptest.Options{Env: map[string]string{
		"TETHER_SMTP_URL": mail.URL, "TETHER_SMTP_CA_FILE": mail.CAFile, "TETHER_SMTP_FROM": "Tether <tether@ci.test>",
		"TETHER_ALERTS_ALLOW_PRIVATE": "true",
	}})
	a := env.App
	a.Alerts.Every, a.Alerts.SendEvery, a.Recovery.Every = 30*time.Millisecond, 30*time.Millisecond, 30*time.Millisecond
	a.Alerts.Backoff = []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}
	project := create(t, c, "alice/api")
	ae := &alertEnv{env: env, c: c, project: project, mail: mail, chat: startReceiver(t), secret: "chat-signing-SECRET-0123456789"}

	team := c.Get("/team")
	p := c.HTMX(http.MethodPost, "/team/notifications/email", team, url.Values{"backer": {"on"}})
	apptest.MustStatus(t, p, http.StatusOK)
	p = c.HTMX(http.MethodPost, "/team/notifications/webhooks", team, url.Values{"url": {ae.chat.URL}, "secret": {ae.secret}})
	apptest.MustStatus(t, p, http.StatusOK)
	if n := p.Doc.Find(`[data-testid="channel"]`).Length(); n != 2 {
		t.Fatalf("%d channels after adding two:\n%s", n, p.Body)
	}
	return ae
}

func (ae *alertEnv) checkWebhook(t *testing.T) string {
	t.Helper()
	p := ae.c.HTMX(http.MethodPost, ae.project.URL.Path+"/webhook/check", ae.project, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	return p.Attr(`[data-testid="health-badge"]`, "data-status")
}

func (ae *alertEnv) outbox(t *testing.T) *apptest.Page {
	t.Helper()
	p := ae.c.Get("/team/outbox")
	apptest.MustStatus(t, p, http.StatusOK)
	return p
}

// The whole story through the real parts: a webhook deleted on
// Bitbucket → one alert (Outbox, e-mail over STARTTLS, signed webhook)
// naming the project and the reason, and no repeat; two branches pushed
// while it is broken; Regenerate → a recovery alert and the two missed
// branches offered; Start missed workflows → two workflows marked
// recovered, and a second press starts none.
func TestAlertsAndMissedWorkflows(t *testing.T) {
	t.Parallel()
	ae := startAlertEnv(t)
	env, c := ae.env, ae.c
	if s := ae.checkWebhook(t); s != "valid" {
		t.Fatalf("webhook %s before anything broke", s)
	}
	env.RunBackground()
	// Pushes made from now on carry commit dates after the project's
	// creation (Bitbucket's dates have whole seconds).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))

	// Broken: the hook is deleted on Bitbucket and a check records it.
	env.Emulator.DeleteHook("alice/api", env.Emulator.Hooks("alice/api")[0].UUID)
	if s := ae.checkWebhook(t); s != "invalid" {
		t.Fatalf("webhook %s after deletion", s)
	}
	waitFor(t, 10*time.Second, "the alert by e-mail and webhook", func() bool {
		return len(ae.mail.Mail()) == 1 && len(ae.chat.requests()) == 1
	})
	var box *apptest.Page
	waitFor(t, 5*time.Second, "both deliveries recorded as sent", func() bool {
		box = ae.outbox(t)
		return box.Doc.Find(`[data-testid="delivery"][data-status="sent"]`).Length() == 2
	})
	alert := box.Doc.Find(`[data-testid="alert"]`)
	if alert.Length() != 1 || alert.AttrOr("data-kind", "") != "broken" || alert.AttrOr("data-project", "") != "alice/api" ||
		!strings.Contains(alert.Text(), "deleted on Bitbucket") {
		t.Fatalf("Outbox after the break:\n%s", alert.Text())
	}
	m := ae.mail.Mail()[0]
	if !m.TLS || m.Username != ae.mail.User || len(m.To) != 1 || m.To[0] != "alice@example.com" ||
		m.Subject() != "Tether: webhook of alice/api is invalid — deleted on Bitbucket" || !strings.Contains(m.Text(), "is no longer on alice/api") ||
		!strings.Contains(m.Text(), "/projects/1") {
		t.Fatalf("mail: TLS %v user %q to %v\n%s", m.TLS, m.Username, m.To, m.Data)
	}
	text, kind := ae.chat.requests()[0].verified(t, ae.secret)
	if kind != "broken" || !strings.Contains(text, "webhook of alice/api") || !strings.Contains(text, "deleted on Bitbucket") {
		t.Fatalf("chat got %s: %q", kind, text)
	}

	// Still broken: checks and ticks repeat nothing.
	ae.checkWebhook(t)
	time.Sleep(300 * time.Millisecond)
	if len(ae.mail.Mail()) != 1 || len(ae.chat.requests()) != 1 || ae.outbox(t).Doc.Find(`[data-testid="alert"]`).Length() != 1 {
		t.Fatal("an alert was repeated while the webhook stayed broken")
	}

	// Two branches pushed while deliveries cannot arrive.
	var heads = map[string]string{}
	for _, push := range []struct{ branch, message string }{{"main", "Fix the login"}, {"release", "Cut 2.0"}, {"main", "Fix the fix"}} {
		res, err := env.Emulator.Push("alice/api", push.branch, push.message, "alice")
		if err != nil || len(res.Deliveries) != 0 {
			t.Fatalf("push %s: %v, %d deliveries", push.branch, err, len(res.Deliveries))
		}
		heads[push.branch] = res.New
	}

	// Regenerate: recovered, and the missed branches offered.
	p := c.HTMX(http.MethodPost, ae.project.URL.Path+"/webhook/regenerate", ae.project, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	waitFor(t, 10*time.Second, "the recovery alert", func() bool { return len(ae.mail.Mail()) == 2 && len(ae.chat.requests()) == 2 })
	if m := ae.mail.Mail()[1]; m.Subject() != "Tether: webhook of alice/api is valid again" {
		t.Fatalf("recovery mail:\n%s", m.Data)
	}
	if text, kind := ae.chat.requests()[1].verified(t, ae.secret); kind != "recovered" || !strings.Contains(text, "valid again") {
		t.Fatalf("chat got %s: %q", kind, text)
	}
	var missed *apptest.Page
	waitFor(t, 10*time.Second, "the missed branches", func() bool {
		missed = c.HTMX(http.MethodGet, ae.project.URL.Path+"/missed", ae.project, nil)
		return missed.Attr(`[data-testid="missed"]`, "data-count") == "2"
	})
	if !strings.Contains(missed.Text(`[data-testid="missed-title"]`), "2 branches changed while deliveries were not arriving") {
		t.Fatalf("missed section:\n%s", missed.Body)
	}
	for branch, head := range heads {
		if missed.Attr(`[data-branch="`+branch+`"]`, "data-commit") != head {
			t.Errorf("branch %s not offered at %s:\n%s", branch, head, missed.Body)
		}
	}

	// Start missed workflows: two, marked recovered; again: none.
	page := c.Get(ae.project.URL.Path)
	if !page.Has(`[data-testid="start-missed"]`) {
		t.Fatal("the project page does not offer Start missed workflows")
	}
	started := c.HTMX(http.MethodPost, ae.project.URL.Path+"/missed/start", page, nil)
	apptest.MustStatus(t, started, http.StatusOK)
	if !strings.Contains(started.Text(`[data-testid="missed-message"]`), "Started 2 workflows, marked recovered") ||
		started.Doc.Find(`#activity [data-testid="workflow"][data-trigger="recovered"]`).Length() != 2 {
		t.Fatalf("after Start:\n%s", started.Body)
	}
	again := c.HTMX(http.MethodPost, ae.project.URL.Path+"/missed/start", page, nil)
	apptest.MustStatus(t, again, http.StatusConflict)
	db := rawDB(t, env)
	if n := count(t, db, `SELECT count(*) FROM workflows WHERE trigger = 'recovered'`); n != 2 {
		t.Fatalf("%d recovered workflows after two presses", n)
	}
	for branch, head := range heads {
		if n := count(t, db, `SELECT count(*) FROM workflows WHERE trigger = 'recovered' AND ref_name = ? AND commit_hash = ?`, branch, head); n != 1 {
			t.Errorf("%s @ %s started %d times", branch, head, n)
		}
	}
	// The key, not only the check: the database refuses a second one.
	if _, err := writableDB(t, env).Exec(`INSERT INTO workflows (project_id, trigger, ref_type, ref_name, commit_hash, created_at)
		VALUES (1, 'recovered', 'branch', 'main', ?, datetime('now'))`, heads["main"]); err == nil {
		t.Fatal("the database took a second recovered workflow for the same (branch, commit)")
	}

	// The audit log records what was sent and what was started.
	log := c.Get("/team/audit")
	if n := log.Doc.Find(`[data-action="alert sent"]`).Length(); n != 4 {
		t.Errorf("%d 'alert sent' entries, want 4 (two alerts, two channels)", n)
	}
	if !log.Has(`[data-action="missed workflows started"]`) {
		t.Error("no audit entry for the started workflows")
	}

	// Nothing secret on any page, in the audit log or the logs.
	haystacks := []string{env.Logs.String(), c.Get("/team").Body, ae.outbox(t).Body, log.Body, c.Get(ae.project.URL.Path).Body}
	for _, secret := range []string{ae.secret, ae.mail.Pass, "hookPATHtoken7Qx9", "B0ALERTS"} {
		for i, h := range haystacks {
			if strings.Contains(h, secret) {
				t.Errorf("%q appears in haystack %d", secret, i)
			}
		}
	}
}

// The same webhook URL added twice would send every alert twice: the
// second Add webhook says so on the URL field and stores nothing.
func TestTheSameAlertWebhookIsAddedOnce(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	team := tm.alice.Get("/team")
	form := url.Values{"url": {"https://chat.example.com/hooks/T0/B0/x"}}
	apptest.MustStatus(t, tm.alice.HTMX(http.MethodPost, "/team/notifications/webhooks", team, form), http.StatusOK)
	p := tm.alice.HTMX(http.MethodPost, "/team/notifications/webhooks", team, form)
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Alerts already go to this webhook") {
		t.Fatalf("the same URL again: %d\n%s", p.Status, p.Body)
	}
	var n int
	rawDB(t, tm.env).QueryRow(`SELECT count(*) FROM alert_channels WHERE kind = 'webhook'`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d webhook channels stored, want 1", n)
	}
}
