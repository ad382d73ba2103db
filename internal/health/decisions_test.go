package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// The verdicts, from what was read of Bitbucket to the recorded health:
// pure decisions, no store and no network. Each case is one thing
// Bitbucket (or the SSH probe) said.

const (
	testSSHAddr  = "ssh.bitbucket.test:22"
	testHookBase = "https://tether.test/hooks/bitbucket/"
)

var testProject = tether.Project{ID: 7, Name: "acme/api", OwnerID: 3, OwnerName: "Alice", FullName: "acme/api",
	Workspace: "acme", RepoSlug: "api", HookToken: "tok"}

var testRepo = bitbucket.Repository{FullName: "acme/api", Slug: "api", Workspace: bitbucket.Workspace{Slug: "acme"}}

func apiError(status int) error { return &bitbucket.Error{Status: status} }

// decider is a checker whose SSH probe answers probe.
func decider(probe error) *Checker {
	c := NewWithClock(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil, nil,
		SSH{Addr: testSSHAddr}, testHookBase, clockwork.NewFakeClock())
	c.SetProbe(func(context.Context, string, []ssh.PublicKey, ssh.Signer, string, string) error { return probe })
	return c
}

func TestDeployKeyVerdicts(t *testing.T) {
	t.Parallel()
	key, err := deploykeys.Generate("acme/api")
	if err != nil {
		t.Fatal(err)
	}
	other, err := deploykeys.Generate("acme/api")
	if err != nil {
		t.Fatal(err)
	}
	stored := tether.DeployKey{BitbucketKeyID: 42, PublicKey: key.Public, PrivateKey: key.Private}
	listed := bitbucket.DeployKey{ID: 42, Key: strings.Join(strings.Fields(key.Public)[:2], " ")}
	ok := remote{key: stored, repo: testRepo, remoteKey: listed}
	with := func(change func(*remote)) remote {
		r := ok
		change(&r)
		return r
	}
	budget := &bitbucket.BudgetError{Until: time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)}
	cases := []struct {
		name         string
		r            remote
		probe        error
		status       string
		reason       string
		detailSaying string
	}{
		{"valid: listed and reads over SSH", ok, nil, tether.Valid, "", "reads the repository over SSH"},
		{"no stored key", remote{keyErr: tether.ErrNotFound}, nil, tether.Invalid, tether.ReasonNoDeployKey, "Regenerate"},
		{"stored key unreadable", remote{keyErr: errors.New("disk")}, nil, tether.Unknown, tether.ReasonCouldNotCheck, "read the stored key"},
		{"connection revoked", with(func(r *remote) { r.err = connections.ErrNotConnected }), nil,
			tether.Invalid, tether.ReasonOAuthRevoked, "Alice's Bitbucket connection is Not Connected"},
		{"repository gone for the owner (404)", with(func(r *remote) { r.err = apiError(404) }), nil,
			tether.Invalid, tether.ReasonOwnerNoAccess, "no longer shows acme/api to Alice"},
		{"repository forbidden to the owner (403)", with(func(r *remote) { r.err = apiError(403) }), nil,
			tether.Invalid, tether.ReasonOwnerNoAccess, "re-home"},
		{"Bitbucket down while looking up", with(func(r *remote) { r.err, r.step = apiError(503), "looked up the repository" }), nil,
			tether.Unknown, tether.ReasonCouldNotCheck, "Bitbucket answered 503 while Tether looked up the repository"},
		{"budget spent", with(func(r *remote) { r.err = budget }), nil,
			tether.Unknown, tether.ReasonCouldNotCheck, "hourly Bitbucket API budget for now; Tether asks again at 15:04 UTC"},
		{"rate limited (429)", with(func(r *remote) { r.remoteKeyErr = apiError(429) }), nil,
			tether.Unknown, tether.ReasonCouldNotCheck, "rate limiting"},
		{"key not readable by the owner (403)", with(func(r *remote) { r.remoteKeyErr = apiError(403) }), nil,
			tether.Invalid, tether.ReasonOwnerNoAccess, "no longer an admin of acme/api"},
		{"key removed (404)", with(func(r *remote) { r.remoteKeyErr = apiError(404) }), nil,
			tether.Invalid, tether.ReasonKeyRemoved, "(id 42) is no longer on acme/api"},
		{"key listed is another key", with(func(r *remote) { r.remoteKey.Key = other.Public }), nil,
			tether.Invalid, tether.ReasonKeyDiffers, "not the key Tether holds"},
		{"private key unreadable", with(func(r *remote) { r.key.PrivateKey = []byte("garbage") }), nil,
			tether.Invalid, tether.ReasonKeyDiffers, "cannot be read"},
		{"SSH refuses the key", ok, bitbucket.NewSSHRefusal("probe", "Permission denied (publickey)."),
			tether.Invalid, tether.ReasonSSHDenied, "refused it over SSH at " + testSSHAddr},
		{"SSH host key not pinned", ok, fmt.Errorf("probe: %w", bitbucket.ErrSSHHostKeyMismatch),
			tether.Unknown, tether.ReasonCouldNotCheck, "did not present a pinned host key"},
		{"SSH unreachable", ok, context.DeadlineExceeded, tether.Unknown, tether.ReasonCouldNotCheck, "probed SSH"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := decider(tc.probe).deployKeyHealth(context.Background(), testProject, tc.r)
			if h.ProjectID != testProject.ID || h.Part != tether.PartDeployKey || h.Status != tc.status || h.Reason != tc.reason ||
				!strings.Contains(h.Detail, tc.detailSaying) {
				t.Errorf("got %s/%s %q, want %s/%s saying %q", h.Status, h.Reason, h.Detail, tc.status, tc.reason, tc.detailSaying)
			}
		})
	}
}

func TestWebhookVerdicts(t *testing.T) {
	t.Parallel()
	url := testHookBase + testProject.HookToken
	listed := bitbucket.Hook{UUID: "{h}", URL: url, Active: true, Events: []string{"repo:push", "pullrequest:created"}, SecretSet: true}
	ok := remote{hook: tether.Webhook{UUID: "h"}, repo: testRepo, remoteHook: listed}
	with := func(change func(*remote)) remote {
		r := ok
		change(&r)
		return r
	}
	cases := []struct {
		name         string
		r            remote
		status       string
		reason       string
		detailSaying string
	}{
		{"valid", ok, tether.Valid, "", "active, sends repo:push to Tether and signs"},
		{"no stored webhook", remote{hookErr: tether.ErrNotFound}, tether.Invalid, tether.ReasonNoWebhook, "no webhook"},
		{"stored webhook unreadable", remote{hookErr: errors.New("disk")}, tether.Unknown, tether.ReasonCouldNotCheck, "read the stored webhook"},
		{"connection revoked", with(func(r *remote) { r.err = connections.ErrNotConnected }), tether.Invalid, tether.ReasonOAuthRevoked, "grant access again"},
		{"repository gone for the owner", with(func(r *remote) { r.err = apiError(404) }), tether.Invalid, tether.ReasonOwnerNoAccess, "re-home"},
		{"Bitbucket down", with(func(r *remote) { r.remoteHookErr = apiError(502) }), tether.Unknown, tether.ReasonCouldNotCheck, "answered 502"},
		{"network", with(func(r *remote) { r.remoteHookErr = context.DeadlineExceeded }), tether.Unknown, tether.ReasonCouldNotCheck, "Could not reach Bitbucket"},
		{"hooks forbidden to the owner (403)", with(func(r *remote) { r.remoteHookErr = apiError(403) }), tether.Invalid, tether.ReasonOwnerNoAccess, "can no longer manage webhooks"},
		{"deleted (404)", with(func(r *remote) { r.remoteHookErr = apiError(404) }), tether.Invalid, tether.ReasonHookDeleted, "({h}) is no longer on acme/api"},
		{"deactivated", with(func(r *remote) { r.remoteHook.Active = false }), tether.Invalid, tether.ReasonHookInactive, "deactivated"},
		{"sends elsewhere", with(func(r *remote) { r.remoteHook.URL = "https://elsewhere.test/hook" }), tether.Invalid, tether.ReasonHookWrongURL,
			"sends to https://elsewhere.test/hook instead of Tether's " + url},
		{"no repo:push", with(func(r *remote) { r.remoteHook.Events = []string{"pullrequest:created"} }), tether.Invalid, tether.ReasonHookNoPush, "repo:push"},
		{"no secret", with(func(r *remote) { r.remoteHook.SecretSet = false }), tether.Invalid, tether.ReasonHookNoSecret, "no secret"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := decider(nil).webhookHealth(testProject, tc.r)
			if h.ProjectID != testProject.ID || h.Part != tether.PartWebhook || h.Status != tc.status || h.Reason != tc.reason ||
				!strings.Contains(h.Detail, tc.detailSaying) {
				t.Errorf("got %s/%s %q, want %s/%s saying %q", h.Status, h.Reason, h.Detail, tc.status, tc.reason, tc.detailSaying)
			}
		})
	}
}

// Trouble reaching Bitbucket is "could not check", never invalid, and
// says what held it back.
func TestTransientVerdicts(t *testing.T) {
	t.Parallel()
	until := time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)
	cases := []struct {
		err    error
		saying string
	}{
		{&bitbucket.BudgetError{Until: until, Paused: true}, "Bitbucket is rate limiting Alice's connection; Tether waits until 15:04 UTC before asking again."},
		{&bitbucket.BudgetError{Until: until}, "Alice's connection has spent its hourly Bitbucket API budget for now; Tether asks again at 15:04 UTC."},
		// Bitbucket's own 429: the end of the pause it set, as a call held
		// back meanwhile says (not "a few minutes" for an hour's pause).
		{&bitbucket.Error{Status: 429, RetryAfter: time.Hour, PausedUntil: until}, "Bitbucket is rate limiting Alice's connection; Tether waits until 15:04 UTC before asking again."},
		{apiError(429), detailRateLimited}, // outside any budget: no end known
		{apiError(500), "Bitbucket answered 500 while Tether read the webhook; will retry."},
		{errors.New("connection reset"), "Could not reach Bitbucket while Tether read the webhook; will retry."},
	}
	for _, tc := range cases {
		h := transient(tether.PartWebhook, testProject, tc.err, "read the webhook")
		if h.Status != tether.Unknown || h.Reason != tether.ReasonCouldNotCheck || h.Detail != tc.saying {
			t.Errorf("%v: %s/%s %q, want unknown saying %q", tc.err, h.Status, h.Reason, h.Detail, tc.saying)
		}
	}
}
