// Package emulator is an in-memory stand-in for Bitbucket Cloud: the
// bitbucket.org web pages Tether sends people to (sign-in, OAuth consent,
// application authorizations), the OAuth 2 token endpoint, the part of the
// 2.0 REST API Tether speaks, webhook deliveries and an SSH endpoint for
// deploy keys.
//
// Tether is also tested against an independent Bitbucket implementation, so
// the emulator copies real Bitbucket (paths, JSON shapes, status codes, error
// bodies, the CHANGE-2770 removals) rather than inventing a friendlier API.
// What it adds are controls for the things that break integrations in
// production: revoked grants, lost scopes, expired tokens, lost repository
// access, rate limiting, 5xx answers and stalls. They are available from Go
// (for tests) and from an HTML control page at /_emulator/ (for the demo).
//
// The whole emulator is one http.Handler. Mount it at the root of a server, or
// under a prefix with http.StripPrefix and Config.BaseURL set to the external
// address of that prefix.
package emulator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"
)

// Config configures an Emulator.
type Config struct {
	// BaseURL is the external URL the handler is served at, without a
	// trailing slash, e.g. "http://localhost:8080/bitbucket". Links in API
	// answers, redirects and cookies are built from it. When empty, each
	// request derives "http://"+Host, which suits httptest servers mounted at
	// the root.
	BaseURL string
	// Consumers are the registered OAuth consumers.
	Consumers []Consumer
	// AccessTokenTTL is the lifetime of access tokens; Bitbucket's is 2h.
	AccessTokenTTL time.Duration
	// Demo seeds the demo users, workspaces and repositories.
	Demo bool
	// RetryBackoff is the pause between webhook delivery attempts; 1s when
	// zero.
	RetryBackoff time.Duration
	// HostKey is the SSH server's host key; an Ed25519 key is generated
	// when nil.
	HostKey ssh.Signer
	// Clock times the per-user API call counts and the rate limit; nil
	// means the real clock. A simulation with a fake clock passes its own.
	Clock clockwork.Clock
}

// Consumer is an OAuth consumer registered on the emulated Bitbucket.
type Consumer struct {
	Key, Secret, Name string
	// CallbackURL, when set, must prefix any redirect_uri a client sends, as
	// on Bitbucket; it is also the redirect target when none is sent.
	CallbackURL string
	// Scopes are the scopes configured on the consumer (Bitbucket ignores a
	// scope parameter on the authorize URL), e.g. "account", "email",
	// "repository:admin", "webhook", "pullrequest".
	Scopes []string
}

// Emulator is an in-memory Bitbucket Cloud. It is safe for concurrent use.
type Emulator struct {
	cfg Config

	mu         sync.Mutex
	lastBase   string // external base URL seen on the latest request, for links built outside a request
	users      []*user
	workspaces []*workspace
	repos      []*repo
	consumers  []*Consumer
	sessions   map[string]*session
	grants     []*grant
	codes      map[string]*authCode
	access     map[string]*token // by access token
	refresh    map[string]*token // by refresh token
	refreshes  map[string]int    // successful refresh_token grants per username
	// refreshRefusals is how the token endpoint answers a user's refresh
	// grants instead of a token (RefuseRefresh).
	refreshRefusals map[string]RefreshRefusal
	refreshRequests int // refresh_token grants received, answered or not
	failures        []*failure
	nextKeyID       int
	deliveries      []DeliveryLog // most recent first

	clock         clockwork.Clock
	calls         map[string]*userCalls // API requests per username
	rateLimit     RateLimit
	revokedTokens map[string]string // access token → username, to count calls made with it

	hookClient *http.Client
	ssh        sshServer
}

// New returns an emulator configured by cfg, seeded with the demo data when
// cfg.Demo is set.
func New(cfg Config) *Emulator {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = 2 * time.Hour
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	if cfg.HostKey == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic("emulator: generating the SSH host key: " + err.Error())
		}
		if cfg.HostKey, err = ssh.NewSignerFromKey(priv); err != nil {
			panic("emulator: using the SSH host key: " + err.Error())
		}
	}
	e := &Emulator{
		cfg:       cfg,
		sessions:  map[string]*session{},
		codes:     map[string]*authCode{},
		access:    map[string]*token{},
		refresh:   map[string]*token{},
		refreshes: map[string]int{},

		refreshRefusals: map[string]RefreshRefusal{},
		nextKeyID:       1,
		clock:           cfg.Clock,

		calls:         map[string]*userCalls{},
		revokedTokens: map[string]string{},
		hookClient: &http.Client{
			Timeout: deliveryTimeout,
			// Bitbucket does not follow redirects when delivering webhooks.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if e.clock == nil {
		e.clock = clockwork.NewRealClock()
	}
	for _, c := range cfg.Consumers {
		c.Scopes = append([]string(nil), c.Scopes...)
		e.consumers = append(e.consumers, &c)
	}
	if cfg.Demo {
		e.seedDemo()
	}
	return e
}

// APIURL is the base of the REST API, BaseURL + "/2.0". It is only meaningful
// when Config.BaseURL is set.
func (e *Emulator) APIURL() string { return e.cfg.BaseURL + "/2.0" }

// site is where the emulator is reachable from the outside for one request:
// base is the absolute URL of its root, path the path part of base ("" when
// mounted at the server root), used for redirects, form actions and cookies.
type site struct{ base, path string }

func (s site) api() string { return s.base + "/2.0" }

// cookiePath scopes the emulator's session cookie to where it is mounted, so
// it never mixes with the cookies of the app that embeds it.
func (s site) cookiePath() string {
	if s.path == "" {
		return "/"
	}
	return s.path
}

func (e *Emulator) siteFor(r *http.Request) site {
	base := e.cfg.BaseURL
	if base == "" {
		base = "http://" + r.Host
	}
	return siteOf(base)
}

func siteOf(base string) site {
	s := site{base: base}
	if u, err := url.Parse(base); err == nil {
		s.path = strings.TrimRight(u.Path, "/")
	}
	return s
}

// ServeHTTP serves everything: the web pages and OAuth endpoints at the root,
// the REST API under /2.0 and the control page under /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := e.siteFor(r)
	e.mu.Lock()
	e.lastBase = s.base
	e.mu.Unlock()

	p := r.URL.Path
	switch {
	case p == "/2.0" || strings.HasPrefix(p, "/2.0/"):
		e.serveAPI(w, r, s)
	case p == "/site/oauth2/authorize":
		e.handleAuthorize(w, r, s)
	case p == "/site/oauth2/access_token":
		e.handleAccessToken(w, r)
	case p == "/account/signin/" || p == "/account/signin":
		e.handleSignin(w, r, s)
	case p == "/account/signout/" || p == "/account/signout":
		e.handleSignout(w, r, s)
	case strings.HasPrefix(p, "/account/settings/app-authorizations"):
		e.handleAppAuthorizations(w, r, s)
	case p == "/_emulator" || strings.HasPrefix(p, "/_emulator/"):
		e.serveControl(w, r, s)
	case isAvatarPath(p):
		serveAvatar(w, r)
	case p == "/" || p == "":
		e.handleHome(w, r, s)
	default:
		e.handleRepoPage(w, r, s)
	}
}

// currentSite is the site for links built outside of a request (webhook
// payloads): the configured base URL or, failing that, the last one seen.
func (e *Emulator) currentSite() site {
	if e.cfg.BaseURL != "" {
		return siteOf(e.cfg.BaseURL)
	}
	if e.lastBase != "" {
		return siteOf(e.lastBase)
	}
	return siteOf("http://localhost")
}

func newUUID() string { return "{" + uuid.NewString() + "}" }

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// bbTime is how Bitbucket formats timestamps in API objects.
const bbTime = "2006-01-02T15:04:05.000000-07:00"

func fmtTime(t time.Time) string { return t.UTC().Format(bbTime) }
