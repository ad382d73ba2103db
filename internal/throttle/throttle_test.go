package throttle

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(Rule{Burst: 3, Every: 10 * time.Second}, 100)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 10*time.Second {
		t.Fatalf("fourth attempt: %v, wait %s", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares the first one's bucket")
	}
	now = now.Add(4 * time.Second)
	if ok, wait := l.Allow("a"); ok || wait != 6*time.Second {
		t.Fatalf("after 4 s: %v, wait %s", ok, wait)
	}
	now = now.Add(6 * time.Second)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("no attempt after waiting")
	}
}

// Invented keys cannot grow the limiter: it holds at most two
// generations of MaxKeys, and a key in use survives a generation change.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := New(Rule{Burst: 1, Every: time.Hour}, 100)
	l.Allow("victim")
	for i := range 10000 {
		l.Allow(fmt.Sprint("invented-", i))
		if i%50 == 0 {
			if ok, _ := l.Allow("victim"); ok {
				t.Fatal("the victim's bucket was refilled by invented keys")
			}
		}
	}
	if n := len(l.cur) + len(l.prev); n > 200 {
		t.Fatalf("%d buckets for a limit of 100 keys", n)
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
}
