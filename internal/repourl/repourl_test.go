package repourl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config is a Hosts with the example URLs every refusal must offer.
type config struct {
	name                   string
	hosts                  Hosts
	webExample, sshExample string
}

var (
	production = config{"production",
		Hosts{WebURL: "https://bitbucket.org", SSHAddr: "bitbucket.org:22"},
		"https://bitbucket.org/workspace/repository", "git@bitbucket.org:workspace/repository.git"}
	emulator = config{"emulator",
		Hosts{WebURL: "http://127.0.0.1:43121", SSHAddr: "127.0.0.1:2222"},
		"http://127.0.0.1:43121/workspace/repository", "ssh://git@127.0.0.1:2222/workspace/repository.git"}
	prefixed = config{"prefixed",
		Hosts{WebURL: "http://localhost:8080/bitbucket", SSHAddr: "127.0.0.1:2222"},
		"http://localhost:8080/bitbucket/workspace/repository", "ssh://git@127.0.0.1:2222/workspace/repository.git"}
	configs = []config{production, emulator, prefixed}
)

// webPaths are the web-form paths accepted under every configuration's
// base URL, all naming acme/api.
var webPaths = []string{
	"/acme/api", "/acme/api.git", "/acme/api/", "/acme/api.git/",
	"/acme/api?at=main", "/acme/api#readme", "/acme/api/?x=1#y",
	"/acme/api/src", "/acme/api/src/main/", "/acme/api/src/main/cmd/main.go?at=main",
	"/acme/api/src/feature%2Fx/", "/acme/api/branches", "/acme/api/commits/abc123",
	"/acme/api/pull-requests/12/diff", "/acme/api/admin/access-keys/",
	"/acme/api/overview", "/acme/api/branch/feature/x", "/acme/api/wiki",
	"/acme/api/raw/main/README.md", "/acme/api/downloads/", "/acme/api/pipelines/results/3",
	"/acme/api/SRC/main", "/ACME/API", "/Acme/Api.git/", "/acme/API/pull-requests/7",
}

type accept struct {
	cfg  config
	in   string
	want Repo
}

func accepted() []accept {
	acme := Repo{"acme", "api"}
	var cases []accept
	for _, c := range configs {
		base := c.hosts.WebURL
		scheme, rest, _ := strings.Cut(base, "://")
		other := map[string]string{"http": "https", "https": "http"}[scheme]
		// Scheme and host are case-insensitive; the path prefix is not.
		host, prefix, _ := strings.Cut(rest, "/")
		shouted := strings.ToUpper(scheme+"://"+host) + strings.TrimSuffix("/"+prefix, "/")
		for _, p := range webPaths {
			cases = append(cases,
				accept{c, base + p, acme},
				accept{c, other + "://" + rest + p, acme},
				accept{c, scheme + "://alice@" + rest + p, acme},
				accept{c, shouted + p, acme},
			)
		}
		cases = append(cases,
			accept{c, "  " + base + "/acme/api\n", acme},
			accept{c, "\ufeff" + base + "/acme/api\u200b", acme},
			accept{c, base + "/Acme-Corp/My.Repo_2", Repo{"acme-corp", "my.repo_2"}},
			accept{c, base + "/ACME/API-Server", Repo{"acme", "api-server"}},
			accept{c, base + "/" + strings.Repeat("w", 62) + "/" + strings.Repeat("s", 62),
				Repo{strings.Repeat("w", 62), strings.Repeat("s", 62)}},
			accept{c, base + "/acme/api.git.git", Repo{"acme", "api.git"}},
			accept{c, base + "/acme/.hidden", Repo{"acme", ".hidden"}},
			accept{c, base + "/acme/_private", Repo{"acme", "_private"}},
			accept{c, base + "/acme/---", Repo{"acme", "---"}},
		)
	}
	for _, in := range []string{
		"git@bitbucket.org:acme/api.git", "git@bitbucket.org:acme/api", "git@bitbucket.org:acme/api.git/",
		"git@BitBucket.ORG:acme/api.git", "git@bitbucket.org:/acme/api.git", "git@bitbucket.org:ACME/Api.git",
		"ssh://git@bitbucket.org/Acme/API.git", "https://alice@bitbucket.org/acme/api.git", "https://x-token-auth@bitbucket.org/ACME/api.git/",
		"ssh://git@bitbucket.org/acme/api.git", "ssh://git@bitbucket.org/acme/api",
		"ssh://git@bitbucket.org:22/acme/api.git", "SSH://git@bitbucket.org:022/acme/api.git",
		"https://bitbucket.org:443/acme/api", "http://bitbucket.org:80/acme/api",
	} {
		cases = append(cases, accept{production, in, acme})
	}
	for _, c := range []config{emulator, prefixed} {
		for _, in := range []string{
			"ssh://git@127.0.0.1:2222/acme/api.git", "ssh://git@127.0.0.1:2222/acme/api",
			"ssh://git@127.0.0.1:2222/acme/api.git/", " ssh://git@127.0.0.1:2222/acme/api.git ",
		} {
			cases = append(cases, accept{c, in, acme})
		}
	}
	cases = append(cases,
		// The emulator's https clone link carries the viewer as userinfo.
		accept{emulator, "http://alice@127.0.0.1:43121/acme/api.git", acme},
		accept{prefixed, "http://localhost:8080/bitbucket/acme/api/src/main/", acme},
		accept{oneOff(Hosts{WebURL: "https://bitbucket.example.com/", SSHAddr: "[::1]:22"}),
			"git@[::1]:acme/api.git", acme},
		accept{oneOff(Hosts{WebURL: "https://[::1]:8443", SSHAddr: "[::1]:2222"}),
			"https://[::1]:8443/acme/api", acme},
		accept{oneOff(Hosts{WebURL: "https://[::1]:8443", SSHAddr: "[::1]:2222"}),
			"ssh://git@[::1]:2222/acme/api.git", acme},
	)
	return cases
}

// oneOff builds a config for a one-off Hosts in a table; its examples are
// not checked.
func oneOff(h Hosts) config { return config{name: h.WebURL, hosts: h} }

func TestParseAccepts(t *testing.T) {
	for _, tc := range accepted() {
		got, err := Parse(tc.in, tc.cfg.hosts)
		if err != nil {
			t.Errorf("%s: Parse(%q): %v", tc.cfg.name, tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: Parse(%q) = %+v, want %+v", tc.cfg.name, tc.in, got, tc.want)
		}
	}
}

type refusal struct {
	cfg   config
	in    string
	words []string // all must appear in the message, case-insensitively
}

var refusals = []refusal{
	{production, "", []string{"enter", "https://bitbucket.org/workspace/repository"}},
	{production, " \t\n", []string{"enter"}},
	{production, "https://bitbucket.org/acme/my repo", []string{"spaces"}},
	{production, "https://bitbucket.org/acme/api\tx", []string{"spaces"}},
	{production, "https://bitbucket.org/acme/a\x00pi", []string{"invisible"}},
	{production, "https://bitbucket.org/acme\\api", []string{`\`}},
	{production, "https://bitbucket.org/acme/api/src/main/" + strings.Repeat("a", MaxInput), []string{"longer than any repository URL", "2048"}},
	{production, `https://evil.example\@bitbucket.org/acme/api`, []string{`\`}},

	// Another host.
	{production, "https://github.com/acme/api", []string{"isn't on bitbucket.org"}},
	{production, "git@github.com:acme/api.git", []string{"isn't on bitbucket.org"}},
	{production, "ssh://git@github.com/acme/api.git", []string{"isn't on bitbucket.org"}},
	{production, "https://bitbucket.org.evil.example/acme/api", []string{"bitbucket.org"}},
	{production, "https://evil.example/bitbucket.org/acme/api", []string{"bitbucket.org"}},
	{production, "https://bitbucket.org:8443/acme/api", []string{"isn't on bitbucket.org"}},
	{production, "https://bitbucket.org:99999/acme/api", []string{"isn't on bitbucket.org"}},
	{production, "http://bitbucket.org:443/acme/api", []string{"isn't on bitbucket.org"}},
	{production, "https:///acme/api", []string{"isn't on bitbucket.org"}},
	{emulator, "https://bitbucket.org/acme/api", []string{"isn't on 127.0.0.1:43121"}},
	{emulator, "http://127.0.0.1/acme/api", []string{"isn't on 127.0.0.1:43121"}},
	{emulator, "http://127.0.0.1:2222/acme/api", []string{"isn't on 127.0.0.1:43121"}},
	{emulator, "git@bitbucket.org:acme/api.git", []string{"isn't on 127.0.0.1:2222"}},
	{emulator, "ssh://git@bitbucket.org/acme/api.git", []string{"isn't on 127.0.0.1:2222"}},
	{prefixed, "http://localhost:8080/acme/api", []string{"isn't on localhost:8080/bitbucket"}},
	{prefixed, "http://localhost:8080/bitbucketx/acme/api", []string{"isn't on localhost:8080/bitbucket"}},
	{prefixed, "http://localhost:8081/bitbucket/acme/api", []string{"isn't on localhost:8080/bitbucket"}},
	{prefixed, "http://localhost:8080/BITBUCKET/acme/api", []string{"isn't on localhost:8080/bitbucket"}},

	// The SSH port.
	{emulator, "git@127.0.0.1:acme/api.git", []string{"port 2222", "ssh://git@127.0.0.1:2222/"}},
	{emulator, "ssh://git@127.0.0.1/acme/api.git", []string{"port 2222"}},
	{emulator, "ssh://git@127.0.0.1:22/acme/api.git", []string{"port 2222"}},
	{production, "ssh://git@bitbucket.org:2222/acme/api.git", []string{"port 22."}},

	// Missing parts.
	{production, "https://bitbucket.org/acme", []string{"no repository"}},
	{production, "https://bitbucket.org/acme/", []string{"no repository"}},
	{production, "https://bitbucket.org/acme/.git", []string{"no repository"}},
	{production, "https://bitbucket.org/acme?x=/api", []string{"no repository"}},
	{production, "git@bitbucket.org:acme.git", []string{"no repository", "git@bitbucket.org:workspace/repository.git"}},
	{production, "ssh://git@bitbucket.org/acme", []string{"no repository"}},
	{prefixed, "http://localhost:8080/bitbucket/acme", []string{"no repository"}},
	{production, "https://bitbucket.org", []string{"workspace and a repository"}},
	{production, "https://bitbucket.org/", []string{"workspace and a repository"}},
	{production, "https://bitbucket.org//api", []string{"workspace and a repository"}},
	{production, "git@bitbucket.org:", []string{"workspace and a repository"}},
	{production, "ssh://git@bitbucket.org", []string{"workspace and a repository"}},
	{prefixed, "http://localhost:8080/bitbucket", []string{"workspace and a repository"}},
	{prefixed, "http://localhost:8080/bitbucket/", []string{"workspace and a repository"}},

	// Dot segments and encoding tricks.
	{production, "https://bitbucket.org/acme/../api", []string{". or .."}},
	{production, "https://bitbucket.org/./acme/api", []string{". or .."}},
	{production, "https://bitbucket.org/acme/api/src/../../other/x", []string{". or .."}},
	{production, "https://bitbucket.org/acme/%2e%2e", []string{". or .."}},
	{production, "https://bitbucket.org/acme/api/src/%2E%2E%2F%2e%2e/x", []string{". or .."}},
	{production, "git@bitbucket.org:acme/../api.git", []string{". or .."}},
	{prefixed, "http://localhost:8080/bitbucket/../acme/api", []string{". or .."}},
	{production, "https://bitbucket.org/acme%2fapi/x", []string{"%-encoded"}},
	{production, "https://bitbucket.org/acme/ap%69", []string{"%-encoded"}},
	{production, "https://bitbucket.org/acme/api/src/%zz", []string{"%-encoded"}},
	{production, "git@bitbucket.org:acme/api%2f.git", []string{"%-encoded"}},

	// Characters Bitbucket never allows (what-is-a-slug; workspace IDs).
	{production, "https://bitbucket.org/acme/ap!i", []string{"slug", "letters, digits"}},
	{production, "https://bitbucket.org/acme/\u00fcber", []string{"slug", "letters, digits"}},
	{production, "https://bitbucket.org/acme/-api", []string{"slug", "no - at either end"}},
	{production, "https://bitbucket.org/acme/api-", []string{"slug", "no - at either end"}},
	{production, "https://bitbucket.org/acme/my--api", []string{"slug", "no --"}},
	{production, "https://bitbucket.org/ac.me/api", []string{"workspace id", "letters, digits, - and _"}},
	{production, "git@bitbucket.org:acme/api?x.git", []string{"letters, digits"}},
	{production, "git@bitbucket.org:ac#me/api.git", []string{"letters, digits"}},
	{production, "ssh://git@bitbucket.org/acme/api.git?x", []string{"letters, digits"}},
	{production, "https://bitbucket.org/" + strings.Repeat("w", 63) + "/api", []string{"workspace", "62"}},
	{production, "https://bitbucket.org/acme/" + strings.Repeat("s", 63), []string{"slug", "62"}},

	// Schemes, users and passwords.
	{production, "ftp://bitbucket.org/acme/api", []string{"https://", "ssh://"}},
	{production, "file:///home/acme/api", []string{"https://", "ssh://"}},
	{production, "git://bitbucket.org/acme/api.git", []string{"https://", "ssh://"}},
	{production, "bitbucket.org/acme/api", []string{"whole url"}},
	{production, "acme/api", []string{"whole url"}},
	{production, "bitbucket.org:acme/api.git", []string{"whole url"}},
	{production, "https:/bitbucket.org/acme/api", []string{"whole url"}},
	{production, "://bitbucket.org/acme/api", []string{"whole url"}},
	{production, "git@bitbucket.org/acme/api.git", []string{"whole url"}},
	{production, "https://alice:s3cret@bitbucket.org/acme/api", []string{"password"}},
	{production, "https://alice:p@ss@bitbucket.org/acme/api", []string{"password"}},
	{production, "https://alice:s3cret@github.com/acme/api", []string{"password"}},
	{production, "https://:s3cret@bitbucket.org/acme/api", []string{"password"}},
	{production, "ssh://git:s3cret@bitbucket.org/acme/api.git", []string{"password"}},
	{production, "git:s3cret@bitbucket.org:acme/api.git", []string{"password"}},
	{emulator, "http://alice:s3cret@127.0.0.1:43121/acme/api", []string{"password", "http://127.0.0.1:43121/workspace/repository"}},
	{production, "ssh://alice@bitbucket.org/acme/api.git", []string{"as git"}},
	{production, "ssh://bitbucket.org/acme/api.git", []string{"as git"}},
	{production, "alice@bitbucket.org:acme/api.git", []string{"as git"}},
	{production, "GIT@bitbucket.org:acme/api.git", []string{"as git"}},

	// Extra path segments.
	{production, "git@bitbucket.org:acme/api/extra.git", []string{"just the workspace and repository"}},
	{production, "git@bitbucket.org:22/acme/api.git", []string{"just the workspace and repository"}},
	{production, "ssh://git@bitbucket.org/acme/api/src/main", []string{"just the workspace and repository"}},
	{emulator, "ssh://git@127.0.0.1:2222/acme/api/x.git", []string{"just the workspace and repository"}},
	{production, "https://bitbucket.org/acme/api/settings", []string{"page inside the repository"}},
	{production, "https://bitbucket.org/acme/api/foo/bar", []string{"page inside the repository"}},
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range refusals {
		got, err := Parse(tc.in, tc.cfg.hosts)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: Parse(%q) = %+v, %v; want an *Error", tc.cfg.name, tc.in, got, err)
			continue
		}
		if got != (Repo{}) {
			t.Errorf("%s: Parse(%q) returned %+v alongside its error", tc.cfg.name, tc.in, got)
		}
		msg := strings.ToLower(e.Message)
		for _, w := range tc.words {
			if !strings.Contains(msg, strings.ToLower(w)) {
				t.Errorf("%s: Parse(%q) message %q lacks %q", tc.cfg.name, tc.in, e.Message, w)
			}
		}
		if !strings.Contains(e.Message, tc.cfg.webExample) && !strings.Contains(e.Message, tc.cfg.sshExample) {
			t.Errorf("%s: Parse(%q) message %q has no example URL", tc.cfg.name, tc.in, e.Message)
		}
		for _, secret := range []string{"s3cret", "p@ss"} {
			if strings.Contains(e.Message, secret) {
				t.Errorf("%s: Parse(%q) message %q echoes the password", tc.cfg.name, tc.in, e.Message)
			}
		}
	}
}

// TestParseBadHosts checks that a broken configuration is reported as a
// fault of its own, not as a message blaming the person's URL.
func TestParseBadHosts(t *testing.T) {
	for _, h := range []Hosts{
		{WebURL: "", SSHAddr: "bitbucket.org:22"},
		{WebURL: "bitbucket.org", SSHAddr: "bitbucket.org:22"},
		{WebURL: "ftp://bitbucket.org", SSHAddr: "bitbucket.org:22"},
		{WebURL: "https://bitbucket.org", SSHAddr: ""},
		{WebURL: "https://bitbucket.org", SSHAddr: "bitbucket.org:ssh"},
	} {
		_, err := Parse("https://bitbucket.org/acme/api", h)
		var e *Error
		if err == nil || errors.As(err, &e) {
			t.Errorf("Parse with %+v: err = %v, want a configuration error", h, err)
		}
	}
}

// Name takes the picker's "workspace/slug" or any URL, in canonical form.
func TestName(t *testing.T) {
	for in, want := range map[string]Repo{
		"acme/api":                     {"acme", "api"},
		"ACME/API-Server":              {"acme", "api-server"},
		" Acme/Api.git ":               {"acme", "api"},
		"https://bitbucket.org/ACME/x": {"acme", "x"},
		"git@bitbucket.org:acme/y.git": {"acme", "y"},
	} {
		got, err := Name(in, production.hosts)
		if err != nil || got != want {
			t.Errorf("Name(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "acme", "acme/", "/api", "a cme/api", "acme/api/x", "ac.me/api", "acme/a--b", "acme/ap%69"} {
		var e *Error
		if _, err := Name(in, production.hosts); !errors.As(err, &e) {
			t.Errorf("Name(%q) = %v; want an *Error", in, err)
		}
	}
}

func TestFullName(t *testing.T) {
	if got := (Repo{"acme", "api"}).FullName(); got != "acme/api" {
		t.Errorf("FullName = %q", got)
	}
}

// FuzzParse: whatever is pasted, Parse never panics; a refusal is an
// *Error whose message comes from the configuration, never the input; an
// accepted URL names a repository Bitbucket could have, the same one its
// canonical clone URL names. Seeded with the links Bitbucket itself
// returned for a repository and with every case of the tables above.
func FuzzParse(f *testing.F) {
	var recorded struct {
		Links struct {
			HTML  struct{ Href string }   `json:"html"`
			Clone []struct{ Href string } `json:"clone"`
		} `json:"links"`
	}
	b, err := os.ReadFile(filepath.Join("..", "bitbucket", "testdata", "recorded", "api_repo.json"))
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(b, &recorded); err != nil {
		f.Fatal(err)
	}
	f.Add(recorded.Links.HTML.Href, uint8(0))
	for _, c := range recorded.Links.Clone {
		f.Add(c.Href, uint8(0))
	}
	for _, tc := range accepted() {
		for i, c := range configs {
			if c.hosts == tc.cfg.hosts {
				f.Add(tc.in, uint8(i))
			}
		}
	}
	for _, tc := range refusals {
		for i, c := range configs {
			if c.hosts == tc.cfg.hosts {
				f.Add(tc.in, uint8(i))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in string, which uint8) {
		h := configs[int(which)%len(configs)].hosts
		r, err := Parse(in, h)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("Parse(%q) = %v; want an *Error with a message", in, err)
			}
			s, _ := newSite(h)
			known := strings.Join([]string{s.webExample, s.sshExample, s.webName, s.sshName}, " ")
			if typed := strings.TrimSpace(in); len(typed) >= 8 && strings.Contains(e.Message, typed) && !strings.Contains(known, typed) {
				t.Fatalf("Parse(%q) repeats the input: %s", in, e.Message)
			}
			return
		}
		if !validWorkspace(r.Workspace) || !validSlug(r.Slug) || r.Workspace != strings.ToLower(r.Workspace) || r.Slug != strings.ToLower(r.Slug) {
			t.Fatalf("Parse(%q) = %+v: not a canonical workspace ID and slug", in, r)
		}
		// Whatever was accepted must name the same repository when written
		// back in the canonical clone form.
		again, err := Parse(strings.TrimRight(h.WebURL, "/")+"/"+r.FullName()+".git", h)
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v, but its canonical URL gives %+v, %v", in, r, again, err)
		}
	})
}
