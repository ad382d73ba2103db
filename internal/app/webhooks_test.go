package app_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
	"tether/internal/tether"
	"tether/internal/webhooks"
)

// hooked is a project with a webhook, and what a sender needs to sign
// deliveries to it.
type hooked struct {
	env      *apptest.Env
	c        *apptest.Client
	project  *apptest.Page
	hookURL  string
	hook     emulator.Hook
	repoUUID string
}

func withHook(t *testing.T) *hooked {
	t.Helper()
	return withHookOpts(t, apptest.Options{})
}

// withHookOpts is withHook on a Tether started with opts.
func withHookOpts(t *testing.T, opts apptest.Options) *hooked {
	t.Helper()
	env, c := withRepo(t, opts)
	project := create(t, c, "alice/api")
	hooks := env.Emulator.Hooks("alice/api")
	if len(hooks) != 1 {
		t.Fatalf("%d hooks on Bitbucket, want 1", len(hooks))
	}
	var uuid string
	rawDB(t, env).QueryRow(`SELECT repo_uuid FROM projects`).Scan(&uuid)
	return &hooked{env: env, c: c, project: project, hookURL: hooks[0].URL, hook: hooks[0], repoUUID: uuid}
}

// recorded returns a payload Bitbucket itself produced, with its repository
// rewritten to the project's and every other byte as recorded.
func (h *hooked) recorded(t *testing.T, name string) []byte {
	t.Helper()
	return h.payload(t, "recorded", name)
}

// payload reads testdata/dir/name of the bitbucket package (recorded/ or
// events/) and rewrites its repository to the project's.
func (h *hooked) payload(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bitbucket", "testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"), []byte(h.repoUUID))
	return bytes.ReplaceAll(b, []byte("brydzewski/foo"), []byte("alice/api"))
}

// recordedHead is the new head commit of the recorded repo:push payload.
const recordedHead = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"

// freshPush returns the push payload with a new random head commit: a
// distinct push, where sending the same bytes again would be a replay.
func freshPush(push []byte) []byte {
	b := make([]byte, 20)
	rand.Read(b)
	return bytes.ReplaceAll(push, []byte(recordedHead), fmt.Appendf(nil, "%x", b))
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// deliver posts body to url with Bitbucket's headers; edit may change them.
func deliver(t *testing.T, url, event, hookUUID, secret string, body []byte, edit func(http.Header)) (int, string) {
	t.Helper()
	return deliverFrom(t, url, event, hookUUID, secret, bytes.NewReader(body), edit)
}

// deliverFrom is deliver from a reader: a *bytes.Reader is sent with its
// length, any other reader chunked. The signature is over what it yields.
func deliverFrom(t *testing.T, url, event, hookUUID, secret string, body io.Reader, edit func(http.Header)) (int, string) {
	t.Helper()
	raw, _ := io.ReadAll(body)
	if _, sized := body.(*bytes.Reader); sized {
		body = bytes.NewReader(raw)
	} else {
		body = io.MultiReader(bytes.NewReader(raw))
	}
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
	req.Header.Set("X-Event-Key", event)
	req.Header.Set("X-Hook-UUID", strings.Trim(hookUUID, "{}"))
	req.Header.Set("X-Request-UUID", newUUID())
	req.Header.Set("X-Attempt-Number", "1")
	req.Header.Set("X-Hub-Signature", bitbucket.Sign([]byte(secret), raw))
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

func (h *hooked) send(t *testing.T, event string, body []byte, edit func(http.Header)) (int, string) {
	t.Helper()
	return deliver(t, h.hookURL, event, h.hook.UUID, h.hook.Secret, body, edit)
}

// counts are the project's accepted deliveries, refused ones (counted per
// reason) and workflows.
func (h *hooked) counts(t *testing.T) (accepted, refused, workflows int) {
	t.Helper()
	db := rawDB(t, h.env)
	return count(t, db, `SELECT count(*) FROM deliveries WHERE status = 'accepted'`),
		count(t, db, `SELECT coalesce(sum(count), 0) FROM delivery_refusals`),
		count(t, db, `SELECT count(*) FROM workflows`)
}

// waitRefused waits until n deliveries in all were refused for reason
// (refusals are recorded a few times a second).
func (h *hooked) waitRefused(t *testing.T, reason string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := count(t, rawDB(t, h.env), `SELECT coalesce(sum(count), 0) FROM delivery_refusals WHERE reason = ?`, reason)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries refused for %q, want %d", got, reason, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRecordedPayloadsThroughTheReceiver(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	cases := []struct {
		file, event        string
		workflows          int
		refType, ref, hash string
	}{
		{"webhook_push.json", "repo:push", 1, "branch", "master", "141977f"},
		{"webhook_push_branch_create.json", "repo:push", 1, "branch", "develop", ""},
		{"webhook_push_branch_delete.json", "repo:push", 0, "", "", ""},
		{"webhook_push_tag_create.json", "repo:push", 1, "tag", "feature/x", ""},
		{"webhook_push_tag_delete.json", "repo:push", 0, "", "", ""},
		{"webhook_pr_created.json", "pullrequest:created", 1, "branch", "", ""},
		{"webhook_pr_updated.json", "pullrequest:updated", 1, "branch", "", ""},
	}
	total := 0
	for _, tc := range cases {
		status, body := h.send(t, tc.event, h.recorded(t, tc.file), nil)
		if status/100 != 2 {
			t.Fatalf("%s: %d %s", tc.file, status, body)
		}
		total += tc.workflows
		if _, _, n := h.counts(t); n != total {
			t.Fatalf("%s: %d workflows in all, want %d", tc.file, n, total)
		}
		if tc.workflows == 0 {
			continue
		}
		var refType, ref, hash, message, author string
		rawDB(t, h.env).QueryRow(`SELECT ref_type, ref_name, commit_hash, message, author FROM workflows ORDER BY id DESC LIMIT 1`).
			Scan(&refType, &ref, &hash, &message, &author)
		if refType != tc.refType || (tc.ref != "" && ref != tc.ref) || !strings.HasPrefix(hash, tc.hash) || len(hash) < 7 || author == "" {
			t.Errorf("%s: workflow %s %s %s by %q", tc.file, refType, ref, hash, author)
		}
	}
	// The project page lists them, newest first.
	activity := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/activity", h.project, nil)
	rows := activity.Doc.Find(`[data-testid="workflow"]`)
	if rows.Length() != total {
		t.Fatalf("activity lists %d workflows, want %d", rows.Length(), total)
	}
	if ref, _ := rows.First().Attr("data-ref"); ref == "master" {
		t.Fatal("workflows not newest first")
	}
	if activity.Doc.Find(`[data-testid="delivery"]`).Length() != len(cases) {
		t.Fatal("deliveries not all listed")
	}
}

func TestDeliveryRefusals(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	push := h.recorded(t, "webhook_push.json")
	big := append(bytes.Repeat([]byte(" "), 256<<10), push...)
	otherRepo := bytes.ReplaceAll(push, []byte(h.repoUUID), []byte("{00000000-0000-0000-0000-000000000000}"))
	fat := strings.Repeat("x", 9000)
	cases := []struct {
		name    string
		url     string
		body    io.Reader
		edit    func(http.Header)
		status  int
		answer  string
		counted string // the reason the refusal is counted under; "" when not counted
	}{
		{"bad signature", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Set("X-Hub-Signature", bitbucket.Sign([]byte("wrong"), push)) }, 401, "bad signature", webhooks.ReasonBadSignature},
		{"missing signature", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Del("X-Hub-Signature") }, 401, "missing signature", webhooks.ReasonNoSignature},
		{"sha1 signature", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Set("X-Hub-Signature", "sha1=0000") }, 401, "bad signature", webhooks.ReasonBadSignature},
		{"unknown hook", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Set("X-Hook-UUID", newUUID()) }, 403, "unknown hook", webhooks.ReasonUnknownHook},
		{"malformed JSON", h.hookURL, strings.NewReader(`{"push": `), nil, 400, "malformed JSON", webhooks.ReasonMalformed},
		{"missing event key", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Del("X-Event-Key") }, 400, "missing header X-Event-Key", "missing header X-Event-Key"},
		{"missing hook uuid", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Del("X-Hook-UUID") }, 400, "missing header X-Hook-UUID", "missing header X-Hook-UUID"},
		{"missing request uuid", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Del("X-Request-UUID") }, 400, "missing header X-Request-UUID", "missing header X-Request-UUID"},
		{"fat request uuid", h.hookURL, bytes.NewReader(push), func(hd http.Header) { hd.Set("X-Request-UUID", fat) }, 400, "header too long", webhooks.ReasonLongHeader},
		// Declared too large: refused before anything is read or looked up.
		{"too large", h.hookURL, bytes.NewReader(big), nil, 413, "256 KB", ""},
		// Sent without a length: read up to the limit, then refused.
		{"too large, chunked", h.hookURL, io.MultiReader(bytes.NewReader(big)), nil, 413, "larger than 256 KB", webhooks.ReasonTooLarge},
		{"another repository", h.hookURL, bytes.NewReader(otherRepo), nil, 400, "another repository", webhooks.ReasonOtherRepo},
		{"unknown URL", h.env.URL + "/hooks/bitbucket/no-such-token", bytes.NewReader(push), nil, 404, "no project", ""},
	}
	counted := map[string]int{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, refusedBefore, _ := h.counts(t)
			status, body := deliverFrom(t, tc.url, "repo:push", h.hook.UUID, h.hook.Secret, tc.body, tc.edit)
			if status != tc.status || !strings.Contains(body, tc.answer) {
				t.Fatalf("%d %q, want %d %q", status, body, tc.status, tc.answer)
			}
			if tc.counted == "" {
				time.Sleep(3 * webhooksRecordEvery)
				if _, refused, _ := h.counts(t); refused != refusedBefore {
					t.Fatalf("a refusal that writes nothing was recorded (%d → %d)", refusedBefore, refused)
				}
			} else {
				counted[tc.counted]++
				h.waitRefused(t, tc.counted, counted[tc.counted])
			}
			if accepted, _, workflows := h.counts(t); accepted != 0 || workflows != 0 {
				t.Fatalf("a refused delivery was processed: %d accepted, %d workflows", accepted, workflows)
			}
		})
	}
	logs := h.env.Logs.String()
	if strings.Contains(logs, h.hook.Secret) || strings.Contains(logs, fat[:100]) {
		t.Fatal("the hook secret or a header's contents were logged")
	}
	var samples string
	rawDB(t, h.env).QueryRow(`SELECT samples FROM delivery_refusals WHERE reason = ?`, webhooks.ReasonLongHeader).Scan(&samples)
	if strings.Contains(samples, fat[:tether.MaxSampleField+1]) || !strings.Contains(samples, fat[:tether.MaxSampleField]) {
		t.Fatalf("a sample keeps more (or less) than %d characters of a header: %s", tether.MaxSampleField, samples)
	}
	activity := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/activity", h.project, nil)
	row := activity.Doc.Find(`[data-testid="refusal"][data-reason="` + webhooks.ReasonBadSignature + `"]`)
	if n, _ := row.Attr("data-count"); n != "2" || !strings.Contains(row.Text(), "bad signature") {
		t.Fatalf("the bad signatures are not listed with their count: %q %q", n, row.Text())
	}
	if activity.Doc.Find(`[data-testid="refusal"]`).Length() != len(counted) {
		t.Fatalf("%d refusal rows, want one per reason (%d)", activity.Doc.Find(`[data-testid="refusal"]`).Length(), len(counted))
	}
}

// webhooksRecordEvery is how often the receiver records refusals (a
// quarter second); a test waits a few of these to see that none came.
const webhooksRecordEvery = 250 * time.Millisecond

func TestHookUUIDWithOrWithoutBraces(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	push := h.recorded(t, "webhook_push.json")
	for _, uuid := range []string{strings.Trim(h.hook.UUID, "{}"), h.hook.UUID, strings.ToUpper(h.hook.UUID)} {
		status, body := h.send(t, "repo:push", freshPush(push), func(hd http.Header) { hd.Set("X-Hook-UUID", uuid) })
		if status != http.StatusAccepted {
			t.Fatalf("hook uuid %q: %d %s", uuid, status, body)
		}
	}
}

func TestDuplicateDeliveryProcessedOnce(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	push := h.recorded(t, "webhook_push.json")
	request := newUUID()
	for attempt := 1; attempt <= 3; attempt++ {
		status, body := h.send(t, "repo:push", push, func(hd http.Header) {
			hd.Set("X-Request-UUID", request)
			hd.Set("X-Attempt-Number", fmt.Sprint(attempt))
		})
		if status/100 != 2 {
			t.Fatalf("attempt %d: %d %s", attempt, status, body)
		}
	}
	if accepted, _, workflows := h.counts(t); accepted != 1 || workflows != 1 {
		t.Fatalf("%d deliveries, %d workflows after 3 attempts of one delivery", accepted, workflows)
	}
}

func TestConcurrentDeliveriesAllStored(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	push := h.recorded(t, "webhook_push.json")
	const n = 300
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], _ = h.send(t, "repo:push", freshPush(push), nil)
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", i, s)
		}
	}
	if accepted, _, workflows := h.counts(t); accepted != n || workflows != n {
		t.Fatalf("%d deliveries and %d workflows stored, want %d", accepted, workflows, n)
	}
	if strings.Contains(h.env.Logs.String(), "database is locked") {
		t.Fatal("database is locked")
	}
}

// A push on Bitbucket reaches Tether and starts a workflow.
func TestPushStartsWorkflow(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	res, err := h.env.Emulator.Push("alice/api", "main", "Fix the build", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deliveries) != 1 || res.Deliveries[0].Status != http.StatusAccepted {
		t.Fatalf("delivery: %+v", res.Deliveries)
	}
	activity := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/activity", h.project, nil)
	row := activity.Doc.Find(`[data-testid="workflow"]`).First()
	if commit, _ := row.Attr("data-commit"); commit != res.New || !strings.Contains(row.Text(), "Fix the build") {
		t.Fatalf("workflow row %q (commit %s)", row.Text(), res.New)
	}
	if activity.Text(`[data-testid="last-delivery"]`) == "Last accepted delivery: never" {
		t.Fatal("last delivery not shown")
	}
}

func hookStatus(p *apptest.Page) (status, reason string) {
	b := p.Doc.Find(`#webhook [data-testid="health-badge"]`).First()
	s, _ := b.Attr("data-status")
	r, _ := b.Attr("data-reason")
	return s, r
}

func checkHook(t *testing.T, c *apptest.Client, project *apptest.Page) *apptest.Page {
	t.Helper()
	p := c.HTMX(http.MethodPost, project.URL.Path+"/webhook/check", project, nil)
	apptest.MustStatus(t, p, http.StatusOK)
	return p
}

func TestWebhookHealth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		breakIt        func(h *hooked)
		status, reason string
	}{
		{"deleted", func(h *hooked) { h.env.Emulator.DeleteHook("alice/api", h.hook.UUID) }, "invalid", "deleted on Bitbucket"},
		{"deactivated", func(h *hooked) { h.env.Emulator.SetHookActive("alice/api", h.hook.UUID, false) }, "invalid", "deactivated"},
		{"wrong URL", func(h *hooked) {
			h.env.Emulator.EditHook("alice/api", h.hook.UUID, "https://example.com/hook", nil, false)
		}, "invalid", "points at the wrong URL"},
		{"events missing", func(h *hooked) {
			h.env.Emulator.EditHook("alice/api", h.hook.UUID, "", []string{"pullrequest:created"}, false)
		}, "invalid", "repo:push missing"},
		{"no secret", func(h *hooked) { h.env.Emulator.EditHook("alice/api", h.hook.UUID, "", nil, true) }, "invalid", "no secret"},
		{"oauth revoked", func(h *hooked) { h.env.Emulator.RevokeAuthorization("alice", apptest.ClientID) }, "invalid", "OAuth permissions revoked"},
		{"owner lost access", func(h *hooked) { h.env.Emulator.SetRepoPermission("alice", "alice/api", "") }, "invalid", "owner no longer has access to the repository"},
		{"bitbucket 503", func(h *hooked) { h.env.Emulator.FailAPI(emulator.Failure{Status: 503}) }, "unknown", "could not check"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := withHook(t)
			if s, _ := hookStatus(h.project); s != "valid" {
				t.Fatalf("fresh webhook %q", s)
			}
			tc.breakIt(h)
			row := checkHook(t, h.c, h.project)
			if s, r := hookStatus(row); s != tc.status || r != tc.reason {
				t.Fatalf("got %s/%q, want %s/%q: %s", s, r, tc.status, tc.reason, row.Text(`[data-testid="health-detail"]`))
			}
		})
	}
}

func TestRegenerateWebhook(t *testing.T) {
	t.Parallel()
	regenerate := func(h *hooked) *apptest.Page {
		return h.c.HTMX(http.MethodPost, h.project.URL.Path+"/webhook/regenerate", h.project, nil)
	}
	activeHook := func(t *testing.T, h *hooked) string {
		var u string
		rawDB(t, h.env).QueryRow(`SELECT hook_uuid FROM webhooks WHERE state = 'active'`).Scan(&u)
		return "{" + u + "}"
	}
	t.Run("success, then pushes use the new hook and in-flight ones from the old are accepted", func(t *testing.T) {
		h := withHook(t)
		h.env.Emulator.DeleteHook("alice/api", h.hook.UUID)
		if s, _ := hookStatus(checkHook(t, h.c, h.project)); s != "invalid" {
			t.Fatal("hook not invalid after deletion")
		}
		p := regenerate(h)
		apptest.MustStatus(t, p, http.StatusOK)
		if s, _ := hookStatus(p); s != "valid" {
			t.Fatalf("after Regenerate %q: %s", s, p.Body)
		}
		hooks := h.env.Emulator.Hooks("alice/api")
		if len(hooks) != 1 || hooks[0].UUID == h.hook.UUID || !strings.EqualFold(hooks[0].UUID, activeHook(t, h)) {
			t.Fatalf("hooks on Bitbucket %+v", hooks)
		}
		res, _ := h.env.Emulator.Push("alice/api", "main", "after regenerate", "alice")
		if len(res.Deliveries) != 1 || res.Deliveries[0].Status != http.StatusAccepted {
			t.Fatalf("push after Regenerate: %+v", res.Deliveries)
		}
		// A delivery the old hook had in flight, signed with the old secret.
		if status, body := h.send(t, "repo:push", h.recorded(t, "webhook_push.json"), nil); status != http.StatusAccepted {
			t.Fatalf("in-flight delivery from the replaced hook: %d %s", status, body)
		}
	})
	t.Run("create fails", func(t *testing.T) {
		h := withHook(t)
		h.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: "POST", Status: 500})
		p := regenerate(h)
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="webhook-message"]`), "old webhook stays in force") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if hooks := h.env.Emulator.Hooks("alice/api"); len(hooks) != 1 || hooks[0].UUID != h.hook.UUID || activeHook(t, h) != strings.ToLower(h.hook.UUID) {
			t.Fatalf("hooks %+v, active %s", hooks, activeHook(t, h))
		}
		if status, _ := h.send(t, "repo:push", h.recorded(t, "webhook_push.json"), nil); status != http.StatusAccepted {
			t.Fatal("the old hook no longer works")
		}
	})
	t.Run("store fails", func(t *testing.T) {
		h := withHook(t)
		if _, err := writableDB(t, h.env).Exec(`CREATE TRIGGER fail_hook BEFORE INSERT ON webhooks BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
			t.Fatal(err)
		}
		p := regenerate(h)
		if p.Status != http.StatusBadGateway || !strings.Contains(p.Text(`[data-testid="webhook-message"]`), "old webhook stays in force") {
			t.Fatalf("%d %s", p.Status, p.Body)
		}
		if hooks := h.env.Emulator.Hooks("alice/api"); len(hooks) != 1 || hooks[0].UUID != h.hook.UUID {
			t.Fatalf("after a failed store: hooks %+v", hooks)
		}
	})
	t.Run("delete fails", func(t *testing.T) {
		h := withHook(t)
		h.env.Emulator.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: "DELETE", Status: 500})
		p := regenerate(h)
		apptest.MustStatus(t, p, http.StatusOK)
		if !strings.Contains(p.Text(`[data-testid="webhook-message"]`), "could not remove the old") {
			t.Fatalf("no warning: %s", p.Body)
		}
		if s, _ := hookStatus(p); s != "valid" {
			t.Fatalf("new hook %q", s)
		}
		if n := len(h.env.Emulator.Hooks("alice/api")); n != 2 {
			t.Fatalf("%d hooks on Bitbucket", n)
		}
		h.env.Emulator.ClearFailures()
		regenerate(h)
		if hooks := h.env.Emulator.Hooks("alice/api"); len(hooks) != 1 || !strings.EqualFold(hooks[0].UUID, activeHook(t, h)) {
			t.Fatalf("leftover hooks not removed: %+v", hooks)
		}
	})
}

func TestTroubleshootingWebhookAndDeliverySteps(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	page := h.c.Get("/troubleshooting")
	step := func(p *apptest.Page, name string) (string, string) {
		s := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-` + name + `"]`)
		st, _ := s.Attr("data-status")
		return st, s.Text()
	}
	p := h.c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	if s, _ := step(p, "webhook"); s != "ok" {
		t.Fatalf("webhook step %q", s)
	}
	if s, text := step(p, "delivery"); s != "unknown" || !strings.Contains(text, "No delivery received yet") {
		t.Fatalf("delivery step before any push: %q %s", s, text)
	}
	h.env.Emulator.Push("alice/api", "main", "hello", "alice")
	p = h.c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	if s, _ := step(p, "delivery"); s != "ok" {
		t.Fatalf("delivery step after a push: %q", s)
	}
	// Bitbucket's hook loses its secret: deliveries are refused, the
	// webhook is broken, and both steps say so with Regenerate at hand.
	h.env.Emulator.EditHook("alice/api", h.hook.UUID, "", nil, true)
	h.env.Emulator.Push("alice/api", "main", "unsigned", "alice")
	h.waitRefused(t, webhooks.ReasonNoSignature, 1)
	p = h.c.HTMX(http.MethodGet, "/troubleshooting/checks", page, nil)
	if s, text := step(p, "webhook"); s != "failed" || !strings.Contains(text, "no secret") {
		t.Fatalf("webhook step: %q %s", s, text)
	}
	// One cause, one fix: the refused deliveries wait on the webhook.
	if s, text := step(p, "delivery"); s != "waiting" || !strings.Contains(text, "Waiting on: Webhook") || !strings.Contains(text, "missing signature") {
		t.Fatalf("delivery step: %q %s", s, text)
	}
	if n := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="regenerate"]`).Length(); n != 1 {
		t.Fatalf("%d Regenerate buttons for one broken webhook", n)
	}
	fix, _ := p.Doc.Find(`[data-testid="project-alice/api"] [data-testid="step-webhook"] [data-testid="regenerate"]`).Closest("form").Attr("hx-post")
	if s, _ := hookStatus(h.c.HTMX(http.MethodPost, fix, page, nil)); s != "valid" {
		t.Fatalf("Regenerate from troubleshooting: %q", s)
	}
}

// A captured delivery sent again under a fresh X-Request-UUID is a replay:
// acknowledged (so a sender stops), counted, and it starts nothing — for a
// day; after that the same body is a delivery again, which still starts
// nothing: its commit was built (the workflow key).
func TestReplayedDeliveryStartsNothing(t *testing.T) {
	t.Parallel()
	h := withHook(t)
	push := freshPush(h.recorded(t, "webhook_push.json"))
	if status, body := h.send(t, "repo:push", push, nil); status != http.StatusAccepted {
		t.Fatalf("first delivery: %d %s", status, body)
	}
	for range 3 {
		status, body := h.send(t, "repo:push", push, nil) // a new X-Request-UUID each time
		if status != http.StatusOK || !strings.Contains(body, "not processed again") {
			t.Fatalf("replay: %d %s", status, body)
		}
	}
	if accepted, _, workflows := h.counts(t); accepted != 1 || workflows != 1 {
		t.Fatalf("after 3 replays: %d deliveries, %d workflows, want 1 and 1", accepted, workflows)
	}
	h.waitRefused(t, webhooks.ReasonReplay, 3)

	// A day later the body is remembered no more.
	if _, err := writableDB(t, h.env).Exec(`UPDATE delivery_digests SET received_at = datetime('now', '-25 hours')`); err != nil {
		t.Fatal(err)
	}
	if status, body := h.send(t, "repo:push", push, nil); status != http.StatusAccepted || !strings.Contains(body, "no new commit") {
		t.Fatalf("the same body after 25 hours: %d %s", status, body)
	}
	if accepted, _, workflows := h.counts(t); accepted != 2 || workflows != 1 {
		t.Fatalf("%d deliveries and %d workflows after the day-old body came again, want 2 and 1", accepted, workflows)
	}
}

// Retention deletes deliveries and workflows older than the configured
// days, and beyond the configured most recent per project, in batches
// while deliveries keep arriving, which all get stored.
func TestRetentionPrunesWhileDeliveriesArrive(t *testing.T) {
	t.Parallel()
	env, c := withRepo(t, apptest.Options{Env: map[string]string{"TETHER_RETENTION_DAYS": "7", "TETHER_RETENTION_PER_PROJECT": "300"}})
	project := create(t, c, "alice/api")
	hook := env.Emulator.Hooks("alice/api")[0]
	var uuid string
	rawDB(t, env).QueryRow(`SELECT repo_uuid FROM projects`).Scan(&uuid)
	h := &hooked{env: env, c: c, project: project, hookURL: hook.URL, hook: hook, repoUUID: uuid}
	push := h.recorded(t, "webhook_push.json")
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for range 1000 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if status, _ := h.send(t, "repo:push", freshPush(push), nil); status != http.StatusAccepted {
				t.Errorf("delivery: %d", status)
			}
		})
	}
	wg.Wait()
	// The oldest hundred are ten days old.
	db := writableDB(t, env)
	if _, err := db.Exec(`UPDATE deliveries SET received_at = datetime('now', '-10 days') WHERE id <= 100`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE workflows SET created_at = datetime('now', '-10 days') WHERE id <= 100`); err != nil {
		t.Fatal(err)
	}

	// Deliveries keep arriving while it prunes.
	stop := make(chan struct{})
	arrived := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				arrived <- n
				return
			default:
			}
			if status, _ := h.send(t, "repo:push", freshPush(push), nil); status != http.StatusAccepted {
				t.Errorf("a delivery during pruning: %d", status)
			}
			n++
		}
	}()
	pruned, err := env.App.Pruner.Prune(t.Context())
	close(stop)
	during := <-arrived
	if err != nil {
		t.Fatal(err)
	}
	accepted, _, workflows := h.counts(t)
	if pruned < 700 || accepted < 300 || accepted > 300+during || workflows < 300 || workflows > 300+during {
		t.Fatalf("pruned %d rows: %d deliveries and %d workflows left (%d arrived meanwhile), want 300 each", pruned, accepted, workflows, during)
	}
	if n := count(t, rawDB(t, env), `SELECT count(*) FROM deliveries WHERE received_at < datetime('now', '-7 days')`); n != 0 {
		t.Fatalf("%d deliveries older than 7 days kept", n)
	}
	// The newest are the ones kept, and the page still lists them.
	activity := h.c.HTMX(http.MethodGet, h.project.URL.Path+"/activity", h.project, nil)
	if activity.Doc.Find(`[data-testid="delivery"]`).Length() != 20 {
		t.Fatal("the project's recent deliveries are not listed after pruning")
	}
	t.Logf("pruned %d rows in batches while %d deliveries arrived", pruned, during)
}
