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
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/labstack/echo/v4"

	"tether/db"
	"tether/handlers"
	"tether/internal/accounts"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
	"tether/internal/config"
	"tether/internal/connections"
	"tether/internal/health"
	"tether/internal/orgs"
	"tether/internal/projects"
	"tether/internal/repourl"
	"tether/internal/secrets"
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

	// Services tests tune (timeouts, staleness).
	Connections *connections.Service
	Health      *health.Checker

	closers []func()
}

// New builds Tether for cfg.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
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

	bb := bitbucket.New(bitbucket.Config{
		WebURL: cfg.BitbucketURL, APIURL: cfg.BitbucketAPIURL,
		ClientID: cfg.BitbucketClientID, ClientSecret: cfg.BitbucketClientSecret,
	})
	acc := accounts.New(log, store)
	oauth := accounts.NewOAuth(accounts.OAuthConfig{
		ClientID: cfg.BitbucketClientID, ClientSecret: cfg.BitbucketClientSecret,
		CallbackURL: cfg.PublicURL + "/auth/bitbucket/callback",
		WebURL:      cfg.BitbucketURL, APIURL: cfg.BitbucketAPIURL,
	}, bb)
	conns := connections.New(log, store, bb)
	a.Connections = conns
	hostKeys := cfg.BitbucketSSHHostKeys
	if hostKeys == "" {
		hostKeys = bitbucket.DefaultHostKeys
	}
	pinned, err := bitbucket.ParseHostKeys(hostKeys)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("BITBUCKET_SSH_HOST_KEYS: %w", err)
	}
	hookBase := cfg.PublicURL + "/hooks/bitbucket/"
	checker := health.New(log, store, conns, bb, health.SSH{Addr: cfg.BitbucketSSHAddr, HostKeys: pinned}, hookBase)
	a.Health = checker
	projectService := projects.New(log, store, conns, bb, checker, projects.Config{
		HookBase: hookBase,
		Hosts:    repourl.Hosts{WebURL: cfg.BitbucketURL, SSHAddr: cfg.BitbucketSSHAddr},
	})
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

	cookieKey := sha256.Sum256([]byte("tether oauth state cookie\x00" + key))
	h := handlers.New(log, handlers.Config{
		SecureCookies: cfg.SecureCookies(),
		PublicURL:     cfg.PublicURL,
		BitbucketURL:  cfg.BitbucketURL,
		Demo:          a.Emulator != nil,
		DemoURL:       demoURL,
		DemoLeftovers: a.DemoLeftovers,
		CookieKey:     cookieKey[:],
	}, handlers.Services{
		Accounts: acc, OAuth: oauth, Connections: conns,
		Troubleshooter: troubleshooting.New(log, conns, bb, projectService, checker),
		Projects:       projectService,
		Health:         checker,
		Receiver:       receiver,
		Orgs:           orgs.New(log, store),
	})
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	h.Register(e, mounts)
	a.Handler, a.Routes = e, e.Routes()
	return a, nil
}

// Background runs what Tether does on its own until ctx is done: the
// health monitor re-checks every project about every ten minutes.
func (a *App) Background(ctx context.Context) {
	a.Health.Monitor(ctx, 10*time.Minute, 30*time.Second, 20)
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
