package bitbucket

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"
)

// Bitbucket Cloud allows about 1,000 REST API calls per user over a rolling
// hour for repository and webhook data, shared with everything else that
// person runs; over it, it answers 429 with Retry-After
// (https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/).
// A Budget paces the calls Tether makes with each connection so that it
// stays a good citizen of that hour.

// DefaultBudget is the API calls per connection per rolling hour Tether
// allows itself by default: 80 % of Bitbucket's 1,000, leaving the rest
// to the person's other tools.
const DefaultBudget = 800

// Priority says who waits on an API call.
type Priority int

const (
	// Interactive calls are what a person asked for and waits on: create,
	// Regenerate, Check now, Change, Re-home, the repository picker,
	// troubleshooting. They go first and may wait a little for the budget.
	Interactive Priority = iota
	// Background calls are Tether's own checks. They never wait: when the
	// budget is low they are shed, with the time to try again.
	Background
	// FollowUp is work finishing an answer already begun — the lookup by
	// UUID that a 404 calls for, to tell a deleted webhook from a moved
	// repository, or the branch comparison a repair calls for. It never
	// waits, but may borrow ahead of the bucket as people's calls do, so
	// the first call is not spent in vain.
	FollowUp
)

func (p Priority) String() string {
	switch p {
	case Background:
		return "background"
	case FollowUp:
		return "follow-up"
	}
	return "interactive"
}

type (
	connectionKey struct{}
	priorityKey   struct{}
	unbudgetedKey struct{}
)

// WithConnection returns ctx whose API calls spend the budget of the
// Bitbucket connection of Tether user userID. connections.Do sets it; a
// budgeted Client refuses API calls without it, so no code path can forget
// to count.
func WithConnection(ctx context.Context, userID int64) context.Context {
	return context.WithValue(ctx, connectionKey{}, userID)
}

// ConnectionOf is the connection WithConnection put in ctx.
func ConnectionOf(ctx context.Context) (int64, bool) {
	id, ok := ctx.Value(connectionKey{}).(int64)
	return id, ok
}

// WithPriority returns ctx whose API calls have priority p. Without it a
// call is Interactive: every background loop sets Background.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf is the priority of ctx's API calls.
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// Unbudgeted returns ctx for API calls made with a token that belongs to
// no connection yet — the sign-in's own GET /user, before the account
// exists. They are counted in the metrics but paced by no budget.
func Unbudgeted(ctx context.Context) context.Context {
	return context.WithValue(ctx, unbudgetedKey{}, true)
}

// ErrNoConnection is a programming error: an API call on a budgeted client
// whose context names no connection (use connections.Do, or Unbudgeted).
var ErrNoConnection = errors.New("bitbucket: API call outside any connection's budget")

// BudgetError is an API call the budget did not let through: nothing was
// sent to Bitbucket.
type BudgetError struct {
	Until  time.Time // when a call of the same priority may go through again
	Paused bool      // Bitbucket answered 429: the connection waits out Retry-After
}

func (e *BudgetError) Error() string {
	if e.Paused {
		return fmt.Sprintf("bitbucket: rate limited by Bitbucket; the connection pauses until %s", e.Until.UTC().Format(time.TimeOnly))
	}
	return fmt.Sprintf("bitbucket: the connection's hourly API budget is spent for now; next call at %s", e.Until.UTC().Format(time.TimeOnly))
}

// Deferred reports whether err is a call the budget did not make, and
// when to try again.
func Deferred(err error) (time.Time, bool) {
	var be *BudgetError
	if errors.As(err, &be) {
		return be.Until, true
	}
	return time.Time{}, false
}

const (
	// maxInteractiveWait is the longest a person's call waits for the
	// budget; beyond it the call fails at once with a BudgetError.
	maxInteractiveWait = 10 * time.Second
	// interactiveBorrow is how far ahead of the bucket's refill a person's
	// calls may go before they wait: six minutes of refill, a tenth of the
	// hourly budget. The rolling-hour cap still holds.
	interactiveBorrow = 6 * time.Minute
	// defaultRetryAfter pauses a connection after a 429 without a usable
	// Retry-After; maxPause bounds what a server may ask.
	defaultRetryAfter = time.Minute
	maxPause          = time.Hour
	// nearLimitFor is how long X-RateLimit-NearLimit slows a connection
	// when no later answer says it is over.
	nearLimitFor = 10 * time.Minute
	window       = time.Hour
)

// BudgetConfig configures a Budget.
type BudgetConfig struct {
	// PerHour is the API calls each connection may make in any rolling
	// hour; 0 means DefaultBudget.
	PerHour int
	// Clock is the budget's time; nil means the real clock. Tests and the
	// simulation benchmark pass a clockwork.FakeClock.
	Clock clockwork.Clock
}

// Budget paces the API calls made with each connection: a token bucket
// (golang.org/x/time/rate) refilled at PerHour/3600 calls a second smooths
// bursts, a log of the last hour's calls caps any rolling hour at PerHour,
// a 429 pauses the whole connection until Retry-After, and
// X-RateLimit-NearLimit slows it to a quarter. People's calls may borrow a
// tenth of the hour ahead of the bucket before they wait. Background calls
// leave a reserve for people: they are shed while fewer than half the
// bucket's tokens are left (or the bucket is in debt) or 90 % of the hour
// is spent. It is safe for concurrent
// use.
type Budget struct {
	perHour int
	burst   int
	clock   clockwork.Clock

	mu    sync.Mutex
	conns map[int64]*connBudget
	// pending are API calls made with a token no connection held yet (a
	// sign-in's), by the token's digest, until a connection uses it.
	pending map[[sha256.Size]byte][]time.Time
	// changes counts what the meters recorded (Changes).
	changes uint64
	// paused is signalled when a 429 pauses a connection (Paused).
	paused chan struct{}
}

type connBudget struct {
	lim         *rate.Limiter
	calls       []time.Time // API calls sent in the last hour, oldest first
	tokenCalls  []time.Time // token endpoint requests in the last hour
	shed        []time.Time // background calls refused in the last hour
	pausedUntil time.Time
	last429     time.Time
	retryAfter  time.Duration
	nearUntil   time.Time // X-RateLimit-NearLimit in force until
}

// NewBudget returns a budget for cfg.
func NewBudget(cfg BudgetConfig) *Budget {
	if cfg.PerHour <= 0 {
		cfg.PerHour = DefaultBudget
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	return &Budget{
		perHour: cfg.PerHour,
		burst:   min(max(cfg.PerHour/40, 4), 50),
		clock:   cfg.Clock,
		conns:   map[int64]*connBudget{},
		pending: map[[sha256.Size]byte][]time.Time{},
		paused:  make(chan struct{}, 1),
	}
}

// Unattributed records an API call made with accessToken outside any
// connection — a sign-in's, before the account is known. It counts for the
// connection that uses the same token next, as it did for the person on
// Bitbucket.
func (b *Budget) Unattributed(accessToken string) {
	if accessToken == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	for k, ts := range b.pending {
		if ts = dropBefore(ts, now.Add(-window)); len(ts) == 0 {
			delete(b.pending, k)
		} else {
			b.pending[k] = ts
		}
	}
	k := sha256.Sum256([]byte(accessToken))
	b.pending[k] = append(b.pending[k], now)
}

// claim moves the calls made with accessToken before conn held it into
// conn's hour. Callers hold b.mu.
func (b *Budget) claim(c *connBudget, accessToken string) {
	if len(b.pending) == 0 || accessToken == "" {
		return
	}
	k := sha256.Sum256([]byte(accessToken))
	ts, ok := b.pending[k]
	if !ok {
		return
	}
	delete(b.pending, k)
	c.calls = append(c.calls, ts...)
	slices.SortFunc(c.calls, time.Time.Compare)
}

// PerHour is the budget of each connection.
func (b *Budget) PerHour() int { return b.perHour }

func (b *Budget) rate() rate.Limit { return rate.Limit(float64(b.perHour) / window.Seconds()) }

func (b *Budget) conn(id int64) *connBudget {
	c, ok := b.conns[id]
	if !ok {
		c = &connBudget{lim: rate.NewLimiter(b.rate(), b.burst)}
		b.conns[id] = c
	}
	return c
}

// prune forgets what left the rolling hour and ends an expired slow-down.
func (b *Budget) prune(c *connBudget, now time.Time) {
	cut := now.Add(-window)
	c.calls = dropBefore(c.calls, cut)
	c.tokenCalls = dropBefore(c.tokenCalls, cut)
	c.shed = dropBefore(c.shed, cut)
	if !c.nearUntil.IsZero() && !now.Before(c.nearUntil) {
		c.nearUntil = time.Time{}
		c.lim.SetLimitAt(now, b.rate())
	}
}

func dropBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// admit lets one call of prio through now (recording it) and returns 0,
// or says how long an interactive call must wait, or sheds a background
// call with a *BudgetError.
func (b *Budget) admit(c *connBudget, now time.Time, prio Priority) (time.Duration, error) {
	b.prune(c, now)
	background := prio != Interactive
	if now.Before(c.pausedUntil) {
		if background {
			return 0, b.shedAt(c, now, c.pausedUntil, true)
		}
		return c.pausedUntil.Sub(now), nil
	}
	limit := b.perHour
	if background {
		limit = b.backgroundLimit(c)
	}
	if n := len(c.calls); n >= limit {
		at := c.calls[n-limit].Add(window)
		if background {
			return 0, b.shedAt(c, now, at, false)
		}
		return at.Sub(now), nil
	}
	switch prio {
	case Background:
		need := b.need(prio)
		if have := c.lim.TokensAt(now); have < need {
			wait := time.Duration((need - have) / float64(c.lim.Limit()) * float64(time.Second))
			return 0, b.shedAt(c, now, now.Add(wait), false)
		}
		c.lim.AllowN(now, 1)
	case FollowUp:
		// Finishing what a person's action or an earlier call began: it
		// may borrow ahead as people do, but never waits.
		r := c.lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > interactiveBorrow {
			r.CancelAt(now)
			return 0, b.shedAt(c, now, now.Add(d-interactiveBorrow), false)
		}
	default:
		// A person's calls may borrow ahead: a sign-up, a listing and a
		// few creates come in a burst larger than the bucket holds, and
		// should not wait seconds each. The debt delays background work,
		// which needs tokens in hand, not people.
		r := c.lim.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > interactiveBorrow {
			r.CancelAt(now)
			return d - interactiveBorrow, nil
		}
	}
	c.calls = append(c.calls, now)
	b.changes++
	return 0, nil
}

// backgroundLimit is what background work may spend of the rolling hour:
// 90 %, or half while Bitbucket says the limit is near.
func (b *Budget) backgroundLimit(c *connBudget) int {
	if !c.nearUntil.IsZero() {
		return b.perHour / 2
	}
	return b.perHour * 9 / 10
}

// need is how many tokens the bucket must hold to admit a background call
// of prio: half the burst stays for people, except for a follow-up.
func (b *Budget) need(prio Priority) float64 {
	if prio == FollowUp {
		return 1
	}
	return 1 + float64(b.burst)/2
}

func (b *Budget) shedAt(c *connBudget, now, until time.Time, paused bool) error {
	c.shed = append(c.shed, now)
	b.changes++
	return &BudgetError{Until: until, Paused: paused}
}

// Wait admits one API call with connection conn at prio, recording it as
// spent. An interactive call waits up to ten seconds (and never past ctx's
// deadline) for the budget; a background call never waits. A call not
// admitted gets a *BudgetError saying when to try again, or ctx's error.
func (b *Budget) Wait(ctx context.Context, conn int64, prio Priority) error {
	return b.wait(ctx, conn, prio, "")
}

// wait is Wait for a call made with accessToken, which first claims the
// calls made with that token before conn held it.
func (b *Budget) wait(ctx context.Context, conn int64, prio Priority, accessToken string) error {
	for {
		b.mu.Lock()
		now := b.clock.Now()
		c := b.conn(conn)
		b.claim(c, accessToken)
		d, err := b.admit(c, now, prio)
		paused := now.Before(c.pausedUntil)
		b.mu.Unlock()
		if err != nil || d == 0 {
			return err
		}
		if deadline, ok := ctx.Deadline(); d > maxInteractiveWait || ok && deadline.Before(now.Add(d)) {
			return &BudgetError{Until: now.Add(d), Paused: paused}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.clock.After(d):
		}
	}
}

// Available reports whether a call of prio would be admitted now with
// conn, without spending anything, and if not, when it may be.
func (b *Budget) Available(conn int64, prio Priority) (bool, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	c := b.conn(conn)
	b.prune(c, now)
	if now.Before(c.pausedUntil) {
		return false, c.pausedUntil
	}
	if prio == Interactive {
		return true, now
	}
	limit := b.backgroundLimit(c)
	if n := len(c.calls); n >= limit {
		return false, c.calls[n-limit].Add(window)
	}
	need := b.need(prio)
	if have := c.lim.TokensAt(now); have < need {
		return false, now.Add(time.Duration((need - have) / float64(c.lim.Limit()) * float64(time.Second)))
	}
	return true, now
}

// Observe learns from one API answer on conn: a 429 pauses the whole
// connection until its Retry-After (a minute when absent, an hour at
// most); X-RateLimit-NearLimit: true slows it to a quarter for ten
// minutes, and false ends that.
func (b *Budget) Observe(conn int64, status int, h http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	c := b.conn(conn)
	b.changes++
	if status == http.StatusTooManyRequests {
		ra := parseRetryAfterAt(h.Get("Retry-After"), now)
		if ra <= 0 {
			ra = defaultRetryAfter
		}
		ra = min(ra, maxPause)
		c.last429, c.retryAfter = now, ra
		if until := now.Add(ra); until.After(c.pausedUntil) {
			c.pausedUntil = until
		}
		select {
		case b.paused <- struct{}{}:
		default: // one signal waiting is enough
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("X-RateLimit-NearLimit"))) {
	case "true":
		if c.nearUntil.IsZero() {
			c.lim.SetLimitAt(now, b.rate()/4)
		}
		c.nearUntil = now.Add(nearLimitFor)
	case "false":
		if !c.nearUntil.IsZero() {
			c.nearUntil = time.Time{}
			c.lim.SetLimitAt(now, b.rate())
		}
	}
}

// TokenCall records one request to the OAuth token endpoint made for conn:
// it is counted apart, as it is not the REST API's budget.
func (b *Budget) TokenCall(conn int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conn(conn)
	c.tokenCalls = append(c.tokenCalls, b.clock.Now())
	b.changes++
}

// Usage is one connection's meter.
type Usage struct {
	Connection  int64 // the Tether user id
	Spent       int   // API calls sent in the last hour
	PerHour     int   // the budget
	TokenCalls  int   // token endpoint requests in the last hour (not in Spent)
	Shed        int   // background calls refused in the last hour
	PausedUntil time.Time
	Last429     time.Time     // zero if none Tether remembers (Restore keeps it across a restart)
	RetryAfter  time.Duration // what that 429 asked for
	NearLimit   bool          // X-RateLimit-NearLimit in force
}

// Usage reads conn's meter.
func (b *Budget) Usage(conn int64) Usage {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	c := b.conn(conn)
	b.prune(c, now)
	u := Usage{
		Connection: conn, Spent: len(c.calls), PerHour: b.perHour, TokenCalls: len(c.tokenCalls), Shed: len(c.shed),
		Last429: c.last429, RetryAfter: c.retryAfter, NearLimit: !c.nearUntil.IsZero(),
	}
	if now.Before(c.pausedUntil) {
		u.PausedUntil = c.pausedUntil
	}
	return u
}

// Meter is what one connection's budget remembers, so that a restart
// does not forget the hour: the API calls, token requests and shed
// background calls of the last hour, a 429's pause and X-RateLimit-NearLimit
// slow-down still in force, and the last 429. Budget.Meters takes it out,
// Budget.Restore puts it back; the store keeps it in between, as JSON.
type Meter struct {
	Connection  int64         `json:"connection"` // the Tether user id
	Calls       []time.Time   `json:"calls,omitempty"`
	TokenCalls  []time.Time   `json:"token_calls,omitempty"`
	Shed        []time.Time   `json:"shed,omitempty"`
	PausedUntil time.Time     `json:"paused_until,omitzero"`
	NearUntil   time.Time     `json:"near_until,omitzero"`
	Last429     time.Time     `json:"last_429,omitzero"`
	RetryAfter  time.Duration `json:"retry_after,omitempty"` // what the last 429 asked for, in nanoseconds
}

// Meters returns the meter of every connection with anything left in
// the rolling hour (calls, a pause, a slow-down), by connection.
func (b *Budget) Meters() []Meter {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	var out []Meter
	for id, c := range b.conns {
		b.prune(c, now)
		m := Meter{Connection: id, Calls: slices.Clone(c.calls), TokenCalls: slices.Clone(c.tokenCalls), Shed: slices.Clone(c.shed),
			NearUntil: c.nearUntil, Last429: c.last429, RetryAfter: c.retryAfter}
		if now.Before(c.pausedUntil) {
			m.PausedUntil = c.pausedUntil
		}
		if len(m.Calls)+len(m.TokenCalls)+len(m.Shed) > 0 || !m.PausedUntil.IsZero() || !m.NearUntil.IsZero() {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Meter) int { return cmp.Compare(a.Connection, b.Connection) })
	return out
}

// Restore puts back meters an earlier run saved (Meters): their calls
// count in the rolling hour again and drain the token bucket as when
// they were made, and a pause or slow-down still in force holds again.
// What has left the hour since is dropped. Call it before Tether makes
// API calls: a connection's restored calls are added to what it has.
func (b *Budget) Restore(meters []Meter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	cut := now.Add(-window)
	within := func(ts []time.Time) []time.Time {
		var out []time.Time
		for _, t := range ts {
			if t.After(cut) && !t.After(now) {
				out = append(out, t)
			}
		}
		slices.SortFunc(out, time.Time.Compare)
		return out
	}
	for _, m := range meters {
		c := b.conn(m.Connection)
		calls := within(m.Calls)
		for _, t := range calls {
			c.lim.ReserveN(t, 1) // as the call drained the bucket then
		}
		c.calls = append(c.calls, calls...)
		slices.SortFunc(c.calls, time.Time.Compare)
		c.tokenCalls = append(c.tokenCalls, within(m.TokenCalls)...)
		slices.SortFunc(c.tokenCalls, time.Time.Compare)
		c.shed = append(c.shed, within(m.Shed)...)
		slices.SortFunc(c.shed, time.Time.Compare)
		if m.PausedUntil.After(c.pausedUntil) {
			c.pausedUntil = m.PausedUntil
		}
		if m.Last429.After(c.last429) {
			c.last429, c.retryAfter = m.Last429, m.RetryAfter
		}
		if m.NearUntil.After(now) && m.NearUntil.After(c.nearUntil) {
			if c.nearUntil.IsZero() {
				c.lim.SetLimitAt(now, b.rate()/4)
			}
			c.nearUntil = m.NearUntil
		}
	}
}

// Paused receives when a 429 has paused a connection: what a restart must
// not forget, so the meters are saved at once rather than at the next tick.
// Signals do not queue: one waiting stands for any number.
func (b *Budget) Paused() <-chan struct{} { return b.paused }

// Changes counts what the meters have recorded since the budget was made
// (calls, sheds, token requests, answers observed): when it has not moved,
// Meters has nothing new to save.
func (b *Budget) Changes() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changes
}

// Connections lists the connections the budget has seen.
func (b *Budget) Connections() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int64, 0, len(b.conns))
	for id := range b.conns {
		out = append(out, id)
	}
	return out
}

// parseRetryAfterAt reads delay-seconds or an HTTP date relative to now.
func parseRetryAfterAt(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return parseRetryAfter(v)
}

// ObserveTransport wraps base (nil: http.DefaultTransport) for an HTTP
// client Tether does not drive itself — goth's, during sign-in — so that
// its requests to Bitbucket reach the metrics too: requests under apiURL
// are reported as "METHOD /path" (goth asks only /user and /user/emails,
// paths without names or ids), the token endpoint as a token call. They
// belong to no connection yet, so no budget paces them; budget (if not
// nil) counts them for the connection that uses the same token next.
func ObserveTransport(base http.RoundTripper, apiURL string, observe func(Call), budget *Budget) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &observingTransport{base: base, apiURL: strings.TrimRight(apiURL, "/"), observe: observe, budget: budget}
}

type observingTransport struct {
	base    http.RoundTripper
	apiURL  string
	observe func(Call)
	budget  *Budget
}

func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	u := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	switch {
	case strings.HasSuffix(req.URL.Path, tokenPath):
		t.observe(Call{Endpoint: req.Method + " " + tokenPath, Status: status, Token: true})
	case strings.HasPrefix(u, t.apiURL+"/"):
		route := strings.TrimPrefix(u, t.apiURL)
		if route != "/user" && route != "/user/emails" {
			route = "/other"
		}
		t.observe(Call{Endpoint: req.Method + " " + route, Status: status})
		if token, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok && t.budget != nil {
			t.budget.Unattributed(token)
		}
	}
	return resp, err
}

// WaitEnd says when a wait ends (a 429's Retry-After, a spent budget) as
// people read it: UTC to the minute, rounded up, so "until 10:13 UTC" is
// never still in force at 10:13.
func WaitEnd(t time.Time) string {
	if r := t.Truncate(time.Minute); r.Before(t) {
		t = r.Add(time.Minute)
	}
	return t.UTC().Format("15:04 UTC")
}
