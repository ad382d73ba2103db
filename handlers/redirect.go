package handlers

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxTarget bounds a redirect target; Tether's own paths are far shorter.
const maxTarget = 2048

// localTarget returns raw when a browser given it as a Location (or
// HX-Redirect) stays on this site, else fallback. Every target that comes
// from a request — next, return_to, HX-Current-URL — passes through here,
// so none can send people elsewhere.
//
// A target must be a path: printable ASCII only (browsers drop tabs and
// newlines, so "/\t/evil.example" becomes "//evil.example"; non-ASCII
// look-alikes such as U+FF0F are refused with the rest), no backslash
// (read as "/"), no scheme, host or user, no "//" prefix, no "." or ".."
// segment, and none of that hidden behind percent-encoding, once or
// repeatedly.
func localTarget(raw, fallback string) string {
	if raw == "" || len(raw) > maxTarget || raw[0] != '/' {
		return fallback
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f || raw[i] == '\\' {
			return fallback
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return fallback
	}
	// Decode the path as often as it decodes: each layer must be as
	// harmless as the first.
	p := u.EscapedPath()
	for range 4 {
		dec, err := url.PathUnescape(p)
		if err != nil || !safePath(dec) {
			return fallback
		}
		if dec == p {
			return raw
		}
		p = dec
	}
	return fallback
}

// safePath reports whether a decoded path is an absolute path on this
// site of printable ASCII without backslashes or dot segments.
func safePath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < ' ' || p[i] >= 0x7f {
			return false
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// redirect is how every handler sends people on: to target when it is a
// local path (localTarget), else to fallback. An htmx request gets
// HX-Redirect with status (htmx swaps nothing and loads the page); any
// other request gets a 303.
func redirect(c echo.Context, status int, target, fallback string) error {
	to := localTarget(target, fallback)
	if isHTMX(c.Request()) {
		c.Response().Header().Set("HX-Redirect", to)
		return c.NoContent(status)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// returnPath is where a person who must log in first was going: the page
// htmx was polling from (HX-Current-URL), or the page they asked for. A
// refused value yields "".
func returnPath(r *http.Request) string {
	if isHTMX(r) {
		u, err := url.Parse(r.Header.Get("HX-Current-URL"))
		if err != nil {
			return ""
		}
		return localTarget(u.RequestURI(), "")
	}
	if r.Method != http.MethodGet {
		return ""
	}
	return localTarget(r.URL.RequestURI(), "")
}

// loginURL is the login page with next set to where the person was going.
func loginURL(r *http.Request) string {
	next := returnPath(r)
	if next == "" || next == "/" {
		return "/login"
	}
	return "/login?" + url.Values{"next": {next}}.Encode()
}
