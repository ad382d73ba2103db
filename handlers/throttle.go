package handlers

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
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
	for _, a := range append([]attempt{{address, throttle.AddressKey(c.RealIP())}}, accounts...) {
		if ok, wait := a.limiter.Allow(a.key); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
			return "Too many attempts. Try again " + inTime(secs) + ".", false
		}
	}
	return "", true
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
