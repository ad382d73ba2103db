package handlers

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"tether/internal/tether"
	"tether/views"
)

const (
	sessionCookie = "tether_session"
	csrfCookie    = "tether_csrf"
	userKey       = "user"
	csrfKey       = "csrf"
)

// logRequests logs one line per request: method, route pattern (never the
// path itself, which can hold an invitation or hook token, nor the query,
// which can carry OAuth codes), status and duration: ERROR for a 5xx
// of Tether's own, WARN for a 502 (Bitbucket could not do it, and the
// person was told) and for a 4xx. Routes marked quiet log at DEBUG unless
// they fail with a 5xx.
func (h *Handlers) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		level := slog.LevelInfo
		switch {
		case status == http.StatusBadGateway:
			// Bitbucket unreachable, rate limiting or refusing for now
			// (problem.Unavailable): the person was told; nothing here is
			// broken.
			level = slog.LevelWarn
		case status >= 500:
			level = slog.LevelError
		case c.Get(quietKey) != nil:
			level = slog.LevelDebug
		case status >= 400:
			level = slog.LevelWarn
		}
		// Badge polls and deliveries come thousands a second: build no
		// line that is not written.
		if ctx := c.Request().Context(); h.log.Enabled(ctx, level) {
			h.log.Log(ctx, level, "request",
				"method", c.Request().Method, "route", c.Path(),
				"status", status, "duration", time.Since(start).Round(time.Microsecond))
		}
		return nil
	}
}

// secureHeaders sets what every response of Tether's carries: a
// Content-Security-Policy that runs only Tether's own script files (no
// inline handlers, no eval), loads styles, images and fetches only from
// Tether, lets forms go only to Tether and Bitbucket (the OAuth dance),
// and lets no one frame Tether; nosniff, DENY framing for old browsers, no
// Referer across origins; and, when the public URL is https, HSTS for a
// year. Mounted handlers (the demo's Bitbucket emulator) stand for another
// site and keep their own pages.
func (h *Handlers) secureHeaders(mounts map[string]http.Handler) echo.MiddlewareFunc {
	formAction := "'self'"
	if origin := originOf(h.cfg.BitbucketURL); origin != "" {
		formAction += " " + origin
	}
	csp := strings.Join([]string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src 'self'", "object-src 'none'", "base-uri 'none'",
		"form-action " + formAction, "frame-ancestors 'none'",
	}, "; ")
	secure := middleware.SecureWithConfig(middleware.SecureConfig{
		Skipper: func(c echo.Context) bool {
			for prefix := range mounts {
				if strings.HasPrefix(c.Path(), prefix+"/") {
					return true
				}
			}
			return false
		},
		XSSProtection: "0", ContentTypeNosniff: "nosniff", XFrameOptions: "DENY",
		ReferrerPolicy: "same-origin", ContentSecurityPolicy: csp,
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		next = secure(next)
		return func(c echo.Context) error {
			if h.cfg.SecureCookies {
				c.Response().Header().Set("Strict-Transport-Security", "max-age=31536000")
			}
			return next(c)
		}
	}
}

// originOf is scheme://host of an absolute URL, or "".
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

const quietKey = "quiet"

// quiet marks a route whose requests are too frequent to log one line
// each at INFO: badge polls and static files (pages load them every few
// seconds), and webhook deliveries, which the receiver sums up every
// minute instead.
func quiet(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(quietKey, true)
		return next(c)
	}
}

// Body limits, checked before anything reads the body (the CSRF check
// included): forms are a few hundred bytes, Bitbucket's deliveries at
// most 256 KB (webhooks.MaxBody).
const formBodyLimit = 64 << 10

// limitBody refuses a body larger than its route's limit (routes, by
// pattern; def for the rest): a declared Content-Length over it is
// answered 413 at once, unread; a body that turns out longer stops being
// read at the limit (reads then fail with *http.MaxBytesError).
func limitBody(def int64, routes map[string]int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			limit, ok := routes[c.Path()]
			if !ok {
				limit = def
			}
			r := c.Request()
			if r.ContentLength > limit {
				return tooLarge(limit)
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			return next(c)
		}
	}
}

func tooLarge(limit int64) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
		fmt.Sprintf("This request is larger than Tether accepts here (%d KB).", limit>>10))
}

// csrf checks the double-submit token on every state-changing request.
// The token is read from the X-CSRF-Token header (htmx) or the _csrf field
// of the form body (plain forms) — never from the query string, where it
// would leak through logs and Referer. Echo's middleware would wave
// through any request whose Sec-Fetch-Site says same-origin without
// looking at the token; Tether wants the token checked always, so it
// refuses cross-site requests itself and then hides the header from Echo.
func (h *Handlers) csrf() echo.MiddlewareFunc {
	mw := middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "header:" + csrfHeader,
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
			if !isSafe(r.Method) {
				if err := parseForm(r); err != nil {
					return err
				}
				if r.Header.Get(csrfHeader) == "" {
					r.Header.Set(csrfHeader, r.PostFormValue(csrfField))
				}
			}
			return checked(c)
		}
	}
}

const (
	csrfHeader = "X-CSRF-Token"
	csrfField  = "_csrf" // the token in a plain form (views.CSRFField)
)

// parseForm reads a state-changing request's form body (urlencoded or
// multipart, within the route's body limit) before anything else looks
// at it, so a body over the limit is a 413 wherever it is sent, not an
// empty form. A malformed body is an empty form.
func parseForm(r *http.Request) error {
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(formBodyLimit)
	} else {
		err = r.ParseForm()
	}
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return tooLarge(big.Limit)
	}
	return nil
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

// requireUser sends people who are not signed in (or whose session
// expired) to the login page, which brings them back to the page they
// were on: the one they asked for, or the one an htmx poll came from.
func (h *Handlers) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentUser(c) == nil {
			return redirect(c, http.StatusUnauthorized, loginURL(c.Request()), "/login")
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

// static serves the embedded files, never a directory listing. Vendored
// files never change within a build, so they may be cached; app.css and
// app.js are revalidated.
func (h *Handlers) static(files fs.FS) echo.HandlerFunc {
	server := http.StripPrefix("/static/", http.FileServer(http.FS(noDirs{files})))
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

// noDirs hides directories, so the file server answers 404 instead of
// listing them.
type noDirs struct{ fs.FS }

func (n noDirs) Open(name string) (fs.File, error) {
	f, err := n.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}
