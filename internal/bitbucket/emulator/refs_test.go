package emulator

import (
	"fmt"
	"net/http"
	"testing"
)

type branchPageT struct {
	Pagelen int    `json:"pagelen"`
	Size    int    `json:"size"`
	Page    int    `json:"page"`
	Next    string `json:"next"`
	Values  []struct {
		Type            string   `json:"type"`
		Name            string   `json:"name"`
		MergeStrategies []string `json:"merge_strategies"`
		Links           struct {
			Self struct{ Href string } `json:"self"`
		} `json:"links"`
		Target struct {
			Type       string `json:"type"`
			Hash       string `json:"hash"`
			Date       string `json:"date"`
			Message    string `json:"message"`
			Repository struct {
				FullName string `json:"full_name"`
			} `json:"repository"`
		} `json:"target"`
	} `json:"values"`
}

// The branches listing has Bitbucket's shape and paging: every open
// branch with its head commit, pages of pagelen (100 at most) linked by
// next, newest first with sort=-target.date, and 404 for a repository the
// caller cannot see.
func TestListBranches(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice").AccessToken
	heads := map[string]string{}
	for i := range 12 {
		res, err := v.e.Push("acme/api", fmt.Sprintf("feature-%02d", i), "work", "alice")
		if err != nil {
			t.Fatal(err)
		}
		heads[fmt.Sprintf("feature-%02d", i)] = res.New
	}
	res, _ := v.e.Push("acme/api", "main", "latest", "alice")
	heads["main"] = res.New

	var first branchPageT
	v.getJSON(tok, "/repositories/acme/api/refs/branches", http.StatusOK, &first)
	if first.Pagelen != 10 || first.Size != 13 || len(first.Values) != 10 || first.Next == "" {
		t.Fatalf("first page: pagelen %d size %d values %d next %q", first.Pagelen, first.Size, len(first.Values), first.Next)
	}
	var second branchPageT
	v.getJSON(tok, first.Next, http.StatusOK, &second)
	if len(second.Values) != 3 || second.Next != "" {
		t.Fatalf("second page: %d values, next %q", len(second.Values), second.Next)
	}
	seen := 0
	for _, b := range append(first.Values, second.Values...) {
		if b.Type != "branch" || b.Target.Type != "commit" || b.Target.Hash != heads[b.Name] || b.Target.Date == "" ||
			b.Target.Repository.FullName != "acme/api" || len(b.MergeStrategies) == 0 || b.Links.Self.Href == "" {
			t.Errorf("branch %+v", b)
		}
		seen++
	}
	if seen != len(heads) {
		t.Fatalf("%d branches listed, want %d", seen, len(heads))
	}

	var newest branchPageT
	v.getJSON(tok, "/repositories/acme/api/refs/branches?pagelen=100&sort=-target.date", http.StatusOK, &newest)
	if len(newest.Values) != 13 || newest.Values[0].Target.Date < newest.Values[12].Target.Date {
		t.Fatalf("sort=-target.date: %d values, first %s last %s", len(newest.Values), newest.Values[0].Target.Date, newest.Values[12].Target.Date)
	}
	var one branchPageT
	v.getJSON(tok, `/repositories/acme/api/refs/branches?q=name%3D%22main%22`, http.StatusOK, &one)
	if len(one.Values) != 1 || one.Values[0].Name != "main" {
		t.Fatalf("q=name=\"main\": %+v", one.Values)
	}
	v.wantError(tok, "/repositories/acme/api/refs/branches?sort=colour", http.StatusBadRequest, "Invalid sort field: colour")
	v.wantError(v.login("carol").AccessToken, "/repositories/acme/infra/refs/branches", http.StatusNotFound, "Repository acme/infra not found")
}
