// Package apptest runs a whole Tether for tests: a Bitbucket emulator on
// its own loopback server (reached only through the configured URLs, as a
// real Bitbucket would be), Tether built by app.New on a real SQLite file in
// a temporary directory, and an HTTP client with a cookie jar that reads
// pages with goquery and submits their forms as a browser would.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"tether/internal/app"
	"tether/internal/bitbucket/emulator"
	"tether/internal/config"
	"tether/internal/health"
)

// Consumer is the OAuth consumer the test Bitbucket knows Tether by.
const (
	ClientID     = "tether-test-consumer"
	ClientSecret = "tether-test-consumer-secret-value"
)

// Env is a running Tether wired to a running emulator.
type Env struct {
	T        testing.TB
	URL      string // Tether's base URL
	Emulator *emulator.Emulator
	BBURL    string // the emulator's base URL
	App      *app.App
	DataDir  string
	Logs     *Logs

	start      func(net.Listener) // starts Tether on the listener
	stop       func()
	background bool // App.Background runs
}

// Options change the environment.
type Options struct {
	Scopes []string // the consumer's scopes; default app.DemoScopes
	// ForeignSSH points BITBUCKET_SSH_ADDR at an SSH server that knows none
	// of the registered keys (its host key pinned), so every probe is
	// refused with Permission denied (publickey).
	ForeignSSH bool
	// Env adds settings (e.g. TETHER_SMTP_URL) to the configuration.
	// NoSchedule leaves the background work (the health schedule, alerts,
	// recovery, retention) off until the test calls RunBackground, or for
	// good when the test drives every check itself.
	NoSchedule bool
	// Cadence replaces the schedule's health.DefaultCadence.
	Cadence *health.Cadence
	// Clock runs Tether's budgets, schedule and staleness on a fake clock.
	// The schedule is then not started: the test calls App.Health.Step
	// and Wait as it advances the clock.
	Clock *clockwork.FakeClock
	// Env sets more configuration (TETHER_METRICS_TOKEN,
	// TETHER_BITBUCKET_BUDGET, …).
	Env map[string]string
	// BitbucketTimeout replaces the 15 s Tether waits for each answer
	// from Bitbucket, for tests that stall it past the timeout.
	BitbucketTimeout time.Duration
}

// Start starts the emulator and Tether; both stop when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Scopes == nil {
		opts.Scopes = app.DemoScopes
	}
	tetherLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tetherURL := "http://" + tetherLn.Addr().String()

	bbSrv := httptest.NewUnstartedServer(nil)
	bbURL := "http://" + bbSrv.Listener.Addr().String()
	var emuClock clockwork.Clock
	if opts.Clock != nil {
		emuClock = opts.Clock // counts the API calls of the same hour
	}
	emu := emulator.New(emulator.Config{
		BaseURL: bbURL,
		Clock:   emuClock,
		Consumers: []emulator.Consumer{{
			Key: ClientID, Secret: ClientSecret, Name: "Tether (test)",
			CallbackURL: tetherURL + "/auth/bitbucket/callback", Scopes: opts.Scopes,
		}},
	})
	bbSrv.Config.Handler = emu
	bbSrv.Start()
	t.Cleanup(bbSrv.Close)
	sshEmu := emu
	if opts.ForeignSSH {
		sshEmu = emulator.New(emulator.Config{})
	}
	hostKey, err := sshEmu.StartSSH("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sshEmu.CloseSSH)

	env := &Env{T: t, URL: tetherURL, Emulator: emu, BBURL: bbURL, DataDir: t.TempDir(), Logs: &Logs{}}
	cfg, err := config.Load(nil, func(k string) string {
		if v, ok := opts.Env[k]; ok {
			return v
		}
		return map[string]string{
			"TETHER_ADDR":             tetherLn.Addr().String(),
			"TETHER_PUBLIC_URL":       tetherURL,
			"TETHER_DATA_DIR":         env.DataDir,
			"BITBUCKET_CLIENT_ID":     ClientID,
			"BITBUCKET_CLIENT_SECRET": ClientSecret,
			"BITBUCKET_URL":           bbURL,
			"BITBUCKET_API_URL":       bbURL + "/2.0",
			"BITBUCKET_SSH_ADDR":      sshEmu.SSHAddr(),
			"BITBUCKET_SSH_HOST_KEYS": string(ssh.MarshalAuthorizedKey(hostKey)),
		}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(env.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var appOpts []app.Option
	if opts.Clock != nil {
		appOpts = append(appOpts, app.WithClock(opts.Clock))
	}
	if opts.BitbucketTimeout > 0 {
		appOpts = append(appOpts, app.WithBitbucketTimeout(opts.BitbucketTimeout))
	}
	env.start = func(ln net.Listener) {
		a, err := app.New(context.Background(), cfg, log, appOpts...)
		if err != nil {
			t.Fatal(err)
		}
		env.App = a
		if opts.Cadence != nil {
			a.Health.Cadence = *opts.Cadence
		}
		srv := &httptest.Server{Listener: ln, Config: a.Server()}
		srv.Start()
		background, stopBackground := context.WithCancel(context.Background())
		backgroundDone := make(chan struct{})
		if opts.NoSchedule || opts.Clock != nil {
			close(backgroundDone)
		} else {
			env.background = true
			go func() {
				a.Background(background)
				close(backgroundDone)
			}()
		}
		var once sync.Once
		env.stop = func() {
			once.Do(func() {
				stopBackground()
				<-backgroundDone
				srv.Close()
				a.Close()
			})
		}
		t.Cleanup(env.stop)
	}
	env.start(tetherLn)
	return env
}

// Restart stops Tether as a deploy would (gracefully: what it saves when
// stopping is saved) and starts it again on the same data folder,
// configuration and address; the emulator keeps running, and clients
// keep their cookies.
func (e *Env) Restart() {
	e.T.Helper()
	e.stop()
	ln, err := net.Listen("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		e.T.Fatal(err)
	}
	e.background = false
	e.start(ln)
}

// RunBackground runs what Tether does on its own (health schedule, alerts,
// comparisons of branch heads, retention) until the test ends, for a test
// started with NoSchedule that tuned it first.
func (e *Env) RunBackground() {
	e.T.Helper()
	if e.background {
		e.T.Fatal("apptest: the background already runs; start with Options.NoSchedule to run it yourself")
	}
	e.background = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.App.Background(ctx)
		close(done)
	}()
	e.T.Cleanup(func() {
		cancel()
		<-done
	})
}

// StopTether stops the in-process Tether (the emulator keeps running), for
// tests that start Tether again as another process on the same data.
func (e *Env) StopTether() { e.stop() }

// Environ is the configuration the in-process Tether was started with, as
// environment variables, for starting the binary on the same data.
func (e *Env) Environ() []string {
	c := e.App.Config
	return []string{
		"TETHER_PUBLIC_URL=" + c.PublicURL, "TETHER_DATA_DIR=" + c.DataDir,
		"BITBUCKET_CLIENT_ID=" + c.BitbucketClientID, "BITBUCKET_CLIENT_SECRET=" + c.BitbucketClientSecret,
		"BITBUCKET_URL=" + c.BitbucketURL, "BITBUCKET_API_URL=" + c.BitbucketAPIURL,
		"BITBUCKET_SSH_ADDR=" + c.BitbucketSSHAddr, "BITBUCKET_SSH_HOST_KEYS=" + c.BitbucketSSHHostKeys,
	}
}

// AddUser adds a Bitbucket user (password "secret-password") with a
// personal workspace and returns it.
func (e *Env) AddUser(username string) emulator.User {
	u := e.Emulator.AddUser(emulator.User{
		Username: username, DisplayName: strings.ToUpper(username[:1]) + username[1:] + " Tester",
		Email: username + "@example.com", Password: "secret-password",
	})
	e.Emulator.AddWorkspace(username, username)
	e.Emulator.AddWorkspaceMember(username, username, true)
	return u
}

// Logs collects what Tether logged, for assertions that secrets stay out.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Client is a browser-like HTTP client: it keeps cookies, follows
// redirects and submits the forms it is shown.
type Client struct {
	T    testing.TB
	HTTP *http.Client
	env  *Env
}

// Client returns a new client with an empty cookie jar.
func (e *Env) Client() *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{T: e.T, env: e, HTTP: &http.Client{Jar: jar}}
}

// Page is a response read as HTML.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
	Doc    *goquery.Document
}

// Text is the trimmed text of the first match of sel.
func (p *Page) Text(sel string) string { return strings.TrimSpace(p.Doc.Find(sel).First().Text()) }

// Attr is an attribute of the first match of sel.
func (p *Page) Attr(sel, name string) string {
	v, _ := p.Doc.Find(sel).First().Attr(name)
	return v
}

// Has reports whether sel matches anything.
func (p *Page) Has(sel string) bool { return p.Doc.Find(sel).Length() > 0 }

// CSRF is the token htmx sends, read from the page's body.
func (p *Page) CSRF() string {
	var h map[string]string
	json.Unmarshal([]byte(p.Attr("body", "hx-headers:inherited")), &h)
	return h["X-CSRF-Token"]
}

// Do sends req and reads the answer as a page.
func (c *Client) Do(req *http.Request) *Page {
	c.T.Helper()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body))
	if err != nil {
		c.T.Fatal(err)
	}
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body), Doc: doc}
}

func (c *Client) abs(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return c.env.URL + path
}

// Get loads a page.
func (c *Client) Get(path string) *Page {
	c.T.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.abs(path), nil)
	return c.Do(req)
}

// HTMX sends what htmx would: HX-Request and the page's CSRF header.
func (c *Client) HTMX(method, path string, from *Page, form url.Values) *Page {
	c.T.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.abs(path), body)
	req.Header.Set("HX-Request", "true")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if from != nil {
		req.Header.Set("X-CSRF-Token", from.CSRF())
	}
	return c.Do(req)
}

// Submit fills the form matched by sel on page with fields (on top of its
// own inputs, hidden ones included), adds the named submit button's value
// if button is not empty, and sends it where the form says: posted, or
// as the query of a GET when the form's method is get.
func (c *Client) Submit(p *Page, sel string, fields map[string]string, button string) *Page {
	c.T.Helper()
	form := p.Doc.Find(sel).First()
	if form.Length() == 0 {
		c.T.Fatalf("no form %q on %s:\n%s", sel, p.URL, p.Body)
	}
	vals := url.Values{}
	form.Find("input").Each(func(_ int, in *goquery.Selection) {
		name, ok := in.Attr("name")
		typ, _ := in.Attr("type")
		if !ok || typ == "submit" || ((typ == "checkbox" || typ == "radio") && !in.Is("[checked]")) {
			return
		}
		v, _ := in.Attr("value")
		vals.Set(name, v)
	})
	form.Find("select").Each(func(_ int, s *goquery.Selection) {
		name, _ := s.Attr("name")
		v, _ := s.Find("option[selected]").First().Attr("value")
		if v == "" {
			v, _ = s.Find("option").First().Attr("value")
		}
		vals.Set(name, v)
	})
	for k, v := range fields {
		vals.Set(k, v)
	}
	if button != "" {
		b := form.Find(button).First()
		if b.Length() == 0 {
			c.T.Fatalf("no button %q in form %q", button, sel)
		}
		if name, ok := b.Attr("name"); ok {
			v, _ := b.Attr("value")
			vals.Set(name, v)
		}
	}
	action, _ := form.Attr("action")
	target, err := p.URL.Parse(action)
	if err != nil {
		c.T.Fatal(err)
	}
	if strings.EqualFold(form.AttrOr("method", ""), http.MethodGet) {
		target.RawQuery = vals.Encode()
		req, _ := http.NewRequest(http.MethodGet, target.String(), nil)
		return c.Do(req)
	}
	req, _ := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(vals.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// StartBitbucket presses "Log in with Bitbucket" on Tether's home page and
// signs in to the emulator as username; it returns the consent page.
func (c *Client) StartBitbucket(username string) *Page {
	c.T.Helper()
	home := c.Get("/login")
	p := c.Submit(home, `form[action="/auth/bitbucket"]`, nil, "")
	if p.Has("#signin-form") {
		p = c.Submit(p, "#signin-form", map[string]string{"username": username, "password": "secret-password"}, "")
	}
	if !p.Has("#grant-access") {
		c.T.Fatalf("expected the consent page, got %s:\n%s", p.URL, p.Body)
	}
	return p
}

// Consent presses "Grant access" (grant) or "Cancel" on the consent page.
func (c *Client) Consent(p *Page, grant bool) *Page {
	c.T.Helper()
	button := "#cancel"
	if grant {
		button = "#grant-access"
	}
	return c.Submit(p, "form:has(#grant-access)", nil, button)
}

// SignUpWithBitbucket walks the whole dance for a new or returning user,
// creates the organization a first sign-in asks for, and returns the page
// Tether lands on.
func (c *Client) SignUpWithBitbucket(username string) *Page {
	c.T.Helper()
	return c.FinishSetup(c.Consent(c.StartBitbucket(username), true))
}

// SignUpWithPassword creates an e-mail account (and its organization) and
// returns the landing page; a refused sign-up returns the form.
func (c *Client) SignUpWithPassword(name, email, password string) *Page {
	c.T.Helper()
	p := c.Get("/signup")
	return c.FinishSetup(c.Submit(p, `form[action="/signup"]`, map[string]string{"name": name, "email": email, "password": password}, ""))
}

// FinishSetup completes the first sign-in's setup step with the name it
// suggests, when p is that step, and returns the account page.
func (c *Client) FinishSetup(p *Page) *Page {
	c.T.Helper()
	if p.URL.Path != "/setup" || !p.Has(`form[action="/setup"]`) {
		return p
	}
	done := c.Submit(p, `form[action="/setup"]`, nil, "")
	if done.URL.Path != "/projects" {
		c.T.Fatalf("setup did not finish: %s\n%s", done.URL, done.Body)
	}
	return c.Get("/account")
}

// MustStatus fails the test unless p has the status.
func MustStatus(t testing.TB, p *Page, status int) {
	t.Helper()
	if p.Status != status {
		t.Fatalf("%s: status %d, want %d\n%s", p.URL, p.Status, status, p.Body)
	}
}
