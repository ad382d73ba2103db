package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"tether/static"
)

// Register maps every route of Tether onto e. Reading it tells the product.
func (h *Handlers) Register(e *echo.Echo, mounts map[string]http.Handler) {
	e.HTTPErrorHandler = h.handleError
	e.Use(middleware.Recover())
	e.Use(h.logRequests)
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
		ReferrerPolicy: "same-origin",
	}))

	// Mounted handlers (the demo's Bitbucket emulator) keep their own
	// sessions and forms: no Tether session or CSRF around them.
	for prefix, handler := range mounts {
		e.Any(prefix+"/*", echo.WrapHandler(http.StripPrefix(prefix, handler)))
	}

	e.GET("/static/*", h.static(static.FS))
	e.GET("/healthz", h.healthz)

	// Bitbucket's webhook deliveries: signed, not browser requests, so no
	// session and no CSRF token.
	e.POST("/hooks/bitbucket/:token", h.receiveWebhook)

	app := e.Group("", h.csrf(), h.loadSession)

	// Ways in.
	app.GET("/", h.home)
	app.GET("/signup", h.signupPage)
	app.POST("/signup", h.signup)
	app.GET("/login", h.loginPage)
	app.POST("/login", h.login)
	app.POST("/logout", h.logout)
	app.POST("/auth/bitbucket", h.startBitbucket)
	app.GET("/auth/bitbucket/callback", h.bitbucketCallback)

	// The signed-in product.
	in := app.Group("", h.requireUser)
	in.GET("/account", h.account)
	in.GET("/account/bitbucket", h.bitbucketStatus)
	in.POST("/account/bitbucket/check", h.checkBitbucket)
	in.POST("/account/bitbucket/disconnect", h.disconnectBitbucket)
	in.GET("/projects", h.projectList)
	in.GET("/projects/new", h.newProject)
	in.GET("/projects/new/repositories", h.repositoryChoices)
	in.POST("/projects", h.createProject)
	in.GET("/projects/:id", h.projectPage)
	in.GET("/projects/:id/activity", h.projectActivity)
	in.GET("/projects/:id/repository", h.repositorySection)
	in.POST("/projects/:id/repository", h.changeRepository)
	in.GET("/projects/:id/moved", h.movedBanner)
	in.GET("/projects/:id/deploy-key", h.healthRow(deployKeyPart))
	in.POST("/projects/:id/deploy-key/check", h.checkPart(deployKeyPart))
	in.POST("/projects/:id/deploy-key/regenerate", h.regeneratePart(deployKeyPart))
	in.GET("/projects/:id/webhook", h.healthRow(webhookPart))
	in.POST("/projects/:id/webhook/check", h.checkPart(webhookPart))
	in.POST("/projects/:id/webhook/regenerate", h.regeneratePart(webhookPart))
	in.GET("/troubleshooting", h.troubleshooting)
	in.GET("/troubleshooting/checks", h.troubleshootingChecks)
}
