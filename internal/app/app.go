// Package app assembles Tether from its parts: it opens the store, builds
// the services and the Bitbucket client for the configured URLs (or starts
// the built-in emulator in demo mode), and returns the HTTP handler. main
// serves it; tests serve it on a loopback listener.
package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/crypto/ssh"

	"github.com/labstack/echo/v4"

	"tether/db"
	"tether/handlers"
	"tether/internal/accounts"
	"tether/internal/alerts"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
	"tether/internal/config"
	"tether/internal/connections"
	"tether/internal/deprecations"
	"tether/internal/health"
	"tether/internal/metrics"
	"tether/internal/orgs"
	"tether/internal/pages"
	"tether/internal/projects"
	"tether/internal/recovery"
	"tether/internal/repourl"
	"tether/internal/retention"
	"tether/internal/secrets"
	"tether/internal/tether"
	"tether/internal/troubleshooting"
	"tether/internal/webhooks"
)

// Demo consumer of the built-in emulator. It is not a secret: the emulator
// only exists inside this process.
const (
	demoClientID     = "tether-demo"
	demoClientSecret = "tether-demo-secret-not-for-production"
	demoPrefix       = "/bitbucket"
)

// DemoScopes are the scopes the demo consumer asks for; a real consumer
// must be set up with the same.
var DemoScopes = []string{"account", "email", "repository:admin", "webhook", "pullrequest"}

// App is a ready-to-serve Tether.
type App struct {
	Handler  http.Handler
	Routes   []*echo.Route      // every route, for tests that must cover them all
	Config   config.Config      // as in force (demo mode fills the Bitbucket URLs)
	Emulator *emulator.Emulator // the built-in Bitbucket, in demo mode only
	Store    *db.Store
	// DemoLeftovers counts the projects a demo found in its data folder
	// from an earlier run: the restarted emulator no longer holds their
	// deploy keys, webhooks and grants.
	DemoLeftovers int

	// Services tests tune (timeouts, staleness, cadence).
	Connections  *connections.Service
	Health       *health.Checker
	Projects     *projects.Service
	Budget       *bitbucket.Budget // every connection's hourly API budget
	Metrics      *metrics.Metrics
	Alerts       *alerts.Service
	Recovery     *recovery.Service
	Deprecations *deprecations.Recorder
	Pruner       *retention.Pruner

	closers []func()
}

// Option changes how New builds Tether.
type Option func(*options)

type options struct {
	clock     clockwork.Clock
	bbTimeout time.Duration
}

// WithClock runs the budgets, the background schedule and the connections'
// staleness on clock — a clockwork.FakeClock in tests that measure an hour
// in seconds.
func WithClock(clock clockwork.Clock) Option { return func(o *options) { o.clock = clock } }

// WithBitbucketTimeout replaces the 15 s Bitbucket gives to answer each
// request, for tests that stall it past the timeout without waiting 15 s.
func WithBitbucketTimeout(d time.Duration) Option { return func(o *options) { o.bbTimeout = d } }

// New builds Tether for cfg.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*App, error) {
	o := options{clock: clockwork.NewRealClock(), bbTimeout: 15 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	a := &App{Config: cfg}
	mounts := map[string]http.Handler{}
	demoURL := ""
	if cfg.Demo() {
		base := cfg.PublicURL + demoPrefix
		a.Emulator = emulator.New(emulator.Config{
			BaseURL: base,
			Demo:    true,
			Consumers: []emulator.Consumer{{
				Key: demoClientID, Secret: demoClientSecret, Name: "Tether (demo)",
				CallbackURL: cfg.PublicURL + "/auth/bitbucket/callback", Scopes: DemoScopes,
			}},
		})
		mounts[demoPrefix] = a.Emulator
		a.Config.BitbucketClientID, a.Config.BitbucketClientSecret = demoClientID, demoClientSecret
		a.Config.BitbucketURL, a.Config.BitbucketAPIURL = base, base+"/2.0"
		demoURL = base + "/_emulator/"
		hostKey, err := a.Emulator.StartSSH("127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("app: demo SSH server: %w", err)
		}
		a.closers = append(a.closers, a.Emulator.CloseSSH)
		a.Config.BitbucketSSHAddr = a.Emulator.SSHAddr()
		a.Config.BitbucketSSHHostKeys = string(ssh.MarshalAuthorizedKey(hostKey))
		log.Info("demo mode: no BITBUCKET_CLIENT_ID set, using the built-in Bitbucket emulator", "url", base)
	}
	cfg = a.Config

	key, err := secrets.LoadOrCreateKey(cfg.DataDir, cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return nil, err
	}
	store, err := db.Open(ctx, filepath.Join(cfg.DataDir, "tether.db"), box)
	if err != nil {
		return nil, err
	}
	a.Store = store
	if a.Emulator != nil {
		if previous, err := store.AllProjects(ctx); err == nil {
			a.DemoLeftovers = len(previous)
		}
	}

	// Every answer from Bitbucket passes the deprecation recorder, so a
	// 410 Gone is noticed wherever it comes from.
	deps, err := deprecations.New(ctx, log, store)
	if err != nil {
		a.Close() // what New started so far, and the store
		return nil, err
	}
	a.Deprecations = deps
	a.Budget = bitbucket.NewBudget(bitbucket.BudgetConfig{PerHour: cfg.BudgetPerHour, Clock: o.clock})
	// The hour a restart would forget: the calls the last run made still
	// count, and its meters are kept from here on.
	if err := restoreMeters(ctx, log, store, a.Budget); err != nil {
		a.Close() // what New started so far, and the store
		return nil, fmt.Errorf("app: API budget meters: %w", err)
	}
	keeping, stopKeeping := context.WithCancel(context.Background())
	kept := make(chan struct{})
	go func() {
		keepMeters(keeping, log, store, a.Budget, meterSaveEvery)
		close(kept)
	}()
	a.closers = append(a.closers, func() {
		stopKeeping()
		<-kept
	})
	a.Metrics = metrics.New(a.Budget)
	a.Metrics.CountDeprecations(deps)
	bb := bitbucket.New(bitbucket.Config{
		WebURL: cfg.BitbucketURL, APIURL: cfg.BitbucketAPIURL,
		ClientID: cfg.BitbucketClientID, ClientSecret: cfg.BitbucketClientSecret,
		HTTPClient: &http.Client{Timeout: o.bbTimeout, Transport: deps.Transport(nil)},
		Budget:     a.Budget, Observe: a.Metrics.BitbucketCall, Clock: o.clock,
	})
	acc := accounts.New(log, store)
	conns := connections.New(log, store, bb)
	conns.SetClock(o.clock.Now)
	a.Connections = conns
	oauth := accounts.NewOAuth(accounts.OAuthConfig{
		ClientID: cfg.BitbucketClientID, ClientSecret: cfg.BitbucketClientSecret,
		CallbackURL: cfg.PublicURL + "/auth/bitbucket/callback",
		WebURL:      cfg.BitbucketURL, APIURL: cfg.BitbucketAPIURL,
		// goth's own requests (the code exchange, GET /user and
		// /user/emails) reach the metrics too.
		Transport:   bitbucket.ObserveTransport(nil, cfg.BitbucketAPIURL, a.Metrics.BitbucketCall, a.Budget),
		Credentials: conns,
	}, bb)
	hostKeys := cfg.BitbucketSSHHostKeys
	if hostKeys == "" {
		hostKeys = bitbucket.DefaultHostKeys
	}
	pinned, err := bitbucket.ParseHostKeys(hostKeys)
	if err != nil {
		a.Close() // what New started so far, and the store
		return nil, fmt.Errorf("BITBUCKET_SSH_HOST_KEYS: %w", err)
	}
	hookBase := cfg.PublicURL + "/hooks/bitbucket/"
	checker := health.NewWithClock(log, store, conns, bb, health.SSH{Addr: cfg.BitbucketSSHAddr, HostKeys: pinned}, hookBase, o.clock)
	checker.OnResult = a.Metrics.HealthResult
	checker.Instance = tether.InstanceOf(cfg.PublicURL)
	a.Health = checker
	projectService := projects.New(log, store, conns, bb, checker, projects.Config{
		HookBase: hookBase, Instance: tether.InstanceOf(cfg.PublicURL), Clock: o.clock,
		Hosts: repourl.Hosts{WebURL: cfg.BitbucketURL, SSHAddr: cfg.BitbucketSSHAddr},
	})
	smtp, err := alerts.ParseSMTPURL(cfg.SMTPURL, cfg.SMTPCAFile)
	if err != nil {
		a.Close() // what New started so far, and the store
		return nil, err
	}
	from := cfg.SMTPFrom
	if from == "" {
		host := "localhost"
		if u, err := url.Parse(cfg.PublicURL); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
		from = "Tether <tether@" + host + ">"
	}
	a.Alerts = alerts.New(log, store, alerts.Config{
		PublicURL: cfg.PublicURL, Demo: a.Emulator != nil, SMTP: smtp, From: from, AllowPrivate: cfg.AllowPrivate(),
	})
	a.Recovery = recovery.New(log, store, conns, bb)
	a.Pruner = retention.New(log, store, retention.Policy{Days: cfg.RetentionDays, PerProject: cfg.RetentionPerProject})
	a.Projects = projectService
	receiver := webhooks.New(log, store)
	receiving, stopReceiving := context.WithCancel(context.Background())
	received := make(chan struct{})
	go func() {
		receiver.Run(receiving)
		close(received)
	}()
	a.closers = append(a.closers, func() {
		stopReceiving()
		<-received
	})

	var metricsHandler http.Handler
	if cfg.MetricsToken != "" {
		metricsHandler = a.Metrics.Handler(cfg.MetricsToken)
	}
	cookieKey := sha256.Sum256([]byte("tether oauth state cookie\x00" + key))
	proxies, err := cfg.Proxies()
	if err != nil {
		a.Close() // what New started so far, and the store
		return nil, err
	}
	orgService := orgs.New(log, store)
	h := handlers.New(log, handlers.Config{
		SecureCookies: cfg.SecureCookies(),
		PublicURL:     cfg.PublicURL,
		BitbucketURL:  cfg.BitbucketURL,
		Demo:          a.Emulator != nil,
		DemoURL:       demoURL,
		DemoLeftovers: a.DemoLeftovers,
		CookieKey:     cookieKey[:],
		ClientIP:      clientIP(proxies),
	}, handlers.Services{
		Accounts: acc, OAuth: oauth, Connections: conns,
		Troubleshooter: troubleshooting.New(log, conns, projectService, checker, a.Budget),
		Projects:       projectService,
		Receiver:       receiver,
		Orgs:           orgService,
		Alerts:         a.Alerts,
		Recovery:       a.Recovery,
		Pages: pages.New(pages.Sources{Projects: projectService, Health: checker, Recovery: a.Recovery,
			Orgs: orgService, Budget: a.Budget, Alerts: a.Alerts}),
		Deprecations:   deps,
		Store:          store,
		Metrics:        a.Metrics,
		MetricsHandler: metricsHandler,
	})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	h.Register(e, mounts)
	a.Handler, a.Routes = e, e.Routes()
	return a, nil
}

// clientIP reads the client's address from the connection, or, behind
// the configured proxies only, from X-Forwarded-For (the nearest address
// that is not one of them), so no client can name itself another.
func clientIP(proxies []netip.Prefix) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// MaxHeaderBytes bounds a request's line and headers (net/http allows
// 4 KB more); Tether's cookies and Bitbucket's headers take well under
// 2 KB.
const MaxHeaderBytes = 16 << 10

// Server returns the HTTP server to serve Tether with: it cuts clients
// that send headers for more than 10 s or a request for more than 30 s,
// and refuses headers over MaxHeaderBytes with 431.
func (a *App) Server() *http.Server {
	return &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Background runs what Tether does on its own until ctx is done: the
// health schedule looks at every project on its cadence, watched ones
// first, within each connection's API budget; the alerts watcher and
// sender; the comparison of branch heads after a repair or downtime;
// retention, which prunes old deliveries, workflows and sessions at start
// and every ten minutes; and the cleanup of deploy keys and webhooks left
// over on Bitbucket. It returns when all have stopped.
func (a *App) Background(ctx context.Context) {
	done := make(chan struct{}, 4)
	go func() { a.Alerts.Run(ctx); done <- struct{}{} }()
	go func() { a.Recovery.Run(ctx); done <- struct{}{} }()
	go func() { a.Pruner.Run(ctx); done <- struct{}{} }()
	go func() { a.Projects.Cleanup.Run(ctx); done <- struct{}{} }()
	a.Health.Run(ctx)
	for range 4 {
		<-done
	}
}

// Close releases what New opened.
func (a *App) Close() error {
	for _, c := range a.closers {
		c()
	}
	var errs []error
	if a.Store != nil {
		errs = append(errs, a.Store.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("app: close: %w", err)
	}
	return nil
}
