// Package throttle limits how often one key — a client address, an
// account — may try something that an attacker would repeat: logging in,
// signing up, accepting an invitation. Each key has a token bucket from
// golang.org/x/time/rate; the buckets live in memory bounded by a number
// of keys, so a client that invents keys cannot grow it without end.
package throttle

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rule is a token bucket: Burst attempts at once, then one more each
// Every.
type Rule struct {
	Burst int
	Every time.Duration
}

// Limiter keeps a bucket per key. It keeps at most 2×MaxKeys buckets:
// when the current generation is full it becomes the previous one and
// the one before is dropped; a key found in the previous generation
// moves to the current one. A dropped key starts again with a full
// bucket, which only happens to keys idle while MaxKeys others were
// used.
type Limiter struct {
	rule    Rule
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	cur, prev map[string]*rate.Limiter
}

// New returns a limiter applying rule to each of up to maxKeys keys.
func New(rule Rule, maxKeys int) *Limiter {
	return &Limiter{rule: rule, maxKeys: maxKeys, now: time.Now,
		cur: map[string]*rate.Limiter{}, prev: map[string]*rate.Limiter{}}
}

// bucket returns key's bucket, creating it full; l.mu is held.
func (l *Limiter) bucket(key string) *rate.Limiter {
	if b, ok := l.cur[key]; ok {
		return b
	}
	b, ok := l.prev[key]
	if !ok {
		b = rate.NewLimiter(rate.Every(l.rule.Every), l.rule.Burst)
	}
	if len(l.cur) >= l.maxKeys {
		l.prev, l.cur = l.cur, make(map[string]*rate.Limiter, l.maxKeys)
	}
	l.cur[key] = b
	return b
}

// Allow takes one attempt for key. When none is left it takes nothing
// and returns false with how long until the next attempt is allowed.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucket(key)
	if b.AllowN(now, 1) {
		return true, 0
	}
	return false, l.wait(b, now)
}

// wait is how long until b holds one whole token.
func (l *Limiter) wait(b *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - b.TokensAt(now)
	return time.Duration(missing * float64(l.rule.Every))
}

// AddressKey is the key for a client address: the address itself for
// IPv4, its /64 network for IPv6 (one subscriber usually holds a whole
// /64, so single IPv6 addresses would cost an attacker nothing). An
// unparsable address is its own key.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
