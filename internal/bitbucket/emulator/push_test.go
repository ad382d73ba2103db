package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint that records deliveries and answers with
// the statuses it is given, then 200.
type receiver struct {
	mu       sync.Mutex
	got      []received
	statuses []int
	srv      *httptest.Server
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{statuses: statuses}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{r.Header.Clone(), body})
		status := http.StatusOK
		if len(rc.statuses) > 0 {
			status, rc.statuses = rc.statuses[0], rc.statuses[1:]
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestPushDeliversSignedPayload(t *testing.T) {
	v := newEnv(t)
	rc := newReceiver(t)
	h, err := v.e.AddHook("alice/dotfiles", Hook{URL: rc.srv.URL + "/hook", Events: []string{"repo:push"}, Active: true, Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	// Neither an inactive hook nor one without repo:push gets the push.
	other := newReceiver(t)
	off, _ := v.e.AddHook("alice/dotfiles", Hook{URL: other.srv.URL, Events: []string{"repo:push"}, Active: true})
	v.e.SetHookActive("alice/dotfiles", off.UUID, false)
	_, _ = v.e.AddHook("alice/dotfiles", Hook{URL: other.srv.URL, Events: []string{"pullrequest:created"}, Active: true})

	res, err := v.e.Push("alice/dotfiles", "main", "Update README", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if res.Ref != "refs/heads/main" || !hex40.MatchString(res.New) || !hex40.MatchString(res.Old) || len(res.Deliveries) != 1 {
		t.Fatalf("result %+v", res)
	}
	d := res.Deliveries[0]
	if d.Status != http.StatusOK || d.Attempts != 1 || d.HookUUID != h.UUID {
		t.Errorf("delivery %+v", d)
	}
	if n := len(other.deliveries()); n != 0 {
		t.Errorf("%d deliveries to hooks that should get none", n)
	}
	got := rc.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	hd, body := got[0].header, got[0].body
	for k, want := range map[string]string{
		"Content-Type":     "application/json",
		"User-Agent":       "Bitbucket-Webhooks/2.0",
		"X-Event-Key":      "repo:push",
		"X-Hook-Uuid":      strings.Trim(h.UUID, "{}"),
		"X-Request-Uuid":   d.RequestUUID,
		"X-Attempt-Number": "1",
		"X-Hub-Signature":  sign("s3cret", body),
	} {
		if hd.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, hd.Get(k), want)
		}
	}

	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	sameShape(t, "push", recorded(t, "webhook_push.json"), raw)
	var p struct {
		Push struct {
			Changes []struct {
				New struct {
					Type, Name string
					Target     struct {
						Type, Hash, Message, Date string
						Author                    struct {
							Raw  string
							User struct{ Username string }
						}
					}
				}
				Old                     struct{ Target struct{ Hash string } }
				Created, Closed, Forced bool
			}
		}
		Repository struct {
			UUID     string `json:"uuid"`
			FullName string `json:"full_name"`
		}
		Actor struct{ Username string }
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	c := p.Push.Changes[0]
	if c.New.Type != "branch" || c.New.Name != "main" || c.New.Target.Hash != res.New || c.New.Target.Message != "Update README\n" ||
		c.New.Target.Type != "commit" || c.New.Target.Author.Raw != "Alice Liddell <alice@example.com>" ||
		c.New.Target.Author.User.Username != "alice" || c.Old.Target.Hash != res.Old || c.Created || c.Closed || c.Forced {
		t.Errorf("change %+v", c)
	}
	repo := v.e.repoByFullName("alice/dotfiles")
	if p.Repository.FullName != "alice/dotfiles" || p.Repository.UUID != repo.uuid || p.Actor.Username != "alice" {
		t.Errorf("repository %+v actor %+v", p.Repository, p.Actor)
	}

	// The next push's old is this push's new.
	res2, err := v.e.Push("alice/dotfiles", "main", "again", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if res2.Old != res.New {
		t.Errorf("second push old %s, want %s", res2.Old, res.New)
	}
}

func TestPushVariantsMatchRecordedShapes(t *testing.T) {
	v := newEnv(t)
	rc := newReceiver(t)
	if _, err := v.e.AddHook("alice/dotfiles", Hook{URL: rc.srv.URL, Events: []string{"repo:push"}, Active: true}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		file string
		run  func() (PushResult, error)
	}{
		{"webhook_push_branch_create.json", func() (PushResult, error) { return v.e.Push("alice/dotfiles", "develop", "Start develop", "alice") }},
		{"webhook_push_branch_delete.json", func() (PushResult, error) { return v.e.DeleteBranch("alice/dotfiles", "develop", "alice") }},
		{"webhook_push_tag_create.json", func() (PushResult, error) { return v.e.PushTag("alice/dotfiles", "v1.0", "alice") }},
		{"webhook_push_tag_delete.json", func() (PushResult, error) { return v.e.DeleteTag("alice/dotfiles", "v1.0", "alice") }},
	}
	for i, s := range steps {
		res, err := s.run()
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		if len(res.Deliveries) != 1 || res.Deliveries[0].Status != http.StatusOK {
			t.Fatalf("%s: %+v", s.file, res)
		}
		got := rc.deliveries()
		var raw map[string]any
		if err := json.Unmarshal(got[i].body, &raw); err != nil {
			t.Fatal(err)
		}
		sameShape(t, s.file, recorded(t, s.file), raw)
		change := raw["push"].(map[string]any)["changes"].([]any)[0].(map[string]any)
		switch {
		case strings.Contains(s.file, "create") && (change["old"] != nil || change["created"] != true):
			t.Errorf("%s: old %v created %v", s.file, change["old"], change["created"])
		case strings.Contains(s.file, "delete") && (change["new"] != nil || change["closed"] != true):
			t.Errorf("%s: new %v closed %v", s.file, change["new"], change["closed"])
		}
	}
	if _, err := v.e.DeleteBranch("alice/dotfiles", "develop", "alice"); err == nil {
		t.Error("deleting a missing branch succeeded")
	}
	if _, err := v.e.Push("alice/dotfiles", "main", "x", "nobody"); err == nil {
		t.Error("a push by an unknown user succeeded")
	}
}

func TestDeliveryRetries(t *testing.T) {
	v := newEnv(t)
	rc := newReceiver(t, http.StatusInternalServerError, http.StatusBadGateway)
	if _, err := v.e.AddHook("acme/api", Hook{URL: rc.srv.URL, Events: []string{"repo:push"}, Active: true}); err != nil {
		t.Fatal(err)
	}
	res, err := v.e.Push("acme/api", "main", "retry me", "alice")
	if err != nil {
		t.Fatal(err)
	}
	d := res.Deliveries[0]
	if d.Attempts != 3 || d.Status != http.StatusOK {
		t.Errorf("delivery %+v", d)
	}
	got := rc.deliveries()
	if len(got) != 3 {
		t.Fatalf("%d attempts received", len(got))
	}
	for i, g := range got {
		if g.header.Get("X-Request-UUID") != d.RequestUUID || g.header.Get("X-Attempt-Number") != string(rune('1'+i)) {
			t.Errorf("attempt %d: request %s number %s", i+1, g.header.Get("X-Request-UUID"), g.header.Get("X-Attempt-Number"))
		}
		if g.header.Get("X-Hub-Signature") != "" {
			t.Error("a hook without a secret got a signature")
		}
		if string(g.body) != string(got[0].body) {
			t.Error("a retry changed the body")
		}
	}

	// A 4xx is final; no answer at all is retried.
	v.e.DeleteHook("acme/api", v.e.Hooks("acme/api")[0].UUID)
	gone := newReceiver(t, http.StatusGone)
	_, _ = v.e.AddHook("acme/api", Hook{URL: gone.srv.URL, Events: []string{"repo:push"}, Active: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/"
	ln.Close()
	_, _ = v.e.AddHook("acme/api", Hook{URL: dead, Events: []string{"repo:push"}, Active: true})
	res, err = v.e.Push("acme/api", "main", "again", "bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.Deliveries {
		switch d.URL {
		case dead:
			if d.Attempts != 3 || d.Status != 0 || d.Error == "" {
				t.Errorf("dead receiver %+v", d)
			}
		default:
			if d.Attempts != 1 || d.Status != http.StatusGone {
				t.Errorf("410 receiver %+v", d)
			}
		}
	}
}
