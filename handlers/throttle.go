package handlers

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"tether/internal/accounts"
	"tether/internal/throttle"
)

// The ways in are throttled per client address and per account, so that
// guessing passwords, asking sign-up which e-mails have accounts, or
// trying invitation links is slow for whoever keeps at it, and refused
// before any password is hashed, so it costs nobody else anything.
var (
	// Per address: an office behind one NAT logs in a few times a minute.
	loginPerAddress  = throttle.Rule{Burst: 20, Every: 3 * time.Second}
	signupPerAddress = throttle.Rule{Burst: 10, Every: 30 * time.Second}
	acceptPerAddress = throttle.Rule{Burst: 20, Every: 3 * time.Second}
	// Per account, every attempt counts: ten, then one every 30 seconds
	// (120 guesses an hour at most; a person logs in a few times a day).
	loginPerAccount  = throttle.Rule{Burst: 10, Every: 30 * time.Second}
	signupPerEmail   = throttle.Rule{Burst: 3, Every: time.Minute}
	acceptPerAccount = throttle.Rule{Burst: 10, Every: 6 * time.Second}
)

// throttleKeys bounds each limiter's memory (a bucket and its key, at
// most ~300 bytes each).
const throttleKeys = 10000

// limits are the limiters of the ways in.
type limits struct {
	loginAddress, loginAccount   *throttle.Limiter
	signupAddress, signupEmail   *throttle.Limiter
	acceptAddress, acceptAccount *throttle.Limiter
	passwords                    turns // one password check per address at a time
}

func newLimits() limits {
	l := func(r throttle.Rule) *throttle.Limiter { return throttle.New(r, throttleKeys) }
	return limits{
		loginAddress: l(loginPerAddress), loginAccount: l(loginPerAccount),
		signupAddress: l(signupPerAddress), signupEmail: l(signupPerEmail),
		acceptAddress: l(acceptPerAddress), acceptAccount: l(acceptPerAccount),
	}
}

// attempt is one limiter and the key an attempt is counted under.
type attempt struct {
	limiter *throttle.Limiter
	key     string
}

// allow counts the attempt under the client's address and then each
// account key. When one is out of attempts it sets Retry-After and
// returns the message to show where the person acted.
func allow(c echo.Context, address *throttle.Limiter, accounts ...attempt) (string, bool) {
	for _, a := range append([]attempt{{address, clientKey(c)}}, accounts...) {
		if ok, wait := a.limiter.Allow(a.key); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return "Too many attempts. Try again " + inTime(secs) + ".", false
		}
	}
	return "", true
}

// turns lets one password check per client address go at a time; more
// from the same address wait behind it. Password hashing shares a few CPU
// slots among everyone (package accounts), so without this one client
// sending many requests at once would queue them all ahead of other
// people; with it, each client holds at most one place in that line.
// Entries live only while a check runs or waits.
type turns struct {
	mu sync.Mutex
	m  map[string]*turn
}

type turn struct {
	slot  chan struct{}
	users int // holding or waiting
}

// take waits for key's turn, or for ctx to end; release ends the turn.
func (t *turns) take(ctx context.Context, key string) (release func(), err error) {
	t.mu.Lock()
	if t.m == nil {
		t.m = map[string]*turn{}
	}
	tn, ok := t.m[key]
	if !ok {
		tn = &turn{slot: make(chan struct{}, 1)}
		t.m[key] = tn
	}
	tn.users++
	t.mu.Unlock()
	leave := func() {
		t.mu.Lock()
		if tn.users--; tn.users == 0 {
			delete(t.m, key)
		}
		t.mu.Unlock()
	}
	select {
	case tn.slot <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	return func() {
		<-tn.slot
		leave()
	}, nil
}

// inTime says when, in words: "in 45 seconds", "in 3 minutes".
func inTime(secs int) string {
	switch {
	case secs <= 1:
		return "in a second"
	case secs < 90:
		return fmt.Sprintf("in %d seconds", secs)
	default:
		return fmt.Sprintf("in %d minutes", (secs+59)/60)
	}
}

// clientKey is the key a client is throttled under: its address (an
// IPv6 client's /64).
func clientKey(c echo.Context) string { return throttle.AddressKey(c.RealIP()) }

// accountKey is the key an e-mail address is throttled under: case does
// not make another account, and a key is never longer than an address
// may be.
func accountKey(email string) string {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > accounts.MaxEmail {
		email = email[:accounts.MaxEmail]
	}
	return email
}

// tooMany is the status a throttled request is answered with.
const tooMany = http.StatusTooManyRequests
