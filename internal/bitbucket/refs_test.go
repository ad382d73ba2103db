package bitbucket

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// Branches asks for the newest first, 100 a page, follows next, and reads
// each branch's head: hash, message, date and the author's display name
// (the raw "Name <email>" when the author is no Bitbucket user).
func TestBranchesFollowsPages(t *testing.T) {
	var c *Client
	var calls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2.0/repositories/acme/api/refs/branches", func(w http.ResponseWriter, r *http.Request) {
		if !requireBearer(t, w, r) {
			return
		}
		calls.Add(1)
		q := r.URL.Query()
		if q.Get("pagelen") != "100" || q.Get("sort") != "-target.date" {
			t.Errorf("query = %v", q)
		}
		if q.Get("page") == "2" {
			writeJSON(w, 200, `{"pagelen":100,"page":2,"size":2,"values":[{"name":"old","type":"branch",
				"target":{"type":"commit","hash":"bbbb","message":"Old\n","date":"2024-01-02T03:04:05+00:00",
				"author":{"type":"author","raw":"Someone <someone@example.com>"}}}]}`)
			return
		}
		writeJSON(w, 200, fmt.Sprintf(`{"pagelen":100,"page":1,"size":2,"next":%q,"values":[{"name":"main","type":"branch",
			"default_merge_strategy":"merge_commit","merge_strategies":["merge_commit","squash","fast_forward"],
			"links":{"self":{"href":"x"}},
			"target":{"type":"commit","hash":"aaaa","message":"Ship it\n","date":"2026-05-01T10:00:00+00:00",
			"author":{"type":"author","raw":"Alice <alice@example.com>","user":{"display_name":"Alice Liddell","type":"user"}}}}]}`,
			c.apiURL+"/repositories/acme/api/refs/branches?pagelen=100&sort=-target.date&page=2"))
	})
	c, _ = newTestClient(t, mux)
	got, err := c.Branches(context.Background(), testToken, "acme", "api")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 || len(got) != 2 {
		t.Fatalf("%d calls, %d branches", calls.Load(), len(got))
	}
	main, old := got[0], got[1]
	if main.Name != "main" || main.Hash != "aaaa" || main.Author != "Alice Liddell" || main.Message != "Ship it\n" ||
		!main.Date.Equal(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)) || main.DefaultMerge != "merge_commit" || len(main.MergeStrategy) != 3 {
		t.Errorf("main = %+v", main)
	}
	if old.Name != "old" || old.Hash != "bbbb" || old.Author != "Someone <someone@example.com>" {
		t.Errorf("old = %+v", old)
	}
}

// A 410 Gone is a deprecation, with the change its message names; other
// answers are not.
func TestDeprecated(t *testing.T) {
	cases := []struct {
		status     int
		body       string
		deprecated bool
		change     string
	}{
		{410, `{"type":"error","error":{"message":"CHANGE-2770 - Functionality has been deprecated"}}`, true, "CHANGE-2770"},
		{410, `{"type":"error","error":{"message":"This API is no longer available (see CHANGE-3022 and CHANGE-2770)"}}`, true, "CHANGE-3022"},
		{410, `gone`, true, ""},
		{404, `{"type":"error","error":{"message":"CHANGE-2770 mentioned in a 404"}}`, false, ""},
		{500, `{"type":"error","error":{"message":"Internal Server Error"}}`, false, ""},
	}
	for _, tc := range cases {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.status, tc.body) }))
		_, err := c.Hooks(context.Background(), testToken, "acme", "api")
		change, ok := Deprecated(err)
		if ok != tc.deprecated || change != tc.change {
			t.Errorf("%d %s: Deprecated = %q, %v", tc.status, tc.body, change, ok)
		}
	}
	if _, ok := Deprecated(nil); ok {
		t.Error("nil is not a deprecation")
	}
}
