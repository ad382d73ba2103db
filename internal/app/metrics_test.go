package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tether/internal/apptest"
)

const metricsToken = "scrape-token-0123456789abcdef"

func scrape(t *testing.T, env *apptest.Env, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.URL+"/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.Label {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// /metrics serves the Prometheus text format behind its bearer token and
// parses cleanly; Bitbucket calls are labelled by endpoint template (no
// workspace, repository or id), deliveries by outcome, checks by result,
// and badge polls and deliveries have latency histograms.
func TestMetricsScrapeCleanly(t *testing.T) {
	t.Parallel()
	h := withHookOpts(t, apptest.Options{Env: map[string]string{"TETHER_METRICS_TOKEN": metricsToken}})
	if status, _ := h.send(t, "repo:push", h.recorded(t, "webhook_push.json"), nil); status != http.StatusAccepted {
		t.Fatalf("push: %d", status)
	}
	for _, part := range []string{"/deploy-key", "/webhook"} {
		apptest.MustStatus(t, h.c.HTMX(http.MethodGet, h.project.URL.Path+part, h.project, nil), http.StatusOK)
	}

	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + metricsToken, metricsToken} {
		status, body := scrape(t, h.env, auth)
		if status != http.StatusUnauthorized || strings.Contains(body, "tether_") {
			t.Fatalf("Authorization %q: %d\n%s", auth, status, body)
		}
	}
	status, body := scrape(t, h.env, "Bearer "+metricsToken)
	if status != http.StatusOK {
		t.Fatalf("scrape: %d", status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	for _, name := range []string{"tether_bitbucket_api_calls_total", "tether_webhook_deliveries_total", "tether_health_checks_total",
		"tether_http_request_duration_seconds", "tether_bitbucket_budget_spent_calls", "tether_bitbucket_budget_limit_calls",
		"go_goroutines", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	endpoints := map[string]bool{}
	for _, m := range families["tether_bitbucket_api_calls_total"].GetMetric() {
		l := labels(m)
		endpoints[l["endpoint"]] = true
		if strings.Contains(l["endpoint"], "alice") || strings.Contains(l["endpoint"], "api/") || strings.ContainsAny(l["endpoint"], "%?") {
			t.Errorf("endpoint label is a path, not a template: %q", l["endpoint"])
		}
		if l["code"] == "" {
			t.Errorf("no code label: %v", l)
		}
	}
	for _, want := range []string{"POST /repositories/{workspace}/{repo_slug}/deploy-keys", "POST /repositories/{workspace}/{repo_slug}/hooks",
		"GET /repositories/{workspace}/{repo_slug}/hooks", "GET /user/workspaces",
		"GET /user/emails", // goth's, at sign-in
	} {
		if !endpoints[want] {
			t.Errorf("no calls counted for %s (have %v)", want, endpoints)
		}
	}
	tokens := 0.0
	for _, m := range families["tether_bitbucket_token_requests_total"].GetMetric() {
		tokens += m.GetCounter().GetValue()
	}
	if tokens == 0 {
		t.Error("the sign-in's code exchange was not counted as a token request")
	}
	accepted := 0.0
	for _, m := range families["tether_webhook_deliveries_total"].GetMetric() {
		if labels(m)["outcome"] == "accepted" {
			accepted = m.GetCounter().GetValue()
		}
	}
	if accepted != 1 {
		t.Errorf("accepted deliveries %v, want 1", accepted)
	}
	results := map[string]bool{}
	for _, m := range families["tether_health_checks_total"].GetMetric() {
		l := labels(m)
		results[l["part"]+"/"+l["result"]] = true
	}
	if !results["deploy_key/valid"] || !results["webhook/valid"] {
		t.Errorf("health results %v", results)
	}
	routes := map[string]uint64{}
	for _, m := range families["tether_http_request_duration_seconds"].GetMetric() {
		routes[labels(m)["route"]] = m.GetHistogram().GetSampleCount()
	}
	if routes["/projects/:id/deploy-key"] == 0 || routes["/projects/:id/webhook"] == 0 || routes["/hooks/bitbucket/:token"] == 0 {
		t.Errorf("latency histograms %v", routes)
	}
	if strings.Contains(body, h.hookURL) || strings.Contains(body, metricsToken) {
		t.Error("the scrape leaks a hook URL or the token")
	}
}

// Without TETHER_METRICS_TOKEN there is no /metrics at all: Tether's
// plain "Not found" page, with nothing about metrics in it.
func TestMetricsOffWithoutToken(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	status, body := scrape(t, env, "Bearer anything-at-all-here")
	lower := strings.ToLower(body)
	if status != http.StatusNotFound || strings.Contains(lower, "metric") || strings.Contains(lower, "unauthorized") || !strings.Contains(body, "Not found") {
		t.Fatalf("/metrics without a token: %d\n%s", status, body)
	}
}

// /healthz pings the database: 200 while it answers, 503 once it is gone.
func TestHealthzPingsTheDatabase(t *testing.T) {
	t.Parallel()
	env := apptest.Start(t, apptest.Options{NoSchedule: true})
	get := func() int {
		resp, err := http.Get(env.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != http.StatusOK {
		t.Fatalf("healthz %d", s)
	}
	env.App.Store.Close()
	if s := get(); s != http.StatusServiceUnavailable {
		t.Fatalf("healthz with the database closed: %d", s)
	}
}
