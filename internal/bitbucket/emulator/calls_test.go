package emulator

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// The emulator counts REST API calls per user over a rolling hour, as
// Bitbucket does, and when asked answers 429 with Retry-After over the
// limit and sends the X-RateLimit-* headers on repository endpoints.
func TestAPICallsAreCountedAndLimitedPerUser(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	e := New(Config{Demo: true, Clock: clock, Consumers: []Consumer{{Key: testKey, Secret: testSecret, Name: "Tether CI",
		CallbackURL: testCallback, Scopes: testScopes}}})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	v := &env{t: t, e: e, srv: srv}
	alice, bob := v.login("alice").AccessToken, v.login("bob").AccessToken

	for range 3 {
		v.get(alice, "/user")
	}
	v.get(bob, "/repositories/bob")
	v.get("not-a-token", "/user") // nobody's: not counted
	if c := e.APICallsOf("alice"); c.LastHour != 3 || c.Total != 3 {
		t.Fatalf("alice %+v", c)
	}
	if c := e.APICallsOf("bob"); c.LastHour != 1 {
		t.Fatalf("bob %+v", c)
	}
	// The control page shows the counts.
	resp, err := http.Get(srv.URL + "/_emulator/")
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if !strings.Contains(page, `<tr data-username="alice"><td>alice</td><td data-testid="calls-last-hour">3</td><td data-testid="calls-total">3</td>`) {
		t.Fatalf("control page does not show alice's 3 calls:\n%s", page)
	}

	e.SetRateLimit(RateLimit{PerHour: 5, Headers: true})
	resp, _ = v.get(alice, "/repositories/alice") // the 4th of 5
	if resp.Header.Get("X-RateLimit-Limit") != "5" || resp.Header.Get("X-RateLimit-Resource") != "api" ||
		resp.Header.Get("X-RateLimit-NearLimit") != "false" {
		t.Fatalf("headers %v", resp.Header)
	}
	resp, _ = v.get(alice, "/repositories/alice") // the 5th: none left
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-NearLimit") != "true" {
		t.Fatalf("5th call: %d, NearLimit %q", resp.StatusCode, resp.Header.Get("X-RateLimit-NearLimit"))
	}
	if resp, _ := v.get(alice, "/user"); resp.Header.Get("X-RateLimit-Limit") != "" {
		t.Fatal("X-RateLimit-* sent outside the repository endpoints")
	}
	resp, body := v.get(alice, "/user") // over
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Rate limit for this resource has been exceeded") {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	if c := e.APICallsOf("alice"); c.Limited != 2 || c.LastHour != 7 {
		t.Fatalf("alice after the limit %+v", c)
	}
	if resp, _ := v.get(bob, "/user"); resp.StatusCode != http.StatusOK {
		t.Fatal("bob limited by alice's calls")
	}

	// A revoked token's calls still count for its user.
	e.RevokeAuthorization("alice", testKey)
	v.get(alice, "/user")
	if c := e.APICallsOf("alice"); c.Total != 8 {
		t.Fatalf("revoked token's call not counted: %+v", c)
	}

	// The hour rolls: the counts of the last hour empty, the total stays.
	clock.Advance(time.Hour + time.Second)
	if c := e.APICallsOf("alice"); c.LastHour != 0 || c.Total != 8 {
		t.Fatalf("after an hour %+v", c)
	}
	e.ResetAPICalls()
	if c := e.APICalls(); len(c) != 0 {
		t.Fatalf("after reset %+v", c)
	}
}
