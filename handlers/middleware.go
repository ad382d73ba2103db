package handlers

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"tether/internal/tether"
	"tether/views"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

const (
	sessionCookie = "tether_session"
	csrfCookie    = "tether_csrf"
	userKey       = "user"
	csrfKey       = "csrf"
)

// logRequests logs one line per request: method, path (never the query,
// which can carry OAuth codes), status and duration.
func (h *Handlers) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		} else if status >= 400 {
			level = slog.LevelWarn
		}
		h.log.Log(c.Request().Context(), level, "request",
			"method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "duration", time.Since(start).Round(time.Microsecond))
		return nil
	}
}

// csrf checks the double-submit token on every state-changing request.
// Echo's middleware would wave through any request whose Sec-Fetch-Site
// says same-origin without looking at the token; Tether wants the token
// checked always, so it refuses cross-site requests itself and then hides
// the header from Echo.
func (h *Handlers) csrf() echo.MiddlewareFunc {
	mw := middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "header:X-CSRF-Token,form:_csrf",
		ContextKey:     csrfKey,
		CookieName:     csrfCookie,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   h.cfg.SecureCookies,
		CookieSameSite: http.SameSiteLaxMode,
		CookieMaxAge:   int((12 * time.Hour).Seconds()),
		ErrorHandler: func(err error, c echo.Context) error {
			return echo.NewHTTPError(http.StatusForbidden,
				"This form has expired or did not come from Tether. Reload the page and try again.")
		},
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		checked := mw(next)
		return func(c echo.Context) error {
			r := c.Request()
			if r.Header.Get("Sec-Fetch-Site") == "cross-site" && !isSafe(r.Method) {
				return echo.NewHTTPError(http.StatusForbidden, "Cross-site requests are not accepted.")
			}
			r.Header.Del("Sec-Fetch-Site")
			return checked(c)
		}
	}
}

func isSafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// loadSession puts the signed-in user, if any, in the context.
func (h *Handlers) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ck, err := c.Cookie(sessionCookie); err == nil {
			u, err := h.accounts.SessionUser(c.Request().Context(), ck.Value)
			switch {
			case err == nil:
				c.Set(userKey, &u)
			case errors.Is(err, tether.ErrNotFound):
				h.clearCookie(c, sessionCookie, "/")
			default:
				return err
			}
		}
		return next(c)
	}
}

// requireUser sends people who are not signed in to the login page.
func (h *Handlers) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentUser(c) == nil {
			if isHTMX(c.Request()) {
				c.Response().Header().Set("HX-Redirect", "/login")
				return c.NoContent(http.StatusUnauthorized)
			}
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		return next(c)
	}
}

func currentUser(c echo.Context) *tether.User {
	u, _ := c.Get(userKey).(*tether.User)
	return u
}

func csrfToken(c echo.Context) string {
	t, _ := c.Get(csrfKey).(string)
	return t
}

func (h *Handlers) setCookie(c echo.Context, name, value, path string, maxAge time.Duration) {
	c.SetCookie(&http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// flashCookie carries the outcome of an action that ends in a redirect
// (Delete) to the page it lands on, signed so nobody else can put words on
// Tether's pages.
const flashCookie = "tether_flash"

func (h *Handlers) setFlash(c echo.Context, n views.Notice) {
	if v, err := h.stateCookie.Encode(flashCookie, n); err == nil {
		h.setCookie(c, flashCookie, v, "/", time.Minute)
	}
}

// takeFlash returns the carried outcome, if any, and forgets it.
func (h *Handlers) takeFlash(c echo.Context) views.Notice {
	var n views.Notice
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return n
	}
	h.clearCookie(c, flashCookie, "/")
	if h.stateCookie.Decode(flashCookie, ck.Value, &n) != nil {
		return views.Notice{}
	}
	return n
}

func (h *Handlers) clearCookie(c echo.Context, name, path string) {
	c.SetCookie(&http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode})
}

// static serves the embedded files. Vendored files never change within a
// build, so they may be cached; app.css is revalidated.
func (h *Handlers) static(files fs.FS) echo.HandlerFunc {
	server := http.StripPrefix("/static/", http.FileServer(http.FS(files)))
	return func(c echo.Context) error {
		if strings.HasPrefix(c.Request().URL.Path, "/static/vendor/") {
			c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		} else {
			c.Response().Header().Set("Cache-Control", "no-cache")
		}
		server.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

func (h *Handlers) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok")
}
