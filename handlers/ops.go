package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// Pinger reaches the database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Metrics counts what the handlers see.
type Metrics interface {
	Delivery(status int)
	Observe(route string, d time.Duration)
}

// healthz says whether Tether can serve: it pings the database.
func (h *Handlers) healthz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := h.db.Ping(ctx); err != nil {
		h.log.Error("healthz: database ping", "err", err)
		return c.String(http.StatusServiceUnavailable, "database unavailable")
	}
	return c.String(http.StatusOK, "ok")
}

// metricsPage serves /metrics behind its bearer token; without a token
// configured it does not exist.
func (h *Handlers) metricsPage(c echo.Context) error {
	if h.metricsHandler == nil {
		return echo.ErrNotFound
	}
	h.metricsHandler.ServeHTTP(c.Response(), c.Request())
	return nil
}

// timed records how long the route took to answer, by its template.
func (h *Handlers) timed(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		h.metrics.Observe(c.Path(), time.Since(start))
		return err
	}
}
