// Package repourl turns the repository URL a person pastes — a web page,
// an https clone URL or an SSH clone URL — into the Bitbucket workspace and
// repository slug it names, in Bitbucket's canonical form: lower case (the
// workspace ID and slug Bitbucket puts in full_name and every link), with
// no trailing slash, ".git", user info or default port. Anything looked up
// or compared goes through it, so "…/ACME/API-Server.git/" and
// "git@bitbucket.org:acme/api-server.git" are the same repository. The
// Bitbucket host comes from Tether's configuration rather than being
// bitbucket.org, so the same code serves production, the emulator and
// reverse-proxied test setups.
//
// Parsing is strict on purpose: the result decides which repository Tether
// connects a project to, so anything ambiguous (another host, dot segments,
// percent-encoding, extra path parts) is refused with a message naming the
// expected form instead of being guessed at. Messages are built only from
// the configuration, never from the input, so a pasted password cannot leak
// back into the page.
package repourl

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Hosts are the configured Bitbucket locations.
type Hosts struct {
	WebURL  string // BITBUCKET_URL
	SSHAddr string // BITBUCKET_SSH_ADDR, host:port
}

// Repo is what a URL names: a workspace ID and a repository slug, both in
// Bitbucket's canonical lower case.
type Repo struct{ Workspace, Slug string }

// FullName is the "workspace/slug" form Bitbucket's API uses.
func (r Repo) FullName() string { return r.Workspace + "/" + r.Slug }

// Error is a refusal meant to be shown to the person who typed the URL.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

// Bitbucket's own limits; longer names cannot exist, so they are typos or
// pasted junk. A repository slug is at most 62 characters
// (https://support.atlassian.com/bitbucket-cloud/docs/what-is-a-slug/;
// longer names are cut to 62 in the slug, bitbucket.org/site/master
// issue 13403). Bitbucket documents no length for workspace IDs; 62, the
// slug's, bounds them too.
const (
	maxWorkspace = 62
	maxSlug      = 62
)

// MaxInput bounds what Parse reads: a repository page URL with a long
// branch and file path stays well under it.
const MaxInput = 2048

// repoPages are the third path segments of pages inside a repository that
// people copy from the address bar (compared in lower case). What follows
// them names a file, branch, commit or pull request and does not change
// which repository is meant: /src/main/x.go, /branch/feature, /commits/…,
// /pull-requests/12/diff, /raw/…, /downloads/, /pipelines/results/3, ….
var repoPages = map[string]bool{
	"src": true, "raw": true, "annotate": true, "history-node": true,
	"branch": true, "branches": true, "commits": true, "commit": true,
	"pull-requests": true, "pullrequests": true, "downloads": true, "get": true,
	"issues": true, "wiki": true, "pipelines": true, "deployments": true,
	"addon": true, "jira": true, "security": true, "admin": true, "overview": true,
}

// defaultPorts lets an explicit default port (https://host:443) compare
// equal to none at all.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// Parse returns the repository a pasted URL names, or an *Error whose
// Message is for people. A Hosts that is not itself valid yields a plain
// error instead: that is a configuration fault, not the person's.
func Parse(input string, h Hosts) (Repo, error) {
	s, err := newSite(h)
	if err != nil {
		return Repo{}, err
	}
	in := strings.TrimFunc(input, invisible)
	switch {
	case len(in) > MaxInput:
		return Repo{}, refuse("That is longer than any repository URL (%d characters at most). Paste the URL again, like %s.", MaxInput, s.webExample)
	case in == "":
		return Repo{}, refuse("Enter the repository's new URL, like %s or %s.", s.webExample, s.sshExample)
	case strings.IndexFunc(in, invisible) >= 0:
		return Repo{}, refuse("The URL can't contain spaces or invisible characters. Paste it again, like %s.", s.webExample)
	case strings.ContainsRune(in, '\\'):
		// Browsers read \ as / in web URLs, so it could smuggle in a
		// different path than the one Tether sees.
		return Repo{}, refuse("A repository URL uses / rather than \\. Use one like %s.", s.webExample)
	}
	if i := strings.Index(in, "://"); i > 0 && isScheme(in[:i]) {
		switch scheme := strings.ToLower(in[:i]); scheme {
		case "http", "https":
			return s.parseWeb(scheme, in[i+3:])
		case "ssh":
			return s.parseSSH(in[i+3:])
		}
		return Repo{}, refuse("Use an https:// or ssh:// URL, or the git@ form, like %s or %s.", s.webExample, s.sshExample)
	}
	return s.parseSCP(in)
}

// site is Hosts taken apart once: normalised parts to compare input
// against, and example URLs for the messages.
type site struct {
	webHost, webPort, prefix string // webPort is "" for the scheme's default
	sshHost, sshPort         string // sshPort is always set
	webName, sshName         string // how messages name the hosts
	webExample, sshExample   string
}

func newSite(h Hosts) (*site, error) {
	u, err := url.Parse(strings.TrimSpace(h.WebURL))
	if err != nil || defaultPorts[u.Scheme] == "" {
		return nil, fmt.Errorf("repourl: BITBUCKET_URL %q is not an http(s) URL", h.WebURL)
	}
	webHost, webPort, ok := splitHostPort(u.Host)
	if !ok {
		return nil, fmt.Errorf("repourl: BITBUCKET_URL %q has no usable host", h.WebURL)
	}
	sshHost, sshPort, ok := splitHostPort(strings.TrimSpace(h.SSHAddr))
	if !ok {
		return nil, fmt.Errorf("repourl: BITBUCKET_SSH_ADDR %q is not host:port", h.SSHAddr)
	}
	if sshPort == "" {
		sshPort = "22"
	}
	s := &site{
		webHost: webHost,
		webPort: normPort(webPort, u.Scheme),
		prefix:  strings.TrimRight(u.EscapedPath(), "/"),
		sshHost: sshHost,
		sshPort: sshPort,
	}
	s.webName = u.Host + s.prefix
	s.webExample = u.Scheme + "://" + s.webName + "/workspace/repository"
	if sshPort == "22" {
		s.sshName = bracket(sshHost)
		s.sshExample = "git@" + s.sshName + ":workspace/repository.git"
	} else {
		// The scp-like form cannot carry a port.
		s.sshName = net.JoinHostPort(sshHost, sshPort)
		s.sshExample = "ssh://git@" + s.sshName + "/workspace/repository.git"
	}
	return s, nil
}

// parseWeb handles what follows "http://" or "https://". Either scheme is
// accepted whatever the configured one is, because people paste both and
// the host and port already say which Bitbucket is meant.
func (s *site) parseWeb(scheme, rest string) (Repo, error) {
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	// A query or fragment (?tab=..., #readme) never names the repository.
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	_, hostport, password := splitUserinfo(authority)
	if password {
		return Repo{}, s.refusePassword()
	}
	host, port, ok := splitHostPort(hostport)
	if !ok || host != s.webHost || normPort(port, scheme) != s.webPort {
		return Repo{}, s.refuseWebHost()
	}
	if s.prefix != "" {
		if path != s.prefix && !strings.HasPrefix(path, s.prefix+"/") {
			return Repo{}, s.refuseWebHost()
		}
		path = path[len(s.prefix):]
	}
	segs, err := segments(path, s.webExample)
	if err != nil {
		return Repo{}, err
	}
	if len(segs) > 2 {
		if !repoPages[strings.ToLower(segs[2])] {
			return Repo{}, refuse("That's a page inside the repository. Use the repository's own URL, like %s.", s.webExample)
		}
		segs = segs[:2]
	}
	return repo(segs, s.webExample)
}

// parseSSH handles what follows "ssh://".
func (s *site) parseSSH(rest string) (Repo, error) {
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	user, hostport, password := splitUserinfo(authority)
	if password {
		return Repo{}, s.refusePassword()
	}
	host, port, ok := splitHostPort(hostport)
	if !ok || host != s.sshHost {
		return Repo{}, s.refuseSSHHost()
	}
	if port == "" {
		port = "22"
	}
	if port != s.sshPort {
		return Repo{}, refuse("Bitbucket's SSH server here listens on port %s. Use a URL like %s.", s.sshPort, s.sshExample)
	}
	if user != "git" {
		return Repo{}, s.refuseSSHUser()
	}
	return s.sshRepo(path)
}

// parseSCP handles input without a scheme, which is only accepted in git's
// scp-like form, user@host:workspace/slug.git. Bare "host/ws/slug" or
// "ws/slug" is refused rather than guessed at.
func (s *site) parseSCP(in string) (Repo, error) {
	head := in
	if i := strings.IndexByte(in, '/'); i >= 0 {
		head = in[:i]
	}
	at := strings.LastIndexByte(head, '@')
	if at < 0 {
		return Repo{}, s.refuseNoScheme()
	}
	user, rest := in[:at], in[at+1:]
	if strings.ContainsRune(user, ':') {
		return Repo{}, s.refusePassword()
	}
	var host, path string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]:")
		if end < 0 {
			return Repo{}, s.refuseSSHHost()
		}
		host, path = rest[1:end], rest[end+2:]
	} else {
		var found bool
		host, path, found = strings.Cut(rest, ":")
		if !found || strings.ContainsRune(host, '/') {
			return Repo{}, s.refuseNoScheme()
		}
	}
	if strings.ToLower(host) != s.sshHost {
		return Repo{}, s.refuseSSHHost()
	}
	if s.sshPort != "22" {
		return Repo{}, refuse("Bitbucket's SSH server here listens on port %s, which the git@…:… form can't carry. Use a URL like %s.", s.sshPort, s.sshExample)
	}
	if user != "git" {
		return Repo{}, s.refuseSSHUser()
	}
	return s.sshRepo(path)
}

// sshRepo reads the path of an SSH URL, which is the repository and
// nothing else: there are no pages inside it to ignore.
func (s *site) sshRepo(path string) (Repo, error) {
	segs, err := segments(path, s.sshExample)
	if err != nil {
		return Repo{}, err
	}
	if len(segs) > 2 {
		return Repo{}, refuse("An SSH URL names just the workspace and repository after the host, like %s.", s.sshExample)
	}
	return repo(segs, s.sshExample)
}

// segments splits a path into its parts, refusing dot segments — also
// percent-encoded ones, since some servers decode before resolving them —
// because they would make the URL name a different repository than its
// first two parts suggest. One trailing slash is dropped.
func segments(path, example string) ([]string, error) {
	path = strings.TrimPrefix(path, "/")
	if path == "" {
		return nil, nil
	}
	segs := strings.Split(path, "/")
	for _, seg := range segs {
		decoded, err := url.PathUnescape(seg)
		if err != nil {
			return nil, refuseEncoded(example)
		}
		for _, part := range strings.FieldsFunc(decoded, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return nil, refuse("The URL can't contain . or .. path segments. Use the repository's URL, like %s.", example)
			}
		}
	}
	if n := len(segs); segs[n-1] == "" {
		segs = segs[:n-1]
	}
	return segs, nil
}

// repo checks the workspace and slug in the first two segments and
// returns them in canonical lower case.
func repo(segs []string, example string) (Repo, error) {
	switch {
	case len(segs) == 0 || segs[0] == "":
		return Repo{}, refuse("The URL needs a workspace and a repository, like %s.", example)
	case len(segs) == 1 || strings.TrimSuffix(segs[1], ".git") == "":
		return Repo{}, refuse("The URL names a workspace but no repository. Add the repository, like %s.", example)
	}
	r := Repo{Workspace: strings.ToLower(segs[0]), Slug: strings.ToLower(strings.TrimSuffix(segs[1], ".git"))}
	if strings.ContainsRune(r.Workspace, '%') || strings.ContainsRune(r.Slug, '%') {
		return Repo{}, refuseEncoded(example)
	}
	switch {
	case len(r.Workspace) > maxWorkspace:
		return Repo{}, refuse("Bitbucket workspace IDs are at most %d characters. Use a URL like %s.", maxWorkspace, example)
	case !validWorkspace(r.Workspace):
		return Repo{}, refuse("A Bitbucket workspace ID uses only letters, digits, - and _. Use a URL like %s.", example)
	case len(r.Slug) > maxSlug:
		return Repo{}, refuse("Bitbucket repository slugs are at most %d characters. Use a URL like %s.", maxSlug, example)
	case !validSlug(r.Slug):
		return Repo{}, refuse("A Bitbucket repository slug uses only letters, digits, -, _ and ., with no -- and no - at either end. Use a URL like %s.", example)
	}
	return r, nil
}

// validWorkspace allows what Bitbucket allows in a workspace ID, in
// canonical lower case: "Workspace IDs can only contain lowercase letters,
// numbers, dashes, and underscores" (Atlassian KB "Fix workspace creation
// errors in Bitbucket Cloud").
func validWorkspace(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range []byte(v) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validSlug allows what Bitbucket Cloud allows in a repository slug, in
// canonical lower case (https://support.atlassian.com/bitbucket-cloud/docs/
// what-is-a-slug/, and the API's "Slugs must be lowercase, alphanumerical,
// and may also contain underscores, dashes, or dots"): ASCII letters and
// digits, '_', '-' and '.'; it may start with '_' or '.'; it may start or
// end with '-', or hold "--", only when it is all dashes. "." and ".."
// would be dot segments in a path, so they are refused too.
func validSlug(v string) bool {
	if v == "" || v == "." || v == ".." {
		return false
	}
	allDashes := strings.Trim(v, "-") == ""
	if !allDashes && (v[0] == '-' || v[len(v)-1] == '-' || strings.Contains(v, "--")) {
		return false
	}
	for _, c := range []byte(v) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Name reads what the New project form sends — "workspace/slug" as the
// picker lists it, or any URL Parse accepts — and returns the repository
// in canonical form, or an *Error for people.
func Name(input string, h Hosts) (Repo, error) {
	in := strings.TrimFunc(input, invisible)
	if ws, slug, ok := strings.Cut(in, "/"); ok && !strings.ContainsAny(in, ":@\\?#%") && !strings.Contains(slug, "/") {
		s, err := newSite(h)
		if err != nil {
			return Repo{}, err
		}
		if strings.IndexFunc(in, invisible) >= 0 {
			return Repo{}, refuse("The name can't contain spaces or invisible characters. Use one like workspace/repository or %s.", s.webExample)
		}
		return repo([]string{ws, slug}, s.webExample)
	}
	return Parse(input, h)
}

func (s *site) refuseWebHost() error {
	return refuse("That URL isn't on %s. Use the repository's URL on %s, like %s or %s.",
		s.webName, s.webName, s.webExample, s.sshExample)
}

func (s *site) refuseNoScheme() error {
	return refuse("Paste the whole URL, starting with https:// or git@, like %s or %s.", s.webExample, s.sshExample)
}

func (s *site) refuseSSHHost() error {
	return refuse("That SSH URL isn't on %s. Use one like %s, or the web URL, like %s.",
		s.sshName, s.sshExample, s.webExample)
}

func (s *site) refuseSSHUser() error {
	return refuse("Bitbucket SSH URLs log in as git, like %s.", s.sshExample)
}

func (s *site) refusePassword() error {
	return refuse("Leave the password out of the URL; Tether doesn't need it. Use one like %s.", s.webExample)
}

func refuseEncoded(example string) error {
	return refuse("The workspace and repository in the URL can't be %%-encoded. Use one like %s.", example)
}

func refuse(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

// splitUserinfo separates "userinfo@hostport". It splits at the last '@'
// because a pasted password may itself contain one, and reports whether
// the userinfo carries a password so the caller can refuse it.
func splitUserinfo(authority string) (user, hostport string, password bool) {
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return "", authority, false
	}
	user = authority[:at]
	return user, authority[at+1:], strings.ContainsRune(user, ':')
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port", with the
// host lower-cased (hosts compare case-insensitively) and the port in
// canonical decimal so "022" and "22" compare equal.
func splitHostPort(hp string) (host, port string, ok bool) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", false
		}
		host, hp = hp[1:end], hp[end+1:]
		if hp != "" && hp[0] != ':' {
			return "", "", false
		}
		port = strings.TrimPrefix(hp, ":")
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
		if strings.ContainsRune(host, ':') {
			return "", "", false
		}
	} else {
		host = hp
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", "", false
		}
		port = strconv.FormatUint(n, 10)
	}
	return strings.ToLower(host), port, host != ""
}

func normPort(port, scheme string) string {
	if port == defaultPorts[scheme] {
		return ""
	}
	return port
}

func bracket(host string) string {
	if strings.ContainsRune(host, ':') {
		return "[" + host + "]"
	}
	return host
}

// isScheme reports whether s is an RFC 3986 scheme name, so "://" found
// later in some other string is not mistaken for one.
func isScheme(s string) bool {
	for i, c := range []byte(s) {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return s != ""
}

// invisible matches what never belongs in a URL but rides along when one is
// copied from a chat or document: whitespace, control characters and
// zero-width formatting marks.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
