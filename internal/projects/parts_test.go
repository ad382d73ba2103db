package projects

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"tether/db"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
	"tether/internal/problem"
	"tether/internal/repourl"
	"tether/internal/secrets"
	"tether/internal/tether"
	"tether/internal/webhooks"
)

// rig is one project on alice/api, made by the real flow: the emulator
// over HTTP, the real client, a real SQLite store.
type rig struct {
	t     *testing.T
	e     *emulator.Emulator
	store *db.Store
	svc   *Service
	clock *clockwork.FakeClock
	p     tether.Project
	token string
	user  int64
	org   int64
	key   emulator.DeployKey // in force on alice/api at the start
	hook  emulator.Hook
}

// conns hands out one token, as connections.Do would.
type conns struct{ token string }

func (c conns) Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error {
	return fn(bitbucket.WithConnection(ctx, userID), c.token)
}

type noCheck struct{}

func (noCheck) Check(context.Context, tether.Project) error { return nil }

// clientTimeout is how long the client waits for Bitbucket in these
// tests; a stall of stall outlasts it.
const (
	clientTimeout = 300 * time.Millisecond
	stall         = time.Second
)

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	e := emulator.New(emulator.Config{Consumers: []emulator.Consumer{{Key: "k", Secret: "s", Scopes: []string{"account", "repository:admin", "webhook"}}}})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	e.AddUser(emulator.User{Username: "alice", DisplayName: "Alice", Email: "alice@example.com"})
	for _, ws := range []string{"alice", "acme"} {
		e.AddWorkspaceMember(ws, "alice", true)
	}
	e.AddRepository("alice", "api", true)
	e.AddRepository("alice", "site", true)
	token, err := e.GrantAccessToken("alice", "k")
	if err != nil {
		t.Fatal(err)
	}
	bb := bitbucket.New(bitbucket.Config{WebURL: srv.URL, APIURL: srv.URL + "/2.0", HTTPClient: &http.Client{Timeout: clientTimeout}})
	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	store, err := db.Open(ctx, filepath.Join(t.TempDir(), "tether.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	u, err := store.CreatePasswordUser(ctx, "Alice", "alice@example.com", "x")
	if err != nil {
		t.Fatal(err)
	}
	org, err := store.CreateOrganization(ctx, u.ID, "Acme")
	if err != nil {
		t.Fatal(err)
	}
	clock := clockwork.NewFakeClockAt(time.Now())
	svc := New(slog.New(slog.NewTextHandler(io.Discard, nil)), store, conns{token}, bb, noCheck{},
		Config{HookBase: "https://ci.example.com/hooks/bitbucket/", Instance: "ci.example.com", Hosts: repourl.Hosts{WebURL: srv.URL, SSHAddr: "127.0.0.1:7999"}, Clock: clock})
	p, err := svc.Create(ctx, org.ID, u.ID, "alice/api")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, e: e, store: store, svc: svc, clock: clock, p: p, token: token, user: u.ID, org: org.ID,
		key: e.DeployKeys("alice/api")[0], hook: e.Hooks("alice/api")[0]}
	return r
}

// onBitbucket is what the repository holds: deploy key ids and hook uuids.
func (r *rig) onBitbucket(fullName string) (keys []int, hooks []string) {
	for _, k := range r.e.DeployKeys(fullName) {
		keys = append(keys, k.ID)
	}
	for _, h := range r.e.Hooks(fullName) {
		hooks = append(hooks, tether.NormalizeHookUUID(h.UUID))
	}
	return keys, hooks
}

// stored is the key id and hook uuid in force, as stored.
func (r *rig) stored() (int, string) {
	k, _ := r.store.ActiveDeployKeyPublic(context.Background(), r.p.ID)
	h, _ := r.store.ActiveWebhookPublic(context.Background(), r.p.ID)
	return k.BitbucketKeyID, h.UUID
}

func (r *rig) leftovers() []tether.Leftover {
	ls, err := r.store.ProjectLeftovers(context.Background(), r.p.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	return ls
}

func (r *rig) audit() string {
	entries, err := r.store.AuditLog(context.Background(), r.org, tether.AuditFilter{Limit: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range entries {
		b.WriteString(a.Action + ": " + a.Detail + "\n")
	}
	return b.String()
}

// cleanUntil lets the Cleanup run, the clock past each backoff, until
// done says the repository is as wanted.
func (r *rig) cleanUntil(done func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			r.t.Fatalf("the cleanup did not finish; leftovers %+v", r.leftovers())
		}
		r.clock.Advance(time.Hour)
		r.svc.Cleanup.Step(context.Background())
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) waitFor(what string, done func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			r.t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantKind(t *testing.T, err error, kind problem.Kind, says ...string) {
	t.Helper()
	pr, ok := problem.As(err)
	if !ok || pr.Kind != kind {
		t.Fatalf("err = %v, want a problem of kind %d", err, kind)
	}
	for _, s := range says {
		if !strings.Contains(pr.Message, s) {
			t.Errorf("message %q does not say %q", pr.Message, s)
		}
	}
}

// The flow's failure points, one by one: what the person is told, what is
// on Bitbucket and what is stored afterwards.
func TestReplaceAPartFailurePoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, r *rig)
	}{
		{"the create is refused: nothing changes", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: http.MethodPost, Status: 403})
			_, err := r.svc.RegenerateKey(ctx, r.user, r.p)
			wantKind(t, err, problem.Forbidden, "old key stays in force")
			if keys, _ := r.onBitbucket("alice/api"); len(keys) != 1 || keys[0] != r.key.ID {
				t.Errorf("keys on Bitbucket %v", keys)
			}
			if k, _ := r.stored(); k != r.key.ID || len(r.leftovers()) != 0 {
				t.Errorf("stored key %d, leftovers %+v", k, r.leftovers())
			}
		}},
		{"the create answers 500 and made nothing: nothing changes, nothing to watch", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: http.MethodPost, Status: 500})
			_, err := r.svc.RegenerateWebhook(ctx, r.user, r.p)
			wantKind(t, err, problem.Unavailable, "answered 500", "old webhook stays in force")
			if _, hooks := r.onBitbucket("alice/api"); len(hooks) != 1 || len(r.leftovers()) != 0 {
				t.Errorf("hooks %v, leftovers %+v", hooks, r.leftovers())
			}
		}},
		{"the create answers 500 but was carried out: adopted", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: http.MethodPost, Status: 500, Commit: true, Times: 1})
			res, err := r.svc.RegenerateKey(ctx, r.user, r.p)
			if err != nil || !strings.Contains(res.Warning, "Tether found it on alice/api and uses it") {
				t.Fatalf("Regenerate: %+v %v", res, err)
			}
			keys, _ := r.onBitbucket("alice/api")
			if k, _ := r.stored(); len(keys) != 1 || keys[0] != k || k == r.key.ID {
				t.Errorf("keys on Bitbucket %v, stored %d (old %d)", keys, k, r.key.ID)
			}
		}},
		{"the create never answers and Bitbucket makes the hook later: removed", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/hooks", Method: http.MethodPost, Stall: stall, Commit: true, Times: 1})
			_, err := r.svc.RegenerateWebhook(ctx, r.user, r.p)
			wantKind(t, err, problem.Unavailable, "did not answer in time", "old webhook stays in force", "If Bitbucket creates the webhook after all, Tether removes it")
			if ls := r.leftovers(); len(ls) != 1 || ls[0].RemoteID != "" || ls[0].Match == "" {
				t.Fatalf("leftovers %+v, want the unanswered create", ls)
			}
			r.waitFor("the late create", func() bool { _, h := r.onBitbucket("alice/api"); return len(h) == 2 })
			r.cleanUntil(func() bool { _, h := r.onBitbucket("alice/api"); return len(h) == 1 })
			if _, hooks := r.onBitbucket("alice/api"); hooks[0] != tether.NormalizeHookUUID(r.hook.UUID) {
				t.Errorf("the hook in force was removed: %v", hooks)
			}
			if _, h := r.stored(); h != tether.NormalizeHookUUID(r.hook.UUID) || len(r.leftovers()) != 0 {
				t.Errorf("stored hook %s, leftovers %+v", h, r.leftovers())
			}
			if a := r.audit(); !strings.Contains(a, "webhook removed: the webhook Tether asked Bitbucket to create") {
				t.Errorf("audit log:\n%s", a)
			}
		}},
		{"the create never answers and nothing appears: given up quietly", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: http.MethodPost, Stall: stall, Times: 1})
			if _, err := r.svc.RegenerateKey(ctx, r.user, r.p); err == nil {
				t.Fatal("Regenerate succeeded")
			}
			time.Sleep(stall) // the stalled request ends, having made nothing
			r.cleanUntil(func() bool { return len(r.leftovers()) == 0 })
			if keys, _ := r.onBitbucket("alice/api"); len(keys) != 1 || keys[0] != r.key.ID {
				t.Errorf("keys %v", keys)
			}
		}},
		{"the hook fails after the key was made: the key is taken off", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/site/hooks", Method: http.MethodPost, Status: 400})
			_, err := r.svc.Create(ctx, r.org, r.user, "alice/site")
			wantKind(t, err, problem.Unavailable, "Nothing was changed")
			if keys, hooks := r.onBitbucket("alice/site"); len(keys)+len(hooks) != 0 {
				t.Errorf("left on alice/site: keys %v hooks %v", keys, hooks)
			}
			if used, _ := r.store.UsedRepositories(ctx); len(used) != 1 {
				t.Errorf("projects stored: %v", used)
			}
		}},
		{"the hook fails and the key cannot be taken off: recorded and said", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/site/hooks", Method: http.MethodPost, Status: 400})
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/site/deploy-keys", Method: http.MethodDelete, Status: 500, Times: 1})
			_, err := r.svc.Create(ctx, r.org, r.user, "alice/site")
			wantKind(t, err, problem.Unavailable, "Tether could not remove the deploy key", "from alice/site yet (Bitbucket answered 500")
			keys, _ := r.onBitbucket("alice/site")
			if len(keys) != 1 {
				t.Fatalf("keys on alice/site %v", keys)
			}
			r.cleanUntil(func() bool { k, _ := r.onBitbucket("alice/site"); return len(k) == 0 })
			if a := r.audit(); !strings.Contains(a, "left on Bitbucket: deploy key "+strconv.Itoa(keys[0])) || !strings.Contains(a, "deploy key removed: deploy key "+strconv.Itoa(keys[0])) {
				t.Errorf("audit log:\n%s", a)
			}
		}},
		{"the store fails: what was made is taken off, the old parts stay", func(t *testing.T, r *rig) {
			o := order{project: r.p, actor: r.user, owner: r.user, to: projectPlace(r.p), key: true, hook: true, keep: "Nothing was changed.", its: "the"}
			stored := errors.New("disk full")
			_, err := r.svc.Lifecycle.parts.replace(ctx, r.token, o, nil, func(made) error { return stored })
			if !errors.Is(err, stored) {
				t.Fatalf("err = %v, want the store's", err)
			}
			if keys, hooks := r.onBitbucket("alice/api"); len(keys) != 1 || keys[0] != r.key.ID || len(hooks) != 1 {
				t.Errorf("keys %v hooks %v", keys, hooks)
			}
		}},
		{"the old part cannot be removed: in force anyway, said, retried", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api/deploy-keys", Method: http.MethodDelete, Status: 500, Times: 1})
			res, err := r.svc.RegenerateKey(ctx, r.user, r.p)
			if err != nil || !strings.Contains(res.Warning, "could not remove the old deploy key "+strconv.Itoa(r.key.ID)) {
				t.Fatalf("Regenerate: %+v %v", res, err)
			}
			if ls := r.leftovers(); len(ls) != 1 || ls[0].RemoteID != strconv.Itoa(r.key.ID) || ls[0].Attempts != 1 {
				t.Fatalf("leftovers %+v", ls)
			}
			r.cleanUntil(func() bool { return len(r.leftovers()) == 0 })
			keys, _ := r.onBitbucket("alice/api")
			if k, _ := r.stored(); len(keys) != 1 || keys[0] != k {
				t.Errorf("keys %v, stored %d", keys, k)
			}
		}},
		{"a redirected write: an error naming the move, nothing changed", func(t *testing.T, r *rig) {
			r.e.MoveRepository("alice/api", "acme")
			for _, regenerate := range []func(context.Context, int64, tether.Project) (RegenerateResult, error){r.svc.RegenerateKey, r.svc.RegenerateWebhook} {
				_, err := regenerate(ctx, r.user, r.p)
				wantKind(t, err, problem.Conflict, "moved or renamed", "Update URL")
			}
			keys, hooks := r.onBitbucket("acme/api")
			k, h := r.stored()
			if len(keys) != 1 || keys[0] != r.key.ID || len(hooks) != 1 || k != r.key.ID || h != hooks[0] {
				t.Errorf("on Bitbucket %v %v, stored %d %s", keys, hooks, k, h)
			}
		}},
		{"a renamed repository is written by its UUID", func(t *testing.T, r *rig) {
			r.e.RenameRepository("alice/api", "api-v2")
			if _, err := r.svc.RegenerateWebhook(ctx, r.user, r.p); err != nil {
				t.Fatal(err)
			}
			_, hooks := r.onBitbucket("alice/api-v2")
			if _, h := r.stored(); len(hooks) != 1 || hooks[0] != h || h == tether.NormalizeHookUUID(r.hook.UUID) {
				t.Errorf("hooks %v, stored %s", hooks, h)
			}
		}},
		{"a replaced hook is forgotten after the delivery grace window", func(t *testing.T, r *rig) {
			if _, err := r.svc.RegenerateWebhook(ctx, r.user, r.p); err != nil {
				t.Fatal(err)
			}
			stored := func() bool { _, err := r.store.DeliveryHook(ctx, r.p.ID, r.hook.UUID, time.Time{}); return err == nil }
			r.svc.Cleanup.Step(ctx)
			if !stored() {
				t.Fatal("the replaced hook was forgotten within its grace window")
			}
			r.clock.Advance(webhooks.Grace + time.Minute)
			r.svc.Cleanup.Step(ctx)
			if stored() {
				t.Fatal("the replaced hook is still stored after its grace window")
			}
		}},
		{"delete while Bitbucket answers 500: said, recorded, removed later", func(t *testing.T, r *rig) {
			r.e.FailAPI(emulator.Failure{PathPrefix: "/repositories/alice/api", Method: http.MethodDelete, Status: 500, Times: 2})
			left, err := r.svc.Delete(ctx, r.user, r.p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(left, ") yet.") {
				t.Errorf("%q says yet twice", left)
			}
			for _, want := range []string{"The project is deleted", "its deploy key " + strconv.Itoa(r.key.ID), "its webhook " + strings.ToLower(r.hook.UUID), "Bitbucket answered 500"} {
				if !strings.Contains(left, want) {
					t.Errorf("%q does not say %q", left, want)
				}
			}
			if a := r.audit(); strings.Count(a, "left on Bitbucket") != 2 || !strings.Contains(a, "project deleted") {
				t.Errorf("audit log:\n%s", a)
			}
			r.cleanUntil(func() bool { k, h := r.onBitbucket("alice/api"); return len(k)+len(h) == 0 })
			if a := r.audit(); !strings.Contains(a, "deploy key removed") || !strings.Contains(a, "webhook removed") {
				t.Errorf("audit log:\n%s", a)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newRig(t))
		})
	}
}
