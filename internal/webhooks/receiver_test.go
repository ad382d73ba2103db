package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/tether"
)

// The receiver on its own, with the store in memory: what a delivery must
// carry to be accepted, and what a recorded push starts. (The whole path,
// through Echo and SQLite, is internal/app's webhooks_test.go.)

const (
	token    = "hook-token"
	secret   = "hook-secret"
	hookUUID = "0f6a5b7e-3c1d-4e2f-9a8b-7c6d5e4f3a2b"
	oldHook  = "1a2b3c4d-0000-4000-8000-000000000000"
	repoUUID = "{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"
)

// memStore is the receiver's store in memory: one project, its hook and
// one replaced within the grace window.
type memStore struct {
	mu       sync.Mutex
	accepted []tether.Accept
	seen     map[string]bool
	built    map[string]bool
	refusals []tether.Refusal
}

func (m *memStore) ProjectByHookToken(_ context.Context, t string) (tether.Project, error) {
	if t != token {
		return tether.Project{}, tether.ErrNotFound
	}
	return tether.Project{ID: 1, RepoUUID: repoUUID}, nil
}

func (m *memStore) DeliveryHook(_ context.Context, _ int64, uuid string, retiredSince time.Time) (tether.Webhook, error) {
	switch tether.NormalizeHookUUID(uuid) {
	case hookUUID:
		return tether.Webhook{UUID: hookUUID, Secret: secret, State: "active"}, nil
	case oldHook:
		// Replaced a minute ago: inside the grace window.
		if retired := time.Now().Add(-time.Minute); retired.After(retiredSince) {
			return tether.Webhook{UUID: oldHook, Secret: "old-secret", State: "retiring", RetiredAt: retired}, nil
		}
	}
	return tether.Webhook{}, tether.ErrNotFound
}

func (m *memStore) AcceptDeliveries(_ context.Context, batch []tether.Accept) ([]tether.AcceptResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]tether.AcceptResult, len(batch))
	for i, a := range batch {
		if m.seen[a.Delivery.RequestUUID] {
			out[i].Duplicate = true
			continue
		}
		m.seen[a.Delivery.RequestUUID] = true
		m.accepted = append(m.accepted, a)
		// Each build starts once, as the database's workflows_build key
		// has it.
		var notes []string
		for _, w := range a.Workflows {
			build := fmt.Sprint(a.Delivery.ProjectID, w.Trigger, w.RefType, w.RefName, w.CommitHash)
			if m.built[build] {
				notes = append(notes, w.AlreadyBuilt())
				continue
			}
			m.built[build] = true
			out[i].Started++
		}
		out[i].Reason = a.Delivery.Reason
		if len(notes) > 0 && a.Delivery.Reason != "" {
			notes = append(notes, a.Delivery.Reason)
		}
		if len(notes) > 0 {
			out[i].Reason = tether.JoinReasons(notes)
		}
	}
	return out, nil
}

func (m *memStore) RecordRefusals(_ context.Context, r []tether.Refusal) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusals = append(m.refusals, r...)
	return nil
}

func recorded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bitbucket", "testdata", "recorded", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delivery is what Bitbucket sends: the headers of a signed repo:push.
func delivery(body []byte, requestUUID string) http.Header {
	h := http.Header{}
	h.Set("X-Event-Key", "repo:push")
	h.Set("X-Hook-UUID", "{"+hookUUID+"}")
	h.Set("X-Request-UUID", requestUUID)
	h.Set("X-Attempt-Number", "1")
	h.Set("X-Hub-Signature", bitbucket.Sign([]byte(secret), body))
	return h
}

func start(t *testing.T) (*Receiver, *memStore) {
	t.Helper()
	m := &memStore{seen: map[string]bool{}, built: map[string]bool{}}
	r := New(slog.New(slog.NewTextHandler(io.Discard, nil)), m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, m
}

// Only a delivery signed with the hook's secret, from one of the
// project's hooks, with Bitbucket's headers, for the project's
// repository, is accepted; everything else is refused, with why, and
// nothing is stored.
func TestDeliveryVerification(t *testing.T) {
	t.Parallel()
	push := recorded(t, "webhook_push.json")
	cases := []struct {
		name   string
		token  string
		body   []byte
		change func(h http.Header)
		status int
		says   string
	}{
		{"signed push", token, push, nil, http.StatusAccepted, "Accepted: 1 workflow(s) started."},
		{"from the hook Regenerate replaced, within the grace window", token, push, func(h http.Header) {
			h.Set("X-Hook-UUID", oldHook)
			h.Set("X-Hub-Signature", bitbucket.Sign([]byte("old-secret"), push))
		}, http.StatusAccepted, "Accepted"},
		{"unknown URL", "another-token", push, nil, http.StatusNotFound, "no project has this webhook URL"},
		{"no signature", token, push, func(h http.Header) { h.Del("X-Hub-Signature") }, http.StatusUnauthorized, ReasonNoSignature},
		{"signed with another secret", token, push, func(h http.Header) { h.Set("X-Hub-Signature", bitbucket.Sign([]byte("guess"), push)) },
			http.StatusUnauthorized, ReasonBadSignature},
		{"body changed after signing", token, bytes.Replace(push, []byte("master"), []byte("mister"), 1), func(h http.Header) {
			h.Set("X-Hub-Signature", bitbucket.Sign([]byte(secret), push))
		}, http.StatusUnauthorized, ReasonBadSignature},
		{"sha1 signature", token, push, func(h http.Header) { h.Set("X-Hub-Signature", "sha1=0123456789abcdef0123456789abcdef01234567") },
			http.StatusUnauthorized, ReasonBadSignature},
		{"another project's hook", token, push, func(h http.Header) { h.Set("X-Hook-UUID", "{99999999-0000-4000-8000-000000000000}") },
			http.StatusForbidden, ReasonUnknownHook},
		{"no X-Request-UUID", token, push, func(h http.Header) { h.Del("X-Request-UUID") }, http.StatusBadRequest, missingHeader("X-Request-UUID")},
		{"no X-Event-Key", token, push, func(h http.Header) { h.Del("X-Event-Key") }, http.StatusBadRequest, missingHeader("X-Event-Key")},
		{"header too long", token, push, func(h http.Header) { h.Set("X-Request-UUID", strings.Repeat("a", 65)) }, http.StatusBadRequest, ReasonLongHeader},
		{"larger than 256 KB", token, append(push, bytes.Repeat([]byte(" "), MaxBody)...), nil, http.StatusRequestEntityTooLarge, ReasonTooLarge},
		{"not JSON", token, []byte("{not json"), nil, http.StatusBadRequest, ReasonMalformed},
		{"another repository", token, bytes.ReplaceAll(push, []byte(repoUUID), []byte("{00000000-0000-4000-8000-000000000000}")), nil,
			http.StatusBadRequest, ReasonOtherRepo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, m := start(t)
			h := delivery(tc.body, "request-1")
			if tc.change != nil {
				tc.change(h)
			}
			a := r.Receive(context.Background(), tc.token, h, bytes.NewReader(tc.body))
			if a.Status != tc.status || !strings.Contains(a.Message, tc.says) {
				t.Fatalf("%d %q, want %d saying %q", a.Status, a.Message, tc.status, tc.says)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if stored := len(m.accepted); (a.Status == http.StatusAccepted) != (stored == 1) {
				t.Fatalf("answered %d, %d deliveries stored", a.Status, stored)
			}
		})
	}
}

// What Bitbucket's recorded pushes start: one workflow per branch or tag
// pushed, with its head commit; a deletion starts none.
func TestPushWorkflows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file, refType, ref string
		workflows          int
		note               string
	}{
		{"webhook_push.json", "branch", "master", 1, ""},
		{"webhook_push_branch_create.json", "branch", "develop", 1, ""},
		{"webhook_push_tag_create.json", "tag", "feature/x", 1, ""},
		{"webhook_push_branch_delete.json", "", "", 0, "branch develop deleted"},
		{"webhook_push_tag_delete.json", "", "", 0, "tag feature/x deleted"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			r, m := start(t)
			body := recorded(t, tc.file)
			if a := r.Receive(context.Background(), token, delivery(body, "r-"+tc.file), bytes.NewReader(body)); a.Status != http.StatusAccepted {
				t.Fatalf("%d %s", a.Status, a.Message)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			got := m.accepted[0]
			if len(got.Workflows) != tc.workflows || !strings.Contains(got.Delivery.Reason, tc.note) {
				t.Fatalf("%d workflows, note %q; want %d, %q", len(got.Workflows), got.Delivery.Reason, tc.workflows, tc.note)
			}
			d := got.Delivery
			if d.ProjectID != 1 || d.RequestUUID != "r-"+tc.file || d.EventKey != "repo:push" || d.Attempt != 1 || d.Size != len(body) {
				t.Errorf("delivery %+v", d)
			}
			if len(got.BodySHA256) != 32 {
				t.Errorf("body digest of %d bytes", len(got.BodySHA256))
			}
			if tc.workflows == 0 {
				return
			}
			w := got.Workflows[0]
			want := tether.Workflow{Trigger: "push", RefType: tc.refType, RefName: tc.ref, CommitHash: "141977fedf5cf35aa290ac87d4b5177ac4cd9de1",
				Message: "Update README\n", Author: "Brad Rydzewski <brad.rydzewski@gmail.com>", CommittedAt: time.Date(2018, 7, 2, 20, 26, 56, 0, time.UTC)}
			if w.Trigger != want.Trigger || w.RefType != want.RefType || w.RefName != want.RefName || w.CommitHash != want.CommitHash ||
				w.Message != want.Message || w.Author != want.Author || !w.CommittedAt.Equal(want.CommittedAt) {
				t.Errorf("workflow %+v, want %+v", w, want)
			}
		})
	}
}

// A retry (the same X-Request-UUID) is acknowledged and stored once;
// deliveries arriving together share commits.
func TestRetriesAndGroupCommit(t *testing.T) {
	t.Parallel()
	r, m := start(t)
	body := recorded(t, "webhook_push.json")
	if a := r.Receive(context.Background(), token, delivery(body, "same"), bytes.NewReader(body)); a.Status != http.StatusAccepted {
		t.Fatalf("first: %d", a.Status)
	}
	if a := r.Receive(context.Background(), token, delivery(body, "same"), bytes.NewReader(body)); a.Status != http.StatusOK ||
		!strings.Contains(a.Message, "Already received") {
		t.Fatalf("retry: %d %q", a.Status, a.Message)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			id := "together-" + string(rune('A'+i%26)) + string(rune('a'+i/26))
			if a := r.Receive(context.Background(), token, delivery(body, id), bytes.NewReader(body)); a.Status != http.StatusAccepted {
				t.Errorf("%s: %d %s", id, a.Status, a.Message)
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.accepted) != 51 {
		t.Fatalf("%d stored, want 51", len(m.accepted))
	}
	if n := r.arriving.Load(); n != 0 {
		t.Fatalf("%d deliveries still counted as arriving after every answer", n)
	}
}

// The body is read whole whatever Content-Length says: the length only
// sizes the buffer, and never past MaxBody.
func TestReadBodyTakesContentLengthAsAHint(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("x"), 10_416)
	huge := bytes.Repeat([]byte("y"), MaxBody+100)
	for _, tc := range []struct {
		name, length string
		body         []byte
		want         int
	}{
		{"exact", "10416", body, len(body)},
		{"absent", "", body, len(body)},
		{"says less", "10", body, len(body)},
		{"says more", "20000", body, len(body)},
		{"not a number", "ten", body, len(body)},
		{"negative", "-5", body, len(body)},
		{"past the limit, says so", strconv.Itoa(len(huge)), huge, MaxBody + 1},
		{"past the limit, says less", "100", huge, MaxBody + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(bytes.NewReader(tc.body), tc.length)
			if err != nil || len(got) != tc.want || !bytes.Equal(got, tc.body[:tc.want]) {
				t.Fatalf("read %d bytes (%v), want the first %d", len(got), err, tc.want)
			}
		})
	}
}
