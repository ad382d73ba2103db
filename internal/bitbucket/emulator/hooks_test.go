package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

type hookJSONT struct {
	UUID      string   `json:"uuid"`
	URL       string   `json:"url"`
	Active    bool     `json:"active"`
	Events    []string `json:"events"`
	SecretSet bool     `json:"secret_set"`
	Type      string   `json:"type"`
	Subject   struct {
		FullName string `json:"full_name"`
	} `json:"subject"`
}

func TestHookCRUD(t *testing.T) {
	v := newEnv(t)
	alice, bob := v.login("alice").AccessToken, v.login("bob").AccessToken
	in := map[string]any{"description": "Tether", "url": "https://ci.example/hooks/bitbucket", "active": true,
		"events": []string{"repo:push", "pullrequest:created"}, "secret": "s3cret"}
	resp, body := v.api(http.MethodPost, alice, "/repositories/acme/api/hooks", jsonBody(t, in))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var h hookJSONT
	var raw map[string]any
	_ = json.Unmarshal([]byte(body), &h)
	_ = json.Unmarshal([]byte(body), &raw)
	if !strings.HasPrefix(h.UUID, "{") || !h.Active || !h.SecretSet || h.Type != "webhook_subscription" || h.Subject.FullName != "acme/api" ||
		!slices.Equal(h.Events, []string{"pullrequest:created", "repo:push"}) {
		t.Errorf("created hook %+v", h)
	}
	if _, leaked := raw["secret"]; leaked || strings.Contains(body, "s3cret") {
		t.Errorf("the secret is in the answer: %s", body)
	}
	if loc := resp.Header.Get("Location"); loc != v.srv.URL+"/2.0/repositories/acme/api/hooks/"+url.PathEscape(h.UUID) {
		t.Errorf("Location %q", loc)
	}
	sameShape(t, "hook", recorded(t, "api_hook.json"), raw)
	var page map[string]any
	v.getJSON(alice, "/repositories/acme/api/hooks", http.StatusOK, &page)
	sameShape(t, "hooks", recorded(t, "api_hooks.json"), page)

	got := v.e.Hooks("acme/api")
	if len(got) != 1 || got[0].Secret != "s3cret" || got[0].UUID != h.UUID {
		t.Errorf("Hooks %+v", got)
	}

	// By uuid with escaped braces or without braces.
	var one hookJSONT
	v.getJSON(alice, "/repositories/acme/api/hooks/"+url.PathEscape(h.UUID), http.StatusOK, &one)
	v.getJSON(alice, "/repositories/acme/api/hooks/"+strings.Trim(h.UUID, "{}"), http.StatusOK, &one)
	if one.UUID != h.UUID {
		t.Errorf("by uuid %+v", one)
	}

	put := func(body map[string]any) (int, hookJSONT, string) {
		t.Helper()
		resp, text := v.api(http.MethodPut, alice, "/repositories/acme/api/hooks/"+url.PathEscape(h.UUID), jsonBody(t, body))
		var out hookJSONT
		_ = json.Unmarshal([]byte(text), &out)
		return resp.StatusCode, out, text
	}
	// Omitting the secret keeps it; null clears it.
	if status, out, text := put(map[string]any{"url": "https://ci.example/new", "active": false}); status != http.StatusOK || out.URL != "https://ci.example/new" || out.Active || !out.SecretSet {
		t.Errorf("put url: %d %s", status, text)
	}
	if status, out, text := put(map[string]any{"secret": nil}); status != http.StatusOK || out.SecretSet {
		t.Errorf("put secret null: %d %s", status, text)
	}
	if status, _, text := put(map[string]any{"events": []string{"repo:push", "repo:explode"}}); status != http.StatusBadRequest || !strings.Contains(text, "repo:explode") {
		t.Errorf("put unknown event: %d %s", status, text)
	}
	if got := v.e.Hooks("acme/api"); !slices.Equal(got[0].Events, []string{"pullrequest:created", "repo:push"}) {
		t.Errorf("a rejected update changed the hook: %+v", got[0])
	}
	for _, bad := range []map[string]any{
		{"url": "https://x.example", "events": []string{"push"}},
		{"url": "not a url", "events": []string{"repo:push"}},
		{"url": "https://x.example", "events": []string{}},
	} {
		if resp, text := v.api(http.MethodPost, alice, "/repositories/acme/api/hooks", jsonBody(t, bad)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bad hook %v: %d %s", bad, resp.StatusCode, text)
		}
	}

	v.wantError(bob, "/repositories/acme/api/hooks", http.StatusForbidden, msgNotAdmin)
	resp, body = v.api(http.MethodDelete, alice, "/repositories/acme/api/hooks/"+strings.Trim(h.UUID, "{}"), nil)
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("delete: %d %s", resp.StatusCode, body)
	}
	v.wantError(alice, "/repositories/acme/api/hooks/"+url.PathEscape(h.UUID), http.StatusNotFound, msgNoHook)
	v.e.DropScope("alice", testKey, "webhook")
	v.wantError(alice, "/repositories/acme/api/hooks", http.StatusForbidden, msgScopes)
}

func TestHookGoAPI(t *testing.T) {
	v := newEnv(t)
	h, err := v.e.AddHook("acme/api", Hook{URL: "https://ci.example/h", Events: []string{"repo:push"}, Active: true, Secret: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.AddHook("acme/api", Hook{URL: "https://ci.example/h", Events: []string{"nope"}}); err == nil {
		t.Error("an unknown event was accepted")
	}
	v.e.SetHookActive("acme/api", strings.Trim(h.UUID, "{}"), false)
	v.e.EditHook("acme/api", h.UUID, "https://elsewhere.example/", []string{"pullrequest:created"}, true)
	got := v.e.Hooks("acme/api")[0]
	if got.Active || got.URL != "https://elsewhere.example/" || !slices.Equal(got.Events, []string{"pullrequest:created"}) || got.Secret != "" {
		t.Errorf("after edits %+v", got)
	}
	v.e.EditHook("acme/api", h.UUID, "", nil, false)
	if again := v.e.Hooks("acme/api")[0]; again.URL != got.URL || !slices.Equal(again.Events, got.Events) {
		t.Errorf("an empty edit changed the hook: %+v", again)
	}
	v.e.DeleteHook("acme/api", h.UUID)
	if len(v.e.Hooks("acme/api")) != 0 {
		t.Error("hook not deleted")
	}
}
