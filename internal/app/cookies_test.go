package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"tether/internal/app"
	"tether/internal/config"
)

// Behind https, every cookie Tether sets is Secure, HttpOnly and
// SameSite=Lax.
func TestCookiesAreSecureBehindHTTPS(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, func(k string) string {
		return map[string]string{
			"TETHER_PUBLIC_URL":       "https://tether.example.com",
			"TETHER_DATA_DIR":         t.TempDir(),
			"BITBUCKET_CLIENT_ID":     "id",
			"BITBUCKET_CLIENT_SECRET": "secret",
			"BITBUCKET_URL":           "http://127.0.0.1:1",
			"BITBUCKET_API_URL":       "http://127.0.0.1:1/2.0",
			"BITBUCKET_SSH_HOST_KEYS": "bitbucket.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO",
		}[k]
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login", nil))
	csrf := cookieNamed(t, rec.Result().Cookies(), "tether_csrf")

	form := url.Values{"_csrf": {csrf.Value}, "intent": {"login"}}
	req := httptest.NewRequest(http.MethodPost, "/auth/bitbucket", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(csrf)
	rec = httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "http://127.0.0.1:1/site/oauth2/authorize?") {
		t.Fatalf("start of the OAuth dance: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if loc.Query().Get("redirect_uri") != "https://tether.example.com/auth/bitbucket/callback" || loc.Query().Get("state") == "" {
		t.Fatalf("authorize URL %s", loc)
	}
	cookieNamed(t, rec.Result().Cookies(), "tether_oauth")
}

func cookieNamed(t *testing.T, cookies []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	for _, c := range cookies {
		if c.Name == name {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %s: secure %v, httponly %v, samesite %v", name, c.Secure, c.HttpOnly, c.SameSite)
			}
			return c
		}
	}
	t.Fatalf("no %s cookie set", name)
	return nil
}
