// Package handlers is Tether's HTTP surface on Echo. Handlers are thin:
// parse and validate, make one service call, render (render.go's one
// rule). A page, and an action together with the part of the page it
// answers with, is one call to internal/pages, which composes the
// services; such a handler's doc names the service method it reaches
// (pages.Regenerate: projects.RegenerateKey). Loading the
// route's project and the person (middleware, loadProject) is not the
// handler's call. Each declares the small interface it needs from the
// services; routes.go maps the whole surface in one place.
package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gorilla/securecookie"
	"github.com/labstack/echo/v4"

	"tether/internal/accounts"
	"tether/internal/alerts"
	"tether/internal/connections"
	"tether/internal/orgs"
	"tether/internal/pages"
	"tether/internal/projects"
	"tether/internal/tether"
	"tether/internal/troubleshooting"
)

// Accounts signs people up and in.
type Accounts interface {
	SignUp(ctx context.Context, name, email, password string) (tether.User, error)
	LogIn(ctx context.Context, email, password string) (tether.User, error)
	LogInWithBitbucket(ctx context.Context, p accounts.Profile, tok tether.Token) (tether.User, bool, error)
	Connect(ctx context.Context, userID int64, p accounts.Profile, tok tether.Token) error
	SignIn(ctx context.Context, userID int64, previous string) (accounts.Session, error)
	SessionUser(ctx context.Context, token string) (tether.User, error)
	EndSession(ctx context.Context, token string) error
}

// OAuth runs the Bitbucket OAuth dance.
type OAuth interface {
	AuthURL(state string) (string, error)
	Complete(ctx context.Context, code string) (accounts.Profile, tether.Token, error)
}

// Connections reports, checks and disconnects Bitbucket connections,
// each answering with the connection's Status as the account page shows
// it.
type Connections interface {
	Status(ctx context.Context, userID int64, poll bool) (connections.Status, error)
	CheckNow(ctx context.Context, userID int64) (connections.Status, error)
	Disconnect(ctx context.Context, userID int64) (connections.Status, error)
	ClientFault() (connections.ClientFault, bool)
}

// Pages reads what a page shows in one call — the Projects page, a
// project's page or one of its rows, the Team page — and does a project
// page's actions, answering with the rows they changed (internal/pages).
type Pages interface {
	Projects(ctx context.Context, orgID int64) ([]pages.ProjectRow, error)
	Project(ctx context.Context, p tether.Project, v pages.Viewer) (pages.Project, error)
	Part(ctx context.Context, p tether.Project, name string, watch bool) (pages.Part, error)
	Team(ctx context.Context, v orgs.Viewer) (pages.Team, error)
	CheckNow(ctx context.Context, p tether.Project, name string) (pages.Part, error)
	Regenerate(ctx context.Context, actorID int64, p tether.Project, name string) (pages.Part, projects.RegenerateResult, error)
	Rehome(ctx context.Context, p tether.Project, v pages.Viewer) (pages.Rehomed, error)
	ChangeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (pages.Changed, error)
	StartMissed(ctx context.Context, actorID int64, p tether.Project) (pages.Started, error)
	Invite(ctx context.Context, v orgs.Viewer) (pages.Team, string, error)
	Revoke(ctx context.Context, v orgs.Viewer, invitationID int64) (pages.Team, error)
	SetRole(ctx context.Context, v orgs.Viewer, userID int64, role string) (pages.Team, error)
	Remove(ctx context.Context, v orgs.Viewer, userID int64, force bool) (pages.Removed, error)
	AddEmailChannel(ctx context.Context, v orgs.Viewer, backer bool) (pages.Team, error)
	AddWebhookChannel(ctx context.Context, v orgs.Viewer, url, secret string) (pages.Team, string, error)
	TestChannel(ctx context.Context, v orgs.Viewer, channelID int64) (pages.Team, alerts.TestResult, error)
	RemoveChannel(ctx context.Context, v orgs.Viewer, channelID int64) (pages.Team, error)
}

// Troubleshooter walks the troubleshooting checklist.
type Troubleshooter interface {
	Run(ctx context.Context, v troubleshooting.Viewer) (troubleshooting.Report, error)
}

// Config is what handlers need to know about the deployment.
type Config struct {
	SecureCookies bool
	PublicURL     string // for links Tether shows (invitations)
	BitbucketURL  string // for links to Bitbucket's own pages
	Demo          bool
	DemoURL       string // the emulator's control page
	DemoLeftovers int    // projects from an earlier demo run (see app.App)
	CookieKey     []byte // signs the OAuth state cookie (32+ bytes)
	// ClientIP finds the client's address (for throttling): the peer's,
	// or what trusted proxies say in X-Forwarded-For.
	ClientIP echo.IPExtractor
}

// Handlers serves Tether's pages.
type Handlers struct {
	log            *slog.Logger
	cfg            Config
	accounts       Accounts
	oauth          OAuth
	connections    Connections
	troubleshooter Troubleshooter
	projects       Projects
	receiver       Receiver
	orgs           Orgs
	alerts         Alerts
	recovery       Recovery
	pages          Pages
	deprecations   Deprecations
	db             Pinger
	metrics        Metrics
	metricsHandler http.Handler
	stateCookie    *securecookie.SecureCookie
	limits         limits
}

// New returns the handlers.
// Services are what the handlers call.
type Services struct {
	Accounts       Accounts
	OAuth          OAuth
	Connections    Connections
	Troubleshooter Troubleshooter
	Projects       Projects
	Receiver       Receiver
	Orgs           Orgs
	Alerts         Alerts
	Recovery       Recovery
	Pages          Pages
	Deprecations   Deprecations
	Store          Pinger  // /healthz
	Metrics        Metrics // deliveries and latencies
	// MetricsHandler serves /metrics; nil (no TETHER_METRICS_TOKEN) means
	// /metrics is not found.
	MetricsHandler http.Handler
}

func New(log *slog.Logger, cfg Config, s Services) *Handlers {
	if cfg.ClientIP == nil {
		cfg.ClientIP = echo.ExtractIPDirect()
	}
	sc := securecookie.New(cfg.CookieKey, nil)
	sc.MaxAge(int(oauthStateTTL.Seconds()))
	return &Handlers{
		log: log, cfg: cfg, stateCookie: sc, limits: newLimits(),
		accounts: s.Accounts, oauth: s.OAuth, connections: s.Connections,
		troubleshooter: s.Troubleshooter, projects: s.Projects, receiver: s.Receiver, orgs: s.Orgs,
		alerts: s.Alerts, recovery: s.Recovery, pages: s.Pages, deprecations: s.Deprecations,
		db: s.Store, metrics: s.Metrics, metricsHandler: s.MetricsHandler,
	}
}
