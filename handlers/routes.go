package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"tether/internal/webhooks"
	"tether/static"
)

const webhookRoute = "/hooks/bitbucket/:token"

// Register maps every route of Tether onto e. Reading it tells the product.
func (h *Handlers) Register(e *echo.Echo, mounts map[string]http.Handler) {
	e.HTTPErrorHandler = h.handleError
	e.IPExtractor = h.cfg.ClientIP
	e.Use(middleware.Recover())
	e.Use(h.logRequests)
	e.Use(h.secureHeaders(mounts))
	// Every body is limited before anything reads it: forms are small,
	// Bitbucket's deliveries up to 256 KB.
	e.Use(limitBody(formBodyLimit, map[string]int64{webhookRoute: webhooks.MaxBody}))

	// Mounted handlers (the demo's Bitbucket emulator) keep their own
	// sessions and forms: no Tether session or CSRF around them.
	for prefix, handler := range mounts {
		e.Any(prefix+"/*", echo.WrapHandler(http.StripPrefix(prefix, handler)))
	}

	e.GET("/static/*", h.static(static.FS), quiet)
	e.GET("/healthz", h.healthz)
	e.GET("/metrics", h.metricsPage)

	// Bitbucket's webhook deliveries: signed, not browser requests, so no
	// session and no CSRF token.
	e.POST(webhookRoute, h.receiveWebhook, quiet, h.timed)

	// Route middleware runs inside its groups': the CSRF check and the
	// route's authorization come before anything a route adds. A
	// destructive action adds confirmFirst, which asks its question (as
	// htmx's hx-confirm does) before a form posted without JavaScript acts.
	// The session is read first, so a refused post (a stale CSRF token)
	// still shows the person signed in on its error page.
	app := e.Group("", h.loadSession, h.csrf())

	// Ways in.
	app.GET("/", h.home)
	app.GET("/signup", h.signupPage)
	app.POST("/signup", h.signup)
	app.GET("/login", h.loginPage)
	app.POST("/login", h.login)
	app.POST("/logout", h.logout)
	app.POST("/auth/bitbucket", h.startBitbucket)
	app.GET("/auth/bitbucket/callback", h.bitbucketCallback)
	app.GET("/invitations/:token", h.invitation)

	// Signed in, on the way into an organization.
	joining := app.Group("", h.requireUser, h.loadViewer)
	joining.GET("/setup", h.setupPage)
	joining.POST("/setup", h.setup)
	joining.POST("/invitations/:token/accept", h.acceptInvitation)
	joining.GET("/account", h.account)
	joining.GET("/account/bitbucket", h.bitbucketStatus, quiet, h.timed)
	joining.POST("/account/bitbucket/check", h.checkBitbucket)
	joining.POST("/account/bitbucket/disconnect", h.disconnectBitbucket, h.confirmFirst(disconnectQuestion))

	// Signed in, in an organization (anyone else is sent to the setup step).
	in := joining.Group("", h.requireOrg)
	in.POST("/orgs/switch", h.switchOrg)
	in.GET("/troubleshooting", h.troubleshooting)
	in.GET("/troubleshooting/checks", h.troubleshootingChecks)
	in.GET("/projects", h.projectList)
	in.GET("/team", h.team)
	in.GET("/team/audit", h.auditLog)

	// Admins of the current organization.
	orgAdmin := in.Group("", h.requireOrgAdmin)
	orgAdmin.GET("/projects/new", h.newProject)
	orgAdmin.GET("/projects/new/repositories", h.repositoryChoices)
	orgAdmin.POST("/projects", h.createProject)
	orgAdmin.POST("/team/invitations", h.invite)
	orgAdmin.POST("/team/invitations/:invitation/revoke", h.revokeInvitation)
	orgAdmin.POST("/team/members/:user/role", h.changeRole)
	orgAdmin.POST("/team/members/:user/remove", h.removeMember, h.confirmFirst(h.removeQuestion))
	orgAdmin.GET("/team/notifications/channels", h.alertChannels)
	orgAdmin.POST("/team/notifications/email", h.addEmailChannel)
	orgAdmin.POST("/team/notifications/webhooks", h.addWebhookChannel)
	orgAdmin.POST("/team/notifications/:channel/test", h.testChannel)
	orgAdmin.POST("/team/notifications/:channel/remove", h.removeChannel, h.confirmFirst(removeChannelQuestion))
	orgAdmin.GET("/team/outbox", h.outbox)

	// A project, for members of its organization (everyone else: 404).
	project := in.Group("/projects/:id", h.loadProject)
	project.GET("", h.projectPage)
	project.GET("/activity", h.projectActivity, quiet)
	project.GET("/repository", h.repositorySection)
	project.GET("/moved", h.movedBanner, quiet)
	// A Deploy Key or Webhook row: its poll (pages.Part), Check now
	// (pages.CheckNow) and Regenerate (pages.Regenerate, which calls
	// projects.RegenerateKey or projects.RegenerateWebhook).
	project.GET("/deploy-key", h.healthRow(deployKeyPart), quiet, h.timed)
	project.POST("/deploy-key/check", h.checkPart(deployKeyPart))
	project.GET("/webhook", h.healthRow(webhookPart), quiet, h.timed)
	project.POST("/webhook/check", h.checkPart(webhookPart))
	project.GET("/missed", h.missed)

	// What only its admins may do (members: 403).
	projectAdmin := project.Group("", h.requireProjectAdmin)
	projectAdmin.POST("/deploy-key/regenerate", h.regeneratePart(deployKeyPart), h.confirmFirst(h.regenerateQuestion(deployKeyPart)))
	projectAdmin.POST("/webhook/regenerate", h.regeneratePart(webhookPart), h.confirmFirst(h.regenerateQuestion(webhookPart)))
	projectAdmin.POST("/repository", h.changeRepository)
	projectAdmin.POST("/rehome", h.rehome, h.confirmFirst(h.rehomeQuestion))
	projectAdmin.POST("/delete", h.deleteProject, h.confirmFirst(h.deleteQuestion))
	projectAdmin.POST("/missed/start", h.startMissed)

	actionAddressesLeadToPages(e)
}

// actionAddressesLeadToPages gives every action (a POST route) without a
// page of its own a GET that sends the browser (303) to the page the
// action belongs to: the nearest address above it that answers GET (the
// Team page for /team/invitations, a project for its /delete). A plain
// post may answer at its own address — an invitation link shown once, a
// question asked first, a refusal beside what was typed — and a reload
// then, or Enter in the address bar, is a GET there, which would
// otherwise say there is nothing at this address. It sends only to the
// page; that page checks who may see it.
func actionAddressesLeadToPages(e *echo.Echo) {
	gets := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == http.MethodGet {
			gets[r.Path] = true
		}
	}
	for _, r := range e.Routes() {
		if r.Method != http.MethodPost || gets[r.Path] || r.Path == webhookRoute || strings.Contains(r.Path, "*") {
			continue
		}
		segments := strings.Split(strings.Trim(r.Path, "/"), "/")
		up := len(segments) - 1
		for up > 0 && !gets["/"+strings.Join(segments[:up], "/")] {
			up--
		}
		e.GET(r.Path, func(c echo.Context) error {
			parts := strings.Split(strings.Trim(c.Request().URL.EscapedPath(), "/"), "/")
			return c.Redirect(http.StatusSeeOther, localTarget("/"+strings.Join(parts[:min(up, len(parts))], "/"), "/"))
		})
	}
}
