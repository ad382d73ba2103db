package alerts

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// nonPublic lists the ranges, besides those netip classifies (loopback,
// RFC 1918 and fc00::/7 private, link-local, multicast, unspecified), that
// an admin-typed URL must not reach: "this network", CGNAT (RFC 6598),
// IETF protocol assignments, documentation and benchmarking nets, the
// reserved 240/4 (with the broadcast address), IPv6 discard, documentation,
// Teredo and the deprecated site-local range (RFC 6890's special-purpose
// registry).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"),
}

// Prefixes that embed an IPv4 address: NAT64 (RFC 6052, RFC 8215) and
// 6to4 (RFC 3056). The embedded address decides.
var (
	nat64      = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	sixToFour  = netip.MustParsePrefix("2002::/16")
	errRefused = errors.New("refused")
)

// Public reports whether a is an address on the public Internet: not
// loopback, private, link-local, multicast, unspecified, CGNAT or another
// special-purpose range, also when written as an IPv4-mapped IPv6 address
// or embedded in NAT64 or 6to4.
func Public(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	b := a.As16()
	for _, p := range nat64 {
		if p.Contains(a) {
			return Public(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
	}
	if sixToFour.Contains(a) {
		return Public(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	return true
}

// RefusedError is a connection the guard did not open.
type RefusedError struct{ Addr netip.Addr }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused to connect to %s: not a public address (set TETHER_ALERTS_ALLOW_PRIVATE=true for chat servers on your own network)", e.Addr)
}

func (e *RefusedError) Unwrap() error { return errRefused }

// guard decides, at connect time, which addresses outgoing alerts may
// reach. Checking the address actually dialled, not the name typed, covers
// DNS rebinding and every redirect hop alike.
type guard struct {
	allowPrivate bool
	// except lets one address through regardless (tests that need a
	// "public" first hop on loopback); nil in production.
	except func(netip.AddrPort) bool
}

func (g guard) control(network, address string, _ syscall.RawConn) error {
	if g.allowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refused to connect to %q: %w", address, errRefused)
	}
	if Public(ap.Addr()) || g.except != nil && g.except(ap) {
		return nil
	}
	return &RefusedError{Addr: ap.Addr().Unmap()}
}

// maxRedirects bounds the redirects a webhook delivery follows.
const maxRedirects = 3

// client is the HTTP client for admin-typed webhook URLs: no proxy from
// the environment (the guard must see the real destination), the guard on
// every connection, a few redirects at most and only to http(s).
func (g guard) client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: g.control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
}
