package bitbucket

import (
	"strings"
	"testing"
	"time"
)

const (
	fooUUID = "{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"
	bradRaw = "Brad Rydzewski <brad.rydzewski@gmail.com>"
	head    = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"
)

var bradActor = Actor{UUID: "{87bb15eb-47c1-49b3-9f16-ca824a2979a4}", DisplayName: "Brad Rydzewski", Nickname: "brydzewski"}

func TestParsePushRecorded(t *testing.T) {
	headCommit := Commit{Hash: head, Message: "Update README\n", Author: bradRaw, Date: time.Date(2018, 7, 2, 20, 26, 56, 0, time.UTC)}
	cases := []struct {
		file                    string
		new, old                *Ref
		created, closed, forced bool
	}{
		{
			file: "webhook_push.json",
			new:  &Ref{Type: "branch", Name: "master", Target: headCommit},
			old: &Ref{Type: "branch", Name: "master", Target: Commit{
				Hash: "40e7580cf11311d84a6e5e97e2cbba6df1675750", Message: "initial commit\n", Author: bradRaw,
				Date: time.Date(2018, 7, 2, 20, 22, 41, 0, time.UTC)}},
		},
		{file: "webhook_push_branch_create.json", new: &Ref{Type: "branch", Name: "develop", Target: headCommit}, created: true},
		{file: "webhook_push_branch_delete.json", old: &Ref{Type: "branch", Name: "develop", Target: headCommit}, closed: true},
		{file: "webhook_push_tag_create.json", new: &Ref{Type: "tag", Name: "feature/x", Target: headCommit}, created: true},
		{file: "webhook_push_tag_delete.json", old: &Ref{Type: "tag", Name: "feature/x", Target: headCommit}, closed: true},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			p, err := ParsePush(recorded(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if p.Repository.UUID != fooUUID || p.Repository.FullName != "brydzewski/foo" {
				t.Errorf("repository = %+v", p.Repository)
			}
			if p.Actor != bradActor {
				t.Errorf("actor = %+v", p.Actor)
			}
			if len(p.Changes) != 1 {
				t.Fatalf("%d changes, want 1", len(p.Changes))
			}
			ch := p.Changes[0]
			checkRef(t, "new", ch.New, tc.new)
			checkRef(t, "old", ch.Old, tc.old)
			if ch.Created != tc.created || ch.Closed != tc.closed || ch.Forced != tc.forced {
				t.Errorf("created/closed/forced = %v/%v/%v", ch.Created, ch.Closed, ch.Forced)
			}
		})
	}
}

func checkRef(t *testing.T, which string, got, want *Ref) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %+v, want %+v", which, got, want)
	case got.Type != want.Type || got.Name != want.Name || got.Target.Hash != want.Target.Hash ||
		got.Target.Message != want.Target.Message || got.Target.Author != want.Target.Author || !got.Target.Date.Equal(want.Target.Date):
		t.Errorf("%s = %+v, want %+v", which, *got, *want)
	}
}

func TestParsePullRequestRecorded(t *testing.T) {
	cases := []struct {
		file, commit string
		updated      time.Time
	}{
		{"webhook_pr_created.json", "507a576e59b3", time.Date(2018, 7, 2, 21, 51, 39, 532546000, time.UTC)},
		{"webhook_pr_updated.json", "0704fc5beccc", time.Date(2018, 7, 2, 21, 54, 34, 210775000, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			pr, err := ParsePullRequest(recorded(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if pr.ID != 1 || pr.Title != "Awesome new feature" || pr.Actor != bradActor || !pr.UpdatedOn.Equal(tc.updated) {
				t.Errorf("pull request = %+v", pr)
			}
			if pr.Repository.UUID != fooUUID || pr.Repository.FullName != "brydzewski/foo" {
				t.Errorf("repository = %+v", pr.Repository)
			}
			if pr.Source.Branch != "develop" || pr.Source.Commit != tc.commit || pr.Source.Repository.UUID != fooUUID {
				t.Errorf("source = %+v", pr.Source)
			}
			if pr.Destination.Branch != "master" || pr.Destination.Commit != "7d1a175411ef" || pr.Destination.Repository.FullName != "brydzewski/foo" {
				t.Errorf("destination = %+v", pr.Destination)
			}
			if pr.State != "OPEN" || pr.FromFork() {
				t.Errorf("state %q, from a fork %v", pr.State, pr.FromFork())
			}
		})
	}
}

func TestParseWrongOrBrokenPayload(t *testing.T) {
	if _, err := ParsePush(recorded(t, "webhook_pr_created.json")); err == nil {
		t.Error("ParsePush accepted a pull request payload")
	}
	if _, err := ParsePullRequest(recorded(t, "webhook_push.json")); err == nil {
		t.Error("ParsePullRequest accepted a push payload")
	}
	for _, body := range []string{"", "{", "[]", `{"push":[]}`} {
		if _, err := ParsePush([]byte(body)); err == nil {
			t.Errorf("ParsePush(%q) accepted", body)
		}
	}
}

func TestParsePushNamedBranchAndNickname(t *testing.T) {
	body := `{"push":{"changes":[{"new":{"type":"named_branch","name":"default","target":{"hash":"abc","message":"m","date":"2026-01-02T03:04:05+00:00","author":{"user":{"display_name":"Ann"}}}},"old":null,"created":true}]},
		"repository":{"uuid":"{r}","full_name":"acme/hg"},"actor":{"uuid":"{a}","display_name":"Ann","nickname":"ann"}}`
	p, err := ParsePush([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	n := p.Changes[0].New
	if n.Type != "branch" || n.Target.Author != "Ann" || p.Actor.Nickname != "ann" {
		t.Errorf("push = %+v, new = %+v", p, *n)
	}
}

func TestSignatures(t *testing.T) {
	body := recorded(t, "webhook_push.json")
	secret := []byte("s3cret")
	sig := Sign(secret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q", sig)
	}
	// Known answer, from `openssl dgst -sha256 -hmac key`.
	if got := Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Errorf("Sign known answer = %q", got)
	}
	if !VerifySignature(secret, body, sig) {
		t.Error("valid signature refused")
	}
	if !VerifySignature(secret, body, " "+sig+"\n") {
		t.Error("valid signature with surrounding space refused")
	}
	tampered := append([]byte{}, body...)
	tampered[10] ^= 1
	for name, tc := range map[string]struct {
		secret []byte
		body   []byte
		header string
	}{
		"tampered body": {secret, tampered, sig},
		"wrong secret":  {[]byte("other"), body, sig},
		"empty secret":  {nil, body, Sign(nil, body)},
		"missing":       {secret, body, ""},
		"no prefix":     {secret, body, strings.TrimPrefix(sig, "sha256=")},
		"sha1":          {secret, body, "sha1=" + strings.TrimPrefix(sig, "sha256=")[:40]},
		"not hex":       {secret, body, "sha256=" + strings.Repeat("zz", 32)},
		"truncated":     {secret, body, sig[:len(sig)-2]},
	} {
		if VerifySignature(tc.secret, tc.body, tc.header) {
			t.Errorf("%s: accepted", name)
		}
	}
}
