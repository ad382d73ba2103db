package bitbucket_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"tether/internal/bitbucket"
)

// drain spends background calls on conn until the budget sheds one, and
// returns how many went through and the shed error.
func drain(t *testing.T, b *bitbucket.Budget, conn int64) (int, *bitbucket.BudgetError) {
	t.Helper()
	for n := 0; n < 100000; n++ {
		err := b.Wait(context.Background(), conn, bitbucket.Background)
		if err != nil {
			var be *bitbucket.BudgetError
			if !errors.As(err, &be) {
				t.Fatalf("background call: %v", err)
			}
			return n, be
		}
	}
	t.Fatal("the budget never shed a background call")
	return 0, nil
}

// Over two simulated hours of background calls as fast as allowed, no
// rolling hour holds more than the budget, and the hour is used well.
func TestBudgetKeepsEveryRollingHourUnderBudget(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	b := bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: 200, Clock: clock})
	var sent []time.Time
	for range 2 * 3600 {
		n, _ := drain(t, b, 1)
		for range n {
			sent = append(sent, clock.Now())
		}
		clock.Advance(time.Second)
	}
	most := 0
	for i := range sent {
		j := i
		for j < len(sent) && sent[j].Sub(sent[i]) < time.Hour {
			j++
		}
		most = max(most, j-i)
	}
	if most > 200 {
		t.Fatalf("%d calls in one rolling hour, budget 200", most)
	}
	// Background work may use up to 90 % of the hour, leaving the rest
	// to people; it should not be starved much below that either.
	if most < 150 {
		t.Fatalf("only %d calls in the busiest hour: the budget is too timid", most)
	}
	if u := b.Usage(1); u.Spent > 200 || u.Shed == 0 {
		t.Fatalf("meter %+v", u)
	}
}

// What a person asks for goes before background work: with the
// background share spent, an interactive call still goes through at once.
func TestBudgetPeopleBeforeBackground(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	b := bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: 800, Clock: clock})
	n, shed := drain(t, b, 7)
	if n == 0 || shed.Paused || !shed.Until.After(clock.Now()) {
		t.Fatalf("background: %d calls, then %+v", n, shed)
	}
	if ok, _ := b.Available(7, bitbucket.Background); ok {
		t.Fatal("background still available after being shed")
	}
	// Background work finishing an answer it began may still go.
	if err := b.Wait(context.Background(), 7, bitbucket.FollowUp); err != nil {
		t.Fatalf("follow-up shed with tokens left: %v", err)
	}
	for i := range 5 {
		if err := b.Wait(context.Background(), 7, bitbucket.Interactive); err != nil {
			t.Fatalf("interactive call %d waited for background work: %v", i, err)
		}
	}
	// Another connection's budget is its own.
	if err := b.Wait(context.Background(), 8, bitbucket.Background); err != nil {
		t.Fatalf("another connection shed: %v", err)
	}
	// Once the bucket refills, background work resumes by itself.
	clock.Advance(shed.Until.Sub(clock.Now()) + time.Minute)
	if err := b.Wait(context.Background(), 7, bitbucket.Background); err != nil {
		t.Fatalf("background after the wait: %v", err)
	}
}

// A person's calls go at once for a burst well beyond the bucket — they
// borrow six minutes of its refill — and then wait for the bucket (on the
// budget's clock) rather than fail, as long as the wait is short.
func TestBudgetInteractiveWaitsBriefly(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	b := bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: 3600, Clock: clock}) // one a second, burst 50
	for i := range 50 + 360 {
		if err := b.Wait(context.Background(), 1, bitbucket.Interactive); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if ok, _ := b.Available(1, bitbucket.Background); ok {
		t.Fatal("background work may go while people borrowed ahead")
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background(), 1, bitbucket.Interactive) }()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the 411th call did not wait: %v", err)
	default:
	}
	clock.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatalf("after a second: %v", err)
	}
}

// A 429 pauses the whole connection until Retry-After: background calls
// are shed with the pause's end, a person's call fails at once rather
// than hang, other connections go on, and the meter says so.
func TestBudget429PausesTheConnection(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	b := bitbucket.NewBudget(bitbucket.BudgetConfig{Clock: clock})
	b.Observe(3, http.StatusTooManyRequests, http.Header{"Retry-After": {"120"}})
	until := clock.Now().Add(120 * time.Second)
	for _, prio := range []bitbucket.Priority{bitbucket.Background, bitbucket.Interactive} {
		err := b.Wait(context.Background(), 3, prio)
		var be *bitbucket.BudgetError
		if !errors.As(err, &be) || !be.Paused || !be.Until.Equal(until) {
			t.Fatalf("%s call during the pause: %v", prio, err)
		}
		if !bitbucket.IsTransient(err) {
			t.Fatal("a paused call is not transient")
		}
	}
	if err := b.Wait(context.Background(), 4, bitbucket.Background); err != nil {
		t.Fatalf("another connection paused too: %v", err)
	}
	u := b.Usage(3)
	if !u.PausedUntil.Equal(until) || u.RetryAfter != 120*time.Second || !u.Last429.Equal(clock.Now()) {
		t.Fatalf("meter %+v", u)
	}
	clock.Advance(120 * time.Second)
	if err := b.Wait(context.Background(), 3, bitbucket.Background); err != nil {
		t.Fatalf("after Retry-After: %v", err)
	}

	// A short pause is waited out by a person's call; no Retry-After
	// means a minute.
	b.Observe(5, http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}})
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background(), 5, bitbucket.Interactive) }()
	if err := clock.BlockUntilContext(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("short pause: %v", err)
	}
	b.Observe(6, http.StatusTooManyRequests, http.Header{})
	if u := b.Usage(6); u.PausedUntil.Sub(clock.Now()) != time.Minute {
		t.Fatalf("pause without Retry-After: %v", u.PausedUntil.Sub(clock.Now()))
	}
}

// X-RateLimit-NearLimit: true halves what background work may spend and
// slows the bucket; false lifts it.
func TestBudgetNearLimitSlowsDown(t *testing.T) {
	t.Parallel()
	normalClock, nearClock := clockwork.NewFakeClock(), clockwork.NewFakeClock()
	normal := bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: 800, Clock: normalClock})
	near := bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: 800, Clock: nearClock})
	near.Observe(1, http.StatusOK, http.Header{"X-Ratelimit-Nearlimit": {"true"}})
	if !near.Usage(1).NearLimit {
		t.Fatal("NearLimit not noted")
	}
	spent := func(b *bitbucket.Budget, clock *clockwork.FakeClock) int {
		total := 0
		for range 540 { // nine simulated minutes
			n, _ := drain(t, b, 1)
			total += n
			clock.Advance(time.Second)
		}
		return total
	}
	a, s := spent(normal, normalClock), spent(near, nearClock)
	if s*2 > a {
		t.Fatalf("near the limit %d background calls in nine minutes, normally %d", s, a)
	}
	near.Observe(1, http.StatusOK, http.Header{"X-Ratelimit-Nearlimit": {"false"}})
	if near.Usage(1).NearLimit {
		t.Fatal("NearLimit: false did not lift the slow-down")
	}
}

// The client asks the budget before every API request, so no caller can
// forget it: without a connection in the context nothing is sent; the
// token endpoint is counted apart; a 429 pauses the connection's next
// calls before they reach Bitbucket.
func TestClientSpendsTheConnectionsBudget(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	status := atomic.Int64{}
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/site/oauth2/access_token" {
			w.Write([]byte(`{"access_token":"a","refresh_token":"r","expires_in":7200}`))
			return
		}
		if s := int(status.Load()); s != http.StatusOK {
			w.Header().Set("Retry-After", "300")
			w.WriteHeader(s)
			w.Write([]byte(`{"type":"error","error":{"message":"Rate limit for this resource has been exceeded"}}`))
			return
		}
		w.Write([]byte(`{"uuid":"{u}","username":"alice"}`))
	}))
	t.Cleanup(srv.Close)
	clock := clockwork.NewFakeClock()
	budget := bitbucket.NewBudget(bitbucket.BudgetConfig{Clock: clock})
	var calls []bitbucket.Call
	c := bitbucket.New(bitbucket.Config{WebURL: srv.URL, APIURL: srv.URL + "/2.0", ClientID: "id", ClientSecret: "s",
		Budget: budget, Clock: clock, Observe: func(call bitbucket.Call) { calls = append(calls, call) }})

	if _, _, err := c.CurrentUser(context.Background(), "tok"); !errors.Is(err, bitbucket.ErrNoConnection) || hits.Load() != 0 {
		t.Fatalf("a call outside any budget: %v, %d sent", err, hits.Load())
	}
	if _, _, err := c.CurrentUser(bitbucket.Unbudgeted(context.Background()), "tok"); err != nil {
		t.Fatalf("sign-in call: %v", err)
	}
	ctx := bitbucket.WithConnection(context.Background(), 42)
	if _, _, err := c.CurrentUser(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, "refresh"); err != nil {
		t.Fatal(err)
	}
	// The sign-in's call was made with the same token: it counts for the
	// connection too, as it did for the person on Bitbucket.
	if u := budget.Usage(42); u.Spent != 2 || u.TokenCalls != 1 {
		t.Fatalf("meter %+v, want 2 API calls and 1 token call", u)
	}
	status.Store(http.StatusTooManyRequests)
	if _, _, err := c.CurrentUser(ctx, "tok"); !bitbucket.IsTransient(err) {
		t.Fatalf("429: %v", err)
	}
	before := hits.Load()
	_, _, err := c.CurrentUser(bitbucket.WithPriority(ctx, bitbucket.Background), "tok")
	if until, ok := bitbucket.Deferred(err); !ok || until.Sub(clock.Now()) != 300*time.Second || hits.Load() != before {
		t.Fatalf("during the pause: %v, %d sent", err, hits.Load()-before)
	}
	want := []string{"GET /user", "GET /user", "POST /site/oauth2/access_token", "GET /user"}
	if len(calls) != len(want) {
		t.Fatalf("observed %+v", calls)
	}
	for i, w := range want {
		if calls[i].Endpoint != w || calls[i].Token != (w == "POST /site/oauth2/access_token") {
			t.Fatalf("call %d: %+v, want %s", i, calls[i], w)
		}
	}
	if calls[3].Status != http.StatusTooManyRequests {
		t.Fatalf("status %d", calls[3].Status)
	}
}

// A wait's end is said to the minute, rounded up: "until 10:13" is never
// still in force at 10:13.
func TestWaitEnd(t *testing.T) {
	for _, tc := range []struct {
		at   time.Time
		says string
	}{
		{time.Date(2026, 11, 30, 10, 12, 22, 0, time.UTC), "10:13 UTC"},
		{time.Date(2026, 11, 30, 10, 12, 0, 0, time.UTC), "10:12 UTC"},
		{time.Date(2026, 11, 30, 10, 12, 0, 1, time.UTC), "10:13 UTC"},
		{time.Date(2026, 11, 30, 23, 59, 30, 0, time.FixedZone("CET", 3600)), "23:00 UTC"},
	} {
		if got := bitbucket.WaitEnd(tc.at); got != tc.says {
			t.Errorf("WaitEnd(%s) = %q, want %q", tc.at, got, tc.says)
		}
	}
}

// A restart does not forget the hour: the meters an earlier run saved
// (as JSON, as the store keeps them), put back into a fresh budget, make
// it answer as the one that never stopped would — the same meter, the same
// pause, the same calls admitted now and as the hour rolls on — and a
// meter saved more than an hour ago brings nothing back.
func TestBudgetMetersSurviveARestart(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	cfg := bitbucket.BudgetConfig{PerHour: 200, Clock: clock}
	ran := bitbucket.NewBudget(cfg)
	for range 600 { // ten minutes of background work as fast as allowed
		drain(t, ran, 1)
		clock.Advance(time.Second)
	}
	for range 5 { // and a person's burst
		if err := ran.Wait(context.Background(), 1, bitbucket.Interactive); err != nil {
			t.Fatal(err)
		}
	}
	ran.TokenCall(1)
	ran.Observe(2, http.StatusTooManyRequests, http.Header{"Retry-After": {"1800"}})
	ran.Observe(3, http.StatusOK, http.Header{"X-Ratelimit-Nearlimit": {"true"}})
	saved, err := json.Marshal(ran.Meters())
	if err != nil {
		t.Fatal(err)
	}
	var meters []bitbucket.Meter
	if err := json.Unmarshal(saved, &meters); err != nil {
		t.Fatal(err)
	}
	if len(meters) != 3 {
		t.Fatalf("%d meters saved, want 3 (calls, a pause, a slow-down): %s", len(meters), saved)
	}
	restarted := bitbucket.NewBudget(cfg)
	restarted.Restore(meters)

	same := func(when string) {
		t.Helper()
		for conn := int64(1); conn <= 3; conn++ {
			if a, b := wall(ran.Usage(conn)), wall(restarted.Usage(conn)); !reflect.DeepEqual(a, b) {
				t.Fatalf("%s, connection %d: meter %+v after the restart, %+v without", when, conn, b, a)
			}
			for _, prio := range []bitbucket.Priority{bitbucket.Background, bitbucket.FollowUp, bitbucket.Interactive} {
				okA, atA := ran.Available(conn, prio)
				okB, atB := restarted.Available(conn, prio)
				if okA != okB || !atA.Equal(atB) {
					t.Fatalf("%s, connection %d, %s: available %v until %s after the restart, %v until %s without", when, conn, prio, okB, atB, okA, atA)
				}
			}
		}
		if a, b := restarted.Usage(1).Spent, ran.Usage(1).Spent; a == 0 || a != b {
			t.Fatalf("%s: %d calls in the hour after the restart, %d without", when, a, b)
		}
	}
	same("at once")
	if u := restarted.Usage(2); u.PausedUntil.IsZero() || u.RetryAfter != 30*time.Minute {
		t.Fatalf("the 429's pause was forgotten: %+v", u)
	}
	if u := restarted.Usage(3); !u.NearLimit {
		t.Fatalf("the slow-down was forgotten: %+v", u)
	}
	// The same calls go through from here on: the token bucket was
	// drained as by the calls themselves.
	for step := range 40 {
		a, _ := drain(t, ran, 1)
		b, _ := drain(t, restarted, 1)
		if a != b {
			t.Fatalf("%d s on: %d background calls admitted after the restart, %d without", step*90, b, a)
		}
		clock.Advance(90 * time.Second)
	}
	same("an hour on")

	late := bitbucket.NewBudget(cfg)
	late.Restore(meters) // saved an hour ago
	for conn := int64(1); conn <= 3; conn++ {
		if u := late.Usage(conn); u.Spent != 0 || u.TokenCalls != 0 || !u.PausedUntil.IsZero() || u.NearLimit {
			t.Fatalf("connection %d: a meter saved an hour ago still counts: %+v", conn, u)
		}
	}
}

// wall drops the monotonic clock readings from u's times: JSON keeps the
// wall clock only, as a restart would.
func wall(u bitbucket.Usage) bitbucket.Usage {
	u.PausedUntil, u.Last429 = u.PausedUntil.Round(0).UTC(), u.Last429.Round(0).UTC()
	return u
}
