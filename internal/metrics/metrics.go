// Package metrics is what Tether tells Prometheus: the requests it sends to
// Bitbucket by endpoint template and status code (the REST API and the
// OAuth token endpoint apart), each connection's hourly API budget, webhook
// deliveries by outcome, health check results, the latency of badge polls
// and deliveries, and the Go runtime and process. Each Tether has its own
// registry (no globals), served in the Prometheus text format by Handler
// behind a bearer token.
package metrics

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tether/internal/bitbucket"
)

// Metrics holds Tether's collectors and their registry.
type Metrics struct {
	Registry *prometheus.Registry

	apiCalls   *prometheus.CounterVec
	tokenCalls *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	checks     *prometheus.CounterVec
	latency    *prometheus.HistogramVec
}

// Budgets is what the budget collector reads: every connection's meter.
type Budgets interface {
	Connections() []int64
	Usage(conn int64) bitbucket.Usage
}

// New registers Tether's collectors, plus the Go runtime and process
// collectors, on a new registry. budgets may be nil.
func New(budgets Budgets) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_bitbucket_api_calls_total",
			Help: "Requests Tether sent to the Bitbucket REST API, by endpoint template and HTTP status code (\"error\": no answer).",
		}, []string{"endpoint", "code"}),
		tokenCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_bitbucket_token_requests_total",
			Help: "Requests Tether sent to Bitbucket's OAuth token endpoint (outside the REST API budget), by HTTP status code.",
		}, []string{"code"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_webhook_deliveries_total",
			Help: "Webhook deliveries received, by outcome: accepted, duplicate (a retry already stored), refused, failed (not stored; Bitbucket retries).",
		}, []string{"outcome"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tether_health_checks_total",
			Help: "Health check results recorded, by part (deploy_key, webhook) and result (valid, invalid, unknown).",
		}, []string{"part", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tether_http_request_duration_seconds",
			Help:    "Time to answer badge polls and webhook deliveries, by route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	m.Registry.MustRegister(m.apiCalls, m.tokenCalls, m.deliveries, m.checks, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if budgets != nil {
		m.Registry.MustRegister(&budgetCollector{budgets: budgets})
	}
	return m
}

// BitbucketCall counts one request to Bitbucket.
func (m *Metrics) BitbucketCall(c bitbucket.Call) {
	code := "error"
	if c.Status != 0 {
		code = strconv.Itoa(c.Status)
	}
	if c.Token {
		m.tokenCalls.WithLabelValues(code).Inc()
		return
	}
	m.apiCalls.WithLabelValues(c.Endpoint, code).Inc()
}

// Delivery counts one webhook delivery by the status Tether answered:
// 202 accepted, 200 a duplicate, other 4xx refused, 5xx failed.
func (m *Metrics) Delivery(status int) {
	outcome := "failed"
	switch {
	case status == http.StatusAccepted:
		outcome = "accepted"
	case status >= 200 && status < 300:
		outcome = "duplicate"
	case status >= 400 && status < 500:
		outcome = "refused"
	}
	m.deliveries.WithLabelValues(outcome).Inc()
}

// HealthResult counts one recorded health check result.
func (m *Metrics) HealthResult(part, status string) {
	m.checks.WithLabelValues(part, status).Inc()
}

// Observe records how long a request on route (a template such as
// "/projects/:id/deploy-key") took.
func (m *Metrics) Observe(route string, d time.Duration) {
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// Handler serves the registry in the Prometheus text format to requests
// carrying "Authorization: Bearer <token>"; others get 401 and no metric.
func (m *Metrics) Handler(token string) http.Handler {
	serve := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tether metrics"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		serve.ServeHTTP(w, r)
	})
}

// budgetCollector reads each connection's meter at scrape time.
type budgetCollector struct{ budgets Budgets }

var (
	spentDesc = prometheus.NewDesc("tether_bitbucket_budget_spent_calls",
		"Bitbucket REST API calls a connection (Tether user id) spent in the last rolling hour.", []string{"connection"}, nil)
	limitDesc = prometheus.NewDesc("tether_bitbucket_budget_limit_calls",
		"The hourly Bitbucket REST API budget of a connection (TETHER_BITBUCKET_BUDGET).", []string{"connection"}, nil)
	shedDesc = prometheus.NewDesc("tether_bitbucket_budget_shed_calls",
		"Background calls a connection's budget held back in the last rolling hour.", []string{"connection"}, nil)
	pausedDesc = prometheus.NewDesc("tether_bitbucket_paused",
		"1 while a connection waits out a 429's Retry-After.", []string{"connection"}, nil)
)

func (b *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- spentDesc
	ch <- limitDesc
	ch <- shedDesc
	ch <- pausedDesc
}

func (b *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, id := range b.budgets.Connections() {
		u := b.budgets.Usage(id)
		conn := strconv.FormatInt(id, 10)
		paused := 0.0
		if !u.PausedUntil.IsZero() {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(spentDesc, prometheus.GaugeValue, float64(u.Spent), conn)
		ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(u.PerHour), conn)
		ch <- prometheus.MustNewConstMetric(shedDesc, prometheus.GaugeValue, float64(u.Shed), conn)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, paused, conn)
	}
}

// Deprecations counts, per CHANGE-nnnn, the 410 Gone answers Bitbucket
// gave since Tether started: a retired API is noticed on a dashboard before
// someone finds its banner.
type Deprecations interface {
	Counts() map[string]uint64
}

var deprecatedDesc = prometheus.NewDesc("tether_bitbucket_deprecated_responses_total",
	"410 Gone answers from Bitbucket since Tether started, by the CHANGE-nnnn they name.", []string{"change"}, nil)

// CountDeprecations registers a collector that reads d at scrape time.
func (m *Metrics) CountDeprecations(d Deprecations) {
	m.Registry.MustRegister(&deprecationCollector{d})
}

type deprecationCollector struct{ d Deprecations }

func (c *deprecationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- deprecatedDesc }

func (c *deprecationCollector) Collect(ch chan<- prometheus.Metric) {
	for change, n := range c.d.Counts() {
		ch <- prometheus.MustNewConstMetric(deprecatedDesc, prometheus.CounterValue, float64(n), change)
	}
}
