package handlers

import (
	"net/url"
	"strings"
	"testing"
)

// Every trick that turns a "local" target into another site, or hides a
// path Tether never serves: each must fall back to the safe page.
var refusedTargets = []struct{ name, target string }{
	{"empty", ""},
	{"scheme-relative", "//evil.example/path"},
	{"three slashes", "///evil.example"},
	{"four slashes", "////evil.example"},
	{"absolute https", "https://evil.example/"},
	{"absolute, upper case", "HTTPS://evil.example/"},
	{"scheme without slashes", "http:evil.example"},
	{"javascript", "javascript:alert(1)"},
	{"javascript, mixed case", "JaVaScRiPt:alert(1)"},
	{"data", "data:text/html,<script>alert(1)</script>"},
	{"backslash", `/\evil.example`},
	{"two backslashes", `\\evil.example`},
	{"slash backslash slash", `/\/evil.example`},
	{"tab inside", "/\t/evil.example/path"},
	{"newline inside", "/\n/evil.example"},
	{"carriage return inside", "/\r/evil.example"},
	{"space inside", "/ /evil.example"},
	{"leading space", " /projects"},
	{"leading tab", "\t//evil.example"},
	{"NUL", "/projects\x00"},
	{"DEL", "/projects\x7f"},
	{"user info", "//user@evil.example"},
	{"no leading slash", "evil.example/projects"},
	{"relative dot", "./projects"},
	{"encoded slashes", "/%2F/evil.example"},
	{"encoded slashes, lower case", "/%2f%2fevil.example"},
	{"encoded backslash", "/%5Cevil.example"},
	{"encoded tab", "/%09/evil.example"},
	{"encoded newline", "/%0a/evil.example"},
	{"encoded NUL", "/%00"},
	{"double-encoded slashes", "/%252F%252Fevil.example"},
	{"triple-encoded slashes", "/%25252F%25252Fevil.example"},
	{"double-encoded backslash", "/%255Cevil.example"},
	{"bad escape", "/%zz"},
	{"dot segment", "/./projects"},
	{"dot-dot segment", "/projects/../../evil"},
	{"encoded dot-dot", "/%2e%2e/evil"},
	{"dot-dot then empty", "/..//evil.example"},
	{"fullwidth solidus", "/／／evil.example"},
	{"encoded fullwidth solidus", "/%EF%BC%8F%EF%BC%8Fevil.example"},
	{"ideographic full stop", "/evil。example"},
	{"line separator", "/\u2028/evil.example"},
	{"no-break space", "/\u00a0/evil.example"},
	{"zero-width space", "/\u200b/evil.example"},
	{"right-to-left override", "/\u202eelpmaxe.live//"},
	{"too long", "/" + strings.Repeat("a", maxTarget)},
}

// Targets Tether itself uses stay as they are.
var keptTargets = []string{
	"/",
	"/projects",
	"/projects/3",
	"/projects/3?x=1#activity",
	"/invitations/Zk3-a_9QxYw",
	"/account?bitbucket=connected",
	"/team/audit?project=1&person=2",
	"/login?next=%2Fprojects%2F3",
	"/a%20b",
}

func TestLocalTarget(t *testing.T) {
	const fallback = "/fallback"
	for _, tc := range refusedTargets {
		if got := localTarget(tc.target, fallback); got != fallback {
			t.Errorf("%s: localTarget(%q) = %q, want the fallback", tc.name, tc.target, got)
		}
	}
	for _, target := range keptTargets {
		if got := localTarget(target, fallback); got != target {
			t.Errorf("localTarget(%q) = %q, want it kept", target, got)
		}
	}
}

// browserResolve is where a browser goes when told Location: target on
// base, done the way WHATWG URL parsing does it: leading and trailing C0
// controls and spaces trimmed, tabs and newlines removed anywhere, and
// backslashes read as slashes in http(s) URLs.
func browserResolve(base *url.URL, target string) (*url.URL, error) {
	target = strings.TrimFunc(target, func(r rune) bool { return r <= ' ' })
	target = strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		if r == '\\' {
			return '/'
		}
		return r
	}, target)
	ref, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(ref), nil
}

// FuzzLocalTarget: whatever a request carries as next, return_to or
// HX-Current-URL, the target is the fallback or the value itself, and a
// browser following it — or following it once a proxy has decoded it —
// stays on Tether's host.
func FuzzLocalTarget(f *testing.F) {
	for _, tc := range refusedTargets {
		f.Add(tc.target)
	}
	for _, target := range keptTargets {
		f.Add(target)
	}
	base, _ := url.Parse("https://tether.example/projects/1")
	f.Fuzz(func(t *testing.T, target string) {
		got := localTarget(target, "/fallback")
		if got == "/fallback" {
			return
		}
		if got != target {
			t.Fatalf("localTarget(%q) = %q: neither the target nor the fallback", target, got)
		}
		forms := []string{got}
		if dec, err := url.PathUnescape(got); err == nil {
			forms = append(forms, dec)
		}
		for _, form := range forms {
			u, err := browserResolve(base, form)
			if err != nil {
				continue // a browser would not follow it at all
			}
			if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
				t.Fatalf("localTarget kept %q, which leads to %s", target, u)
			}
		}
	})
}
