package emulator

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bitbucket counts authenticated REST API calls per user over a rolling
// hour and, over the limit, answers 429 "Rate limit for this resource has
// been exceeded" with Retry-After. On the repository endpoints ("the api
// resource group") it may send X-RateLimit-Limit, X-RateLimit-Resource
// and X-RateLimit-NearLimit (true once less than a fifth of the hour's
// calls are left); Bitbucket sends those only for access tokens, so the
// emulator sends them only when asked. See
// https://support.atlassian.com/bitbucket-cloud/docs/api-request-limits/.

// callWindow is Bitbucket's rolling window.
const callWindow = time.Hour

// RateLimit makes the emulator enforce Bitbucket's per-user hourly limit.
type RateLimit struct {
	// PerHour is the calls each user may make in any rolling hour; 0
	// means no limit (the default).
	PerHour int
	// Headers sends X-RateLimit-Limit, X-RateLimit-Resource and
	// X-RateLimit-NearLimit on repository endpoints, as Bitbucket does
	// for access tokens.
	Headers bool
}

// CallCount is how many REST API requests one user's tokens made.
type CallCount struct {
	Username string
	LastHour int // in the rolling hour before now
	Total    int // since the emulator started or ResetAPICalls
	Limited  int // answered 429 by the rate limit
}

// SetRateLimit sets (or, with the zero value, lifts) the rate limit.
func (e *Emulator) SetRateLimit(rl RateLimit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rateLimit = rl
}

// APICalls lists the API requests per user, busiest first. A request
// counts when it carries a token the emulator issued — live, expired or
// revoked — whatever the answer: that is what spends a Bitbucket user's
// budget.
func (e *Emulator) APICalls() []CallCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	out := make([]CallCount, 0, len(e.calls))
	for name, c := range e.calls {
		c.prune(now)
		out = append(out, CallCount{Username: name, LastHour: len(c.recent), Total: c.total, Limited: c.limited})
	}
	slices.SortFunc(out, func(a, b CallCount) int {
		if a.Total != b.Total {
			return b.Total - a.Total
		}
		return strings.Compare(a.Username, b.Username)
	})
	return out
}

// APICallsOf is the count of one user.
func (e *Emulator) APICallsOf(username string) CallCount {
	for _, c := range e.APICalls() {
		if c.Username == username {
			return c
		}
	}
	return CallCount{Username: username}
}

// ResetAPICalls forgets every count.
func (e *Emulator) ResetAPICalls() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = map[string]*userCalls{}
}

type userCalls struct {
	recent  []time.Time // oldest first, within callWindow
	total   int
	limited int
}

func (c *userCalls) prune(now time.Time) {
	cut := now.Add(-callWindow)
	i := 0
	for i < len(c.recent) && !c.recent[i].After(cut) {
		i++
	}
	c.recent = c.recent[i:]
}

// tokenUser is the user a bearer token belongs to, whether or not it still
// works; "" for a token the emulator never issued.
func (e *Emulator) tokenUser(r *http.Request) string {
	raw := r.URL.Query().Get("access_token")
	if h := r.Header.Get("Authorization"); h != "" {
		_, rest, _ := strings.Cut(h, " ")
		raw = strings.TrimSpace(rest)
	}
	if t := e.access[raw]; t != nil {
		return t.g.username
	}
	return e.revokedTokens[raw]
}

// meterCall counts an API request and applies the rate limit. It reports
// whether the request should still be served (false: a 429 was written).
func (e *Emulator) meterCall(w http.ResponseWriter, r *http.Request, path string) bool {
	e.mu.Lock()
	name := e.tokenUser(r)
	if name == "" {
		e.mu.Unlock()
		return true
	}
	now := e.clock.Now()
	c := e.calls[name]
	if c == nil {
		c = &userCalls{}
		e.calls[name] = c
	}
	c.prune(now)
	c.recent = append(c.recent, now)
	c.total++
	rl := e.rateLimit
	used := len(c.recent)
	var retry time.Duration
	over := rl.PerHour > 0 && used > rl.PerHour
	if over {
		c.limited++
		retry = c.recent[used-rl.PerHour].Add(callWindow).Sub(now)
	}
	e.mu.Unlock()

	if rl.Headers && strings.HasPrefix(path, "/repositories/") {
		limit := rl.PerHour
		if limit == 0 {
			limit = 1000
		}
		w.Header().Set("X-RateLimit-Limit", strconv.Itoa(limit))
		w.Header().Set("X-RateLimit-Resource", "api")
		w.Header().Set("X-RateLimit-NearLimit", strconv.FormatBool(limit-used < limit/5))
	}
	if !over {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((retry+time.Second-1)/time.Second))))
	writeJSON(w, http.StatusTooManyRequests, errorBody(msgRateLimited, nil))
	return false
}
